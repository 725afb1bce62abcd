//! `switchyard-bench`: everything the side-by-side benchmark needs besides the proxies.
//!
//! ```text
//! switchyard-bench backend --listen 127.0.0.1:28000
//! switchyard-bench relay   --listen 127.0.0.1:28003 --upstream 127.0.0.1:28000
//! switchyard-bench http    --addr 127.0.0.1:28004 --target switchyard --pid 1234
//! switchyard-bench ws-echo --addr ... ;  ws-bulk --addr ... ;  idle --addr ... --pid ...
//! switchyard-bench report  --input raw.jsonl --markdown results.md --csv results.csv
//! switchyard-bench soak churn --addr 127.0.0.1:29004 --target switchyard --pid 1234
//! switchyard-bench soak report --input raw.jsonl --markdown results.md
//! ```
//!
//! `bench/run.sh` drives the benchmark and `bench/soak.sh` the soak and fault scenarios;
//! see bench/README.md.

mod backend;
mod http;
mod load;
mod pacer;
mod procfs;
mod relay;
mod report;
mod soak;
mod ws;
mod zero_copy;

use clap::{Parser, Subcommand};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "switchyard-bench",
    about = "Side-by-side proxy benchmark tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Keep-alive HTTP server (13-byte body) + WebSocket echo, on one thread.
    Backend {
        #[arg(long, default_value = "127.0.0.1:28000")]
        listen: SocketAddr,
        /// SO_SNDBUF of every connection (set on the listener, which they inherit);
        /// default: the kernel's autotuning. The soak's slow-reader backend sets a small
        /// one so that the kernel memory of a thousand stalled responses is spent where
        /// the test looks, between the proxy and its clients.
        #[arg(long)]
        sndbuf: Option<u32>,
    },
    /// Plain TCP relay (accept, dial, copy_bidirectional): the userspace copy floor.
    Relay {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: SocketAddr,
        /// Tokio worker threads (0: a current-thread runtime).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// HTTP/1.1 keep-alive GET load, closed loop: requests/s and latency.
    Http {
        #[command(flatten)]
        common: load::Common,
        #[command(flatten)]
        timing: load::Timing,
        /// Response body size: 0 asks for the backend's 13-byte answer (measure `http`);
        /// more asks for that many bytes (`/big?bytes=N`, measure `http-body`, with MB/s).
        #[arg(long, default_value_t = 0)]
        body_bytes: u64,
    },
    /// WebSocket echo round trips, one message in flight per connection.
    WsEcho {
        #[command(flatten)]
        common: load::Common,
        #[command(flatten)]
        timing: load::Timing,
        /// Message payload size in bytes.
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Messages/s over all connections (each on its own schedule); 0: closed loop.
        /// A rate makes the record's measure `ws-latency`.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// WebSocket bulk echo: large messages, several in flight per connection: MB/s.
    WsBulk {
        #[command(flatten)]
        common: load::Common,
        #[command(flatten)]
        timing: load::Timing,
        /// Message payload size in bytes.
        #[arg(long, default_value_t = 64 * 1024)]
        size: usize,
        /// Messages in flight per connection.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
    },
    /// Opens N WebSocket tunnels, holds them idle, reports the proxy's RSS growth per tunnel.
    Idle {
        #[command(flatten)]
        common: load::Common,
        /// Tunnels to open.
        #[arg(long, default_value_t = 5000)]
        tunnels: usize,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Seconds to wait after the last tunnel opened before reading RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
    /// The soak and fault scenarios (issue 11), one JSON record per run, and their report.
    Soak {
        #[command(subcommand)]
        scenario: soak::Soak,
    },
    /// Waits until ADDR accepts a TCP connection.
    Wait {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Medians, ratios and targets from the runs' JSON lines: markdown + CSV.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        markdown: PathBuf,
        #[arg(long)]
        csv: PathBuf,
        /// The core the proxies were pinned to.
        #[arg(long, default_value_t = 0)]
        proxy_cpu: usize,
        /// A file whose text goes under the title (how and where it was run).
        #[arg(long)]
        notes: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backend { listen, sndbuf } => block_on(backend::run(listen, sndbuf)),
        Command::Relay {
            listen,
            upstream,
            threads,
        } => {
            let runtime = if threads == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            runtime.and_then(|rt| rt.block_on(relay::run(listen, upstream)))
        }
        Command::Http {
            common,
            timing,
            body_bytes,
        } => emit(
            &common.clone(),
            block_on(load::http(common, timing, body_bytes)),
        ),
        Command::WsEcho {
            common,
            timing,
            size,
            rate,
        } => emit(
            &common.clone(),
            block_on(load::ws_echo(common, timing, size, rate)),
        ),
        Command::WsBulk {
            common,
            timing,
            size,
            in_flight,
        } => emit(
            &common.clone(),
            block_on(load::ws_bulk(common, timing, size, in_flight)),
        ),
        Command::Idle {
            common,
            tunnels,
            concurrency,
            settle,
        } => emit(
            &common.clone(),
            block_on(load::idle(common, tunnels, concurrency, settle)),
        ),
        Command::Soak { scenario } => soak::run(scenario),
        Command::Wait { addr, timeout } => wait(addr, timeout),
        Command::Report {
            input,
            markdown,
            csv,
            proxy_cpu,
            notes,
        } => (|| {
            let notes = notes.map(std::fs::read_to_string).transpose()?;
            let text = report::run(&report::Options {
                input: &input,
                markdown: &markdown,
                csv: &csv,
                proxy_cpu,
                notes: notes.map(|n| n.trim().to_owned()),
            })?;
            print!("{text}");
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `future` on a current-thread runtime: every tool here is single-threaded so
/// that it stays on the core it was pinned to.
fn block_on<T>(future: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

fn emit(common: &load::Common, record: io::Result<load::Record>) -> io::Result<()> {
    record?.emit(common)
}

fn wait(addr: SocketAddr, timeout: f64) -> io::Result<()> {
    let give_up = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= give_up => {
                return Err(io::Error::other(format!("{addr} not accepting: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A listener with a deep backlog (the idle test opens thousands of connections).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    bind_with_sndbuf(addr, None)
}

/// [`bind`], with an `SO_SNDBUF` that accepted connections inherit.
pub(crate) fn bind_with_sndbuf(
    addr: SocketAddr,
    sndbuf: Option<u32>,
) -> io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if let Some(size) = sndbuf {
        socket.set_send_buffer_size(size)?;
    }
    socket.bind(addr)?;
    socket.listen(4096)
}
