//! `switchyard`: the reverse proxy, from the command line.
//!
//! ```text
//! switchyard --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000
//! switchyard --config switchyard.toml [--listen ...] [--upstream ...] [--threads N]
//! switchyard check --config switchyard.toml
//! ```
//!
//! Exit codes: 0 after a clean shutdown (Ctrl-C or SIGTERM drain the connections
//! first; a second signal exits at once), 1 if the proxy cannot start (e.g. the port is
//! in use), 2 for a bad command line or configuration file.

use clap::{Parser, Subcommand};
use runtime_tokio::config_file::{self, Settings};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

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
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
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

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file: prints "ok: FILE" and exits 0, or the error and exits 2.
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
    if !cli.listen.is_empty() {
        settings.listen = cli.listen;
    }
    if let Some(upstream) = cli.upstream {
        settings.core.upstream = upstream;
    }
    if let Some(threads) = cli.threads {
        settings.threads = Some(threads.get());
    }
    init_logging(settings.access_log);

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = settings.threads {
        runtime.worker_threads(threads);
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(settings)),
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` picks levels (default `info`).
fn init_logging(access_log: bool) {
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    if !access_log {
        filter = filter.add_directive(
            format!("{}=off", runtime_tokio::access_log::TARGET)
                .parse()
                .expect("a valid directive"),
        );
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

async fn run(settings: Settings) -> ExitCode {
    let mut listeners = Vec::new();
    for addr in &settings.listen {
        match TcpListener::bind(addr).await {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    info!(listen = ?settings.listen, upstream = %settings.core.upstream, "switchyard is up");
    match runtime_tokio::serve_all(listeners, Arc::new(settings.core), shutdown_requested()).await {
        Ok(()) => {
            info!("bye");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
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
