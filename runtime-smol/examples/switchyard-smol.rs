//! `switchyard` on smol: the same TOML file as the `switchyard` binary, read by the
//! same code (`runtime_common::config_file`), the same proxy, another runtime.
//!
//! ```text
//! cargo run -p runtime-smol --example switchyard-smol -- --config switchyard.toml
//! ```
//!
//! Sessions run on a `smol::Executor` with the file's `threads` (default: one per
//! core). SIGHUP re-reads the file, as `switchyard` does. Exit codes as `switchyard`'s: 0 after a clean shutdown (SIGINT or SIGTERM
//! drain the connections first; a second signal exits at once), 1 if the proxy cannot
//! start, 2 for a bad command line or configuration file.

use async_signal::{Signal, Signals};
use runtime_smol::config_file::{self, Settings};
use runtime_smol::{Context, ListenMode, Smol};
use smol::stream::StreamExt;
use smol::{future, Executor};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{info, warn};

fn main() -> ExitCode {
    let path = match config_path() {
        Ok(path) => path,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let settings = match path.as_deref().map(Settings::load).transpose() {
        Ok(settings) => settings.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    runtime_common::init_logging(settings.log_format);
    runtime_common::raise_open_file_limit_and_log();
    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !settings.work_stealing {
        // One executor serves every thread here; only `switchyard` (tokio) has both.
        warn!("work_stealing = false is for the switchyard binary; ignored here");
    }
    let executor = Arc::new(Executor::new());
    for _ in 1..threads {
        let executor = executor.clone();
        std::thread::spawn(move || smol::block_on(executor.run(future::pending::<()>())));
    }
    let code = smol::block_on(executor.run(run(settings, path, executor.clone())));
    runtime_common::flush_logs();
    code
}

/// A listener on `address` for `mode`, with an accept queue of 4,096 (smol's own asks
/// for 128).
fn listen_on(
    address: std::net::SocketAddr,
    mode: &ListenMode,
) -> std::io::Result<smol::net::TcpListener> {
    smol::net::TcpListener::try_from(runtime_common::bind_listener_for(address, mode)?)
}

/// `--config FILE`, if given.
fn config_path() -> Result<Option<PathBuf>, String> {
    let usage = "usage: switchyard-smol [--config FILE]";
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (None, _, _) => Ok(None),
        (Some(flag), Some(path), None) if flag == "--config" || flag == "-c" => {
            Ok(Some(path.into()))
        }
        _ => Err(usage.into()),
    }
}

async fn run(
    settings: Settings,
    path: Option<PathBuf>,
    executor: Arc<Executor<'static>>,
) -> ExitCode {
    let setup = match settings.setup() {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut listeners = Vec::new();
    for listen in &settings.listen {
        match listen_on(listen.address, &listen.mode) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", listen.address);
                return ExitCode::FAILURE;
            }
        }
    }
    let admin = match settings.admin {
        None => None,
        Some(address) => match listen_on(address, &ListenMode::Http) {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!("error: cannot listen on {address} ([admin] listen): {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut signals = match Signals::new([Signal::Int, Signal::Term, Signal::Hup]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addresses: Vec<_> = settings.listen.iter().map(|l| l.address).collect();
    info!(listen = ?addresses, admin = ?settings.admin, upstream = %settings.core.upstream, "switchyard (smol) is up");
    let ctx = Arc::new(Context::with_setup(setup, Smol::on(executor.clone())));
    if let Some(admin) = admin {
        let ctx = ctx.clone();
        executor
            .spawn(async move { ctx.serve_admin(admin).await })
            .detach();
    }
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let signal_ctx = ctx.clone();
    executor
        .spawn(async move {
            let mut running = settings;
            let mut stopping = false;
            while let Some(signal) = signals.next().await {
                match signal {
                    Ok(Signal::Hup) => match &path {
                        Some(path) => {
                            info!(file = %path.display(), "SIGHUP: re-reading the configuration");
                            if let Some(s) = config_file::reload(&signal_ctx, path, &running, |_| {}) {
                                running = s;
                            }
                        }
                        None => warn!("SIGHUP: no configuration file to re-read"),
                    },
                    _ if stopping => {
                        warn!(?signal, "exiting without waiting for connections");
                        runtime_common::flush_logs();
                        std::process::exit(1);
                    }
                    _ => {
                        info!(
                            ?signal,
                            "stopping: no new connections, draining the open ones (again to exit at once)"
                        );
                        stopping = true;
                        let _ = stop.send(()).await;
                    }
                }
            }
        })
        .detach();
    let shutdown = async {
        let _ = stopped.recv().await;
    };
    ctx.serve_all(listeners, shutdown).await;
    info!("bye");
    ExitCode::SUCCESS
}
