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
    runtime_common::init_logging();
    runtime_common::raise_open_file_limit_and_log();

    // One thread: tokio's current-thread scheduler runs every task on this thread,
    // with no work-stealing queues or cross-thread wake-ups to pay for.
    let mut runtime = match settings.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let code = match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(settings, cli)),
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            ExitCode::FAILURE
        }
    };
    runtime_common::flush_logs();
    code
}

/// A listener on `address` for `mode`, with an accept queue of 4,096 (tokio's own
/// asks for 128).
fn listen_on(address: SocketAddr, mode: &ListenMode) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(runtime_common::bind_listener_for(address, mode)?)
}

async fn run(settings: Settings, cli: Cli) -> ExitCode {
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
    let ctx = Arc::new(Context::with_setup(setup, Tokio));
    if let Some(admin) = admin {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.serve_admin(admin).await });
    }
    let listen: Vec<String> = (settings.listen.iter())
        .map(|l| {
            let tls = if l.tls.is_empty() { "" } else { " tls" };
            match &l.mode {
                ListenMode::Http => format!("{}{tls}", l.address),
                ListenMode::Tcp { upstream } => {
                    format!("{}{tls} tcp→{upstream}", l.address)
                }
            }
        })
        .collect();
    info!(?listen, admin = ?settings.admin, upstream = %settings.core.upstream, "switchyard is up");
    if let Some(path) = cli.config.clone() {
        tokio::spawn(reload_on_sighup(ctx.clone(), path, settings, cli.overrides));
    }
    ctx.serve_all(listeners, shutdown_requested()).await;
    info!("bye");
    ExitCode::SUCCESS
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
