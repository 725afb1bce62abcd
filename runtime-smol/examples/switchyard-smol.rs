//! `switchyard` on smol: the same TOML file as the `switchyard` binary, read by the
//! same code (`runtime_common::config_file`), the same proxy, another runtime.
//!
//! ```text
//! cargo run -p runtime-smol --example switchyard-smol -- --config switchyard.toml
//! ```
//!
//! Sessions run on a `smol::Executor` with the file's `threads` (default: one per
//! core). Exit codes as `switchyard`'s: 0 after a clean shutdown (SIGINT or SIGTERM
//! drain the connections first; a second signal exits at once), 1 if the proxy cannot
//! start, 2 for a bad command line or configuration file.

use async_signal::{Signal, Signals};
use runtime_smol::config_file::Settings;
use runtime_smol::{access_log, Context, Smol};
use smol::stream::StreamExt;
use smol::{future, Executor};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{info, warn};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

fn main() -> ExitCode {
    let settings = match config_path().map(|path| path.map(|p| Settings::load(&p))) {
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
        Ok(None) => Settings::default(),
        Ok(Some(Ok(settings))) => settings,
        Ok(Some(Err(e))) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.access_log);
    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let executor = Arc::new(Executor::new());
    for _ in 1..threads {
        let executor = executor.clone();
        std::thread::spawn(move || smol::block_on(executor.run(future::pending::<()>())));
    }
    smol::block_on(executor.run(run(settings, executor.clone())))
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

async fn run(settings: Settings, executor: Arc<Executor<'static>>) -> ExitCode {
    let mut listeners = Vec::new();
    for addr in &settings.listen {
        match smol::net::TcpListener::bind(addr).await {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut signals = match Signals::new([Signal::Int, Signal::Term]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!(listen = ?settings.listen, upstream = %settings.core.upstream, "switchyard (smol) is up");
    let ctx = Arc::new(Context::with_runtime(
        Arc::new(settings.core),
        Smol::on(executor.clone()),
    ));
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    executor
        .spawn(async move {
            let signal = signals.next().await;
            info!(
                ?signal,
                "stopping: no new connections, draining the open ones (again to exit at once)"
            );
            let _ = stop.send(()).await;
            let signal = signals.next().await;
            warn!(?signal, "exiting without waiting for connections");
            std::process::exit(1);
        })
        .detach();
    let shutdown = async {
        let _ = stopped.recv().await;
    };
    ctx.serve_all(listeners, shutdown).await;
    info!("bye");
    ExitCode::SUCCESS
}

/// Logs to stderr; `RUST_LOG` picks levels (default `info`).
fn init_logging(access_log: bool) {
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    if !access_log {
        let off = format!("{}=off", access_log::TARGET);
        filter = filter.add_directive(off.parse().expect("a valid directive"));
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
