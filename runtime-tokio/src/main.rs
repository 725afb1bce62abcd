//! `switchyard`: the reverse proxy, from the command line.
//!
//! ```text
//! switchyard --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000
//! switchyard --config switchyard.toml [--listen ...] [--upstream ...] [--threads N]
//! switchyard check --config switchyard.toml
//! ```
//!
//! SIGHUP re-reads the configuration file: new connections use it, open tunnels
//! keep the old one until they end or `timeouts.shutdown` later; a file that does
//! not load or validate is rejected with a log line and the running one stays.
//!
//! Exit codes: 0 after a clean shutdown (Ctrl-C or SIGTERM drain the connections
//! first; a second signal exits at once), 1 if the proxy cannot start (e.g. the port is
//! in use), 2 for a bad command line or configuration file.

/// jemalloc: its size classes fit tokio's 128-byte-aligned task cells exactly (glibc
/// pads each aligned allocation), which keeps an idle tunnel under 2 KiB.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod event_loops;

use clap::{Parser, Subcommand};
use runtime_tokio::config_file::{self, ListenSettings, Settings};
use runtime_tokio::{Context, ListenMode, Tokio};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Reverse proxy for HTTP/1.1 and WebSocket"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (TOML); see switchyard.example.toml. Flags override it.
    /// SIGHUP re-reads it.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// Flags that override the file (also after a reload).
#[derive(clap::Args, Clone)]
struct Overrides {
    /// Address to accept connections on; repeat for several [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR", value_parser = config_file::parse_listen)]
    listen: Vec<SocketAddr>,
    /// Where requests go, as host:port [default: 127.0.0.1:9000]
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_upstream)]
    upstream: Option<String>,
    /// Worker threads [default: one per CPU core]
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
}

impl Overrides {
    fn apply(&self, settings: &mut Settings) {
        if !self.listen.is_empty() {
            settings.listen = self
                .listen
                .iter()
                .copied()
                .map(ListenSettings::http)
                .collect();
        }
        if let Some(upstream) = &self.upstream {
            settings.core.upstream = upstream.clone();
        }
        if let Some(threads) = self.threads {
            settings.threads = Some(threads.get());
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file (certificate, key and CA files included): prints
    /// "ok: FILE" and exits 0, or the error and exits 2.
    Check {
        /// The file to check.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn parse_upstream(text: &str) -> Result<String, String> {
    config_file::check_upstream(text).map(|()| text.to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { config }) = &cli.command {
        return match Settings::load(config) {
            Ok(_) => {
                println!("ok: {}", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let mut settings = match cli.config.as_deref().map(Settings::load).transpose() {
        Ok(settings) => settings.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    cli.overrides.apply(&mut settings);
    runtime_common::init_logging(settings.log_format);
    runtime_common::raise_open_file_limit_and_log();

    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    // With work stealing, the scheduler's threads serve one set of listeners; without,
    // this thread and each further one serve their own.
    let runtime = match (settings.work_stealing, threads) {
        (true, 2..) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build(),
        _ => event_loops::current_thread_runtime(),
    };
    let (code, workers) = match runtime {
        Ok(runtime) => runtime.block_on(run(settings, cli, threads)),
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            (ExitCode::FAILURE, Vec::new())
        }
    };
    // Their drain ended with this thread's: it waited for the same connections.
    for worker in workers {
        let _ = worker.join();
    }
    runtime_common::flush_logs();
    code
}

/// A listener on `address` for `mode`, with an accept queue of 4,096 (tokio's own
/// asks for 128).
fn listen_on(address: SocketAddr, mode: &ListenMode) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(runtime_common::bind_listener_for(address, mode)?)
}

/// Serves until shut down with `threads` threads; returns the exit code and the
/// threads it started beside this one to run event loops of their own (without work
/// stealing), to be joined once this returns.
async fn run(
    settings: Settings,
    cli: Cli,
    threads: usize,
) -> (ExitCode, Vec<std::thread::JoinHandle<()>>) {
    let failed = |code| (code, Vec::new());
    // With work stealing, the scheduler's threads serve one set of listeners; without,
    // this thread and each further one serve their own.
    let event_loops = if settings.work_stealing { 1 } else { threads };
    let setup = match settings.setup() {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("error: {e}");
            return failed(ExitCode::from(2));
        }
    };
    // listeners[thread][i]: the thread's socket for `settings.listen[i]`.
    let mut listeners: Vec<Vec<_>> = (0..event_loops).map(|_| Vec::new()).collect();
    for listen in &settings.listen {
        match runtime_common::bind_listeners_for(listen.address, &listen.mode, event_loops) {
            Ok(group) => (listeners.iter_mut().zip(group)).for_each(|(mine, l)| mine.push(l)),
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", listen.address);
                return failed(ExitCode::FAILURE);
            }
        }
    }
    let admin = match settings.admin {
        None => None,
        Some(address) => match listen_on(address, &ListenMode::Http) {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!("error: cannot listen on {address} ([admin] listen): {e}");
                return failed(ExitCode::FAILURE);
            }
        },
    };
    let ctx = Arc::new(Context::with_setup(setup, Tokio));
    // Several event loops get a CPU each while there are enough for all of them.
    let cpus = runtime_common::allowed_cpus();
    let cpu_of =
        |number: usize| (event_loops > 1 && event_loops <= cpus.len()).then(|| cpus[number]);
    let mut workers = Vec::new();
    let mut listeners = listeners.into_iter();
    let main_listeners = listeners.next().unwrap_or_default();
    for (number, theirs) in (1..).zip(listeners) {
        match event_loops::start_worker(number, theirs, cpu_of(number), &ctx) {
            Ok(worker) => workers.push(worker),
            // Its listeners close: the kernel sends their connections to the others.
            Err(e) => warn!(worker = number, error = %e, "cannot start a worker thread"),
        }
    }
    if event_loops > 1 {
        event_loops::settle_here(0, cpu_of(0)); // after the others started: not inherited
    }
    let listeners = match event_loops::registered(main_listeners) {
        Ok(listeners) => listeners,
        Err(e) => {
            // The workers accept meanwhile; this drain stops them too.
            eprintln!("error: cannot register the listeners: {e}");
            ctx.drain().await;
            return (ExitCode::FAILURE, workers);
        }
    };
    if let Some(admin) = admin {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.serve_admin(admin).await });
    }
    let listen: Vec<String> = (settings.listen.iter())
        .map(|l| {
            let tls = if l.tls.is_empty() { "" } else { " tls" };
            match &l.mode {
                ListenMode::Http => format!("{}{tls}", l.address),
                ListenMode::RedirectHttps { port } => format!("{} →https:{port}", l.address),
                ListenMode::Tcp { upstream, .. } => {
                    format!("{}{tls} tcp→{upstream}", l.address)
                }
            }
        })
        .collect();
    let work_stealing = settings.work_stealing;
    let threads = if work_stealing {
        threads
    } else {
        workers.len() + 1
    };
    info!(?listen, admin = ?settings.admin, upstream = %settings.core.upstream, threads, work_stealing, "switchyard is up");
    if let Some(path) = cli.config.clone() {
        tokio::spawn(reload_on_sighup(ctx.clone(), path, settings, cli.overrides));
    }
    ctx.serve_all(listeners, shutdown_requested()).await;
    info!("bye");
    (ExitCode::SUCCESS, workers)
}

/// Re-reads the configuration file on every SIGHUP.
async fn reload_on_sighup(
    ctx: Arc<Context>,
    path: PathBuf,
    mut running: Settings,
    overrides: Overrides,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            warn!("cannot handle SIGHUP: reloading is off");
            return;
        };
        while hangups.recv().await.is_some() {
            info!(file = %path.display(), "SIGHUP: re-reading the configuration");
            let edit = |settings: &mut Settings| overrides.apply(settings);
            if let Some(settings) = config_file::reload(&ctx, &path, &running, edit) {
                running = settings;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (ctx, path, &mut running, overrides);
}
/// Completes on the first Ctrl-C or SIGTERM; a second one exits at once.
async fn shutdown_requested() {
    let name = signal().await;
    info!(
        signal = name,
        "stopping: no new connections, draining the open ones (again to exit at once)"
    );
    tokio::spawn(async {
        let name = signal().await;
        warn!(signal = name, "exiting without waiting for connections");
        runtime_common::flush_logs();
        std::process::exit(1);
    });
}

async fn signal() -> &'static str {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => sigterm.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = terminate => "terminate",
    }
}
