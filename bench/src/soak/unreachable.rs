//! Upstream failures, each behind its own path on the proxy:
//! - `/refused`: nothing listens on the upstream port (connect refused at once) → 502;
//! - `/unreachable`: the upstream's SYNs go unanswered → 502 at the connect timeout;
//! - `/blackhole`: the upstream accepts and never answers → 504 at the read timeout.
//!
//! Loopback never drops a SYN for an address, so "unreachable" is a listener of this
//! tool with a full accept queue: with backlog 0 one connection, made here and never
//! accepted, fills it, and Linux then drops further SYNs (a listen overflow) instead of
//! refusing them. The tool checks that a probe of its own hangs before trusting it, and
//! says so in the record if it does not.
//!
//! The three cases run at once, each a few requests one after the other, so that a
//! proxy that marks a failing server down shows it: for `/unreachable` the first
//! request must take the connect timeout, and later ones may also get their 502 at once
//! (the server known down, as switchyard's `max_fails` does after 3 failures).

use super::{one_request, Answer, Common, Record};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// An address nobody listens on (the proxy's upstream for `/refused`).
    #[arg(long)]
    pub refused: SocketAddr,
    /// Where this tool accepts and never answers (upstream for `/blackhole`).
    #[arg(long)]
    pub blackhole: SocketAddr,
    /// Where this tool listens with a full accept queue (upstream for `/unreachable`).
    #[arg(long)]
    pub unreachable: SocketAddr,
    /// The connect timeout configured on the proxy (seconds).
    #[arg(long, default_value_t = 2.0)]
    pub connect_timeout: f64,
    /// The response (read) timeout configured on the proxy (seconds).
    #[arg(long, default_value_t = 2.0)]
    pub read_timeout: f64,
    /// Requests per case, one after the other.
    #[arg(long, default_value_t = 4)]
    pub requests: usize,
    /// Longest wait for one answer (seconds).
    #[arg(long, default_value_t = 15.0)]
    pub bound: f64,
}

/// "At the configured timeout ±10%".
const TOLERANCE: f64 = 0.10;

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let mut record = Record::new("unreachable", common);
    record.setting("connect_timeout_s", options.connect_timeout);
    record.setting("read_timeout_s", options.read_timeout);
    record.setting("requests_per_case", options.requests);

    if TcpStream::connect(options.refused).await.is_ok() {
        record.note(format!(
            "{} accepted a connection: not a refused port",
            options.refused
        ));
    }
    let blackhole = crate::bind(options.blackhole)?;
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = blackhole.accept().await {
            held.push(stream); // never read, never answered
        }
    });
    let (_full, _queued, feasible) = full_backlog(options.unreachable).await?;
    if !feasible {
        record.note(format!(
            "a connection to the full-backlog listener {} did not hang: SYN drops are not \
             feasible on this loopback, /unreachable measures something else",
            options.unreachable
        ));
    }

    let bound = Duration::from_secs_f64(options.bound);
    let series = |path: &'static str| {
        let addr = common.addr;
        async move {
            let mut results = Vec::new();
            for _ in 0..options.requests {
                let start = Instant::now();
                let answer = one_request(addr, path, bound).await;
                results.push((answer, start.elapsed().as_secs_f64()));
            }
            results
        }
    };
    let (refused, unreachable, blackholed) = tokio::join!(
        series("/refused"),
        series("/unreachable"),
        series("/blackhole")
    );
    holder.abort();

    let cases = [
        (
            "refused",
            refused,
            502,
            0.0,
            options.connect_timeout * TOLERANCE,
            "refused upstream → 502 at once".to_owned(),
        ),
        (
            "unreachable",
            unreachable,
            502,
            options.connect_timeout * (1.0 - TOLERANCE),
            options.connect_timeout * (1.0 + TOLERANCE),
            format!(
                "unreachable upstream → 502 at the connect timeout ({} s ±10%; later ones \
                 may be at once)",
                options.connect_timeout
            ),
        ),
        (
            "blackhole",
            blackholed,
            504,
            options.read_timeout * (1.0 - TOLERANCE),
            options.read_timeout * (1.0 + TOLERANCE),
            format!(
                "blackholed upstream → 504 at the read timeout ({} s ±10%)",
                options.read_timeout
            ),
        ),
    ];
    for (name, results, want, low, high, target) in cases {
        let answers: Vec<String> = results.iter().map(|(a, _)| a.label()).collect();
        let times: Vec<String> = results.iter().map(|(_, s)| format!("{s:.2}")).collect();
        record.figure(&format!("{name}_answers"), answers.join(" "));
        record.figure(&format!("{name}_seconds"), times.join(" "));
        let at_once = options.connect_timeout * TOLERANCE;
        let good = results
            .iter()
            .enumerate()
            .filter(|&(i, &(answer, s))| {
                let in_time =
                    (s >= low && s <= high) || (name == "unreachable" && i > 0 && s <= at_once);
                answer == Answer::Status(want) && in_time
            })
            .count();
        let feasible_case = name != "unreachable" || feasible;
        let measured = if feasible_case {
            format!("{} in {} s", answers.join(" "), times.join(" "))
        } else {
            "not feasible on loopback".to_owned()
        };
        record.check(&target, measured, feasible_case && good == results.len());
    }
    Ok(record)
}

/// A listener at `addr` whose accept queue is full: backlog 0 and one connection that
/// is never accepted. Returns the listener, the queued connection, and whether a probe
/// connection then hangs (its SYN dropped) as it should.
async fn full_backlog(
    addr: SocketAddr,
) -> io::Result<(tokio::net::TcpListener, Vec<TcpStream>, bool)> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(0)?;
    let mut queued = Vec::new();
    // Fill the queue: connections complete until it is full; the first that does not
    // complete in time says it is.
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
    }
    let probe = tokio::time::timeout(Duration::from_millis(1500), TcpStream::connect(addr)).await;
    Ok((listener, queued, probe.is_err()))
}
