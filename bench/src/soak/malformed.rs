//! Malformed floods: connections of random bytes and truncated heads, a bounded number
//! at a time (so the load generator stays within its own descriptors). Each must end
//! with a 400 or a close, none may reach the backend (its own count of requests parsed,
//! read straight from it before and after, must not move), and the proxy's memory and
//! descriptors must come back.
//!
//! Three kinds, in turn:
//! - random bytes, then a blank line: a complete head that is not HTTP (a 400);
//! - random bytes, then the client's EOF;
//! - a well-formed request head cut short at a random byte, then EOF.

use super::{get_json, Answer, Common, Record};
use crate::load;
use crate::ws::Rng;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// The backend, reached directly, whose `/stats` counts what it received.
    #[arg(long)]
    pub backend: SocketAddr,
    /// Connections in all.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connections open at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Longest wait for each connection's answer or close (seconds).
    #[arg(long, default_value_t = 3.0)]
    pub answer_within: f64,
    /// Connections of the same flood sent before the "before" figures are read (so that
    /// the allocator's high-water mark is not counted as growth; the RSS of the fresh
    /// proxy is reported too).
    #[arg(long, default_value_t = 1000)]
    pub warmup: usize,
    /// Seconds to wait after the flood before reading RSS and fds again.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

const KINDS: [&str; 3] = ["random+blank line", "random+EOF", "truncated head+EOF"];
/// A head the truncated kind cuts short.
const VALID_HEAD: &[u8] = b"GET /index.html?q=soak HTTP/1.1\r\nHost: soak.example\r\n\
User-Agent: switchyard-soak\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n";
const RSS_GROWTH: f64 = 0.05;

/// The bytes connection `i` sends, and whether it then shuts down its write side.
fn payload(i: usize, rng: &mut Rng) -> (Vec<u8>, bool) {
    match i % KINDS.len() {
        0 | 1 => {
            let len = 16 + (rng.next() % 1009) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Never a line end inside: the proxy must judge the bytes, not a line.
            for b in &mut bytes {
                if *b == b'\n' || *b == b'\r' {
                    *b = b'?';
                }
            }
            if i % KINDS.len() == 0 {
                bytes.extend_from_slice(b"\r\n\r\n");
            }
            (bytes, i % KINDS.len() == 1)
        }
        _ => {
            let cut = 1 + (rng.next() % (VALID_HEAD.len() as u64 - 2)) as usize;
            (VALID_HEAD[..cut].to_vec(), true)
        }
    }
}

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let proxy = common.proxy()?;
    let mut record = Record::new("malformed", common);
    record.setting("connections", options.connections);
    record.setting("concurrency", options.concurrency);
    record.setting("kinds", KINDS.join(", "));
    record.setting("warmup_connections", options.warmup);

    let stats_before = get_json(options.backend, "/stats").await?;
    let within = Duration::from_secs_f64(options.answer_within);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_fresh = proxy.rss_kib()?;
    // The same flood, smaller, first: the baseline is then the proxy's working memory
    // for `concurrency` connections at once, and what is compared is what stays.
    flood(common.addr, 0..options.warmup, options.concurrency, within).await?;
    tokio::time::sleep(Duration::from_secs_f64(options.settle)).await;
    let (rss_before, fds_before) = (proxy.rss_kib()?, proxy.fds()?);
    let started = std::time::Instant::now();
    let range = options.warmup..options.warmup + options.connections;
    let results = flood(common.addr, range, options.concurrency, within).await?;
    let mut tally: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let elapsed = started.elapsed().as_secs_f64();
    let (mut refused, mut connect_failed) = (0, 0);
    for (kind, answer) in results {
        let label = match answer {
            None => {
                connect_failed += 1;
                "connect failed".to_owned()
            }
            Some(answer) => {
                if matches!(answer, Answer::Status(400) | Answer::Closed | Answer::Reset) {
                    refused += 1;
                }
                answer.label()
            }
        };
        *tally.entry((kind, label)).or_default() += 1;
    }
    let counted: usize = tally.values().sum();
    tokio::time::sleep(Duration::from_secs_f64(options.settle)).await;
    let (rss_after, fds_after) = (proxy.rss_kib()?, proxy.fds()?);
    let stats_after = get_json(options.backend, "/stats").await?;
    let delta = |key: &str| {
        stats_after[key].as_i64().unwrap_or(0) - stats_before[key].as_i64().unwrap_or(0)
    };
    let backend_requests = delta("requests");
    // The second `/stats` connection is one of the backend's own count.
    let backend_connections = delta("connections") - 1;

    for (k, kind) in KINDS.iter().enumerate() {
        let line = tally
            .iter()
            .filter(|((t, _), _)| *t == k)
            .map(|((_, label), n)| format!("{label}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        record.figure(kind, line);
    }
    record.number("elapsed_s", elapsed, 1);
    record.figure("answered_400_or_closed", refused);
    record.figure("load_connect_failures", connect_failed);
    record.figure("backend_requests_delta", backend_requests);
    record.figure("backend_connections_delta", backend_connections);
    let growth = record.rss_figures(rss_fresh, rss_before, rss_after);
    record.figure("fds_before", fds_before);
    record.figure("fds_after", fds_after);
    record.check(
        "each connection gets a 400 or a close",
        format!("{refused}/{counted}"),
        refused == options.connections,
    );
    record.check(
        "the backend receives nothing",
        format!("{backend_requests} requests, {backend_connections} connections"),
        backend_requests == 0,
    );
    record.check(
        "RSS back to baseline (+5%)",
        format!("{:+.1}%", growth * 100.0),
        growth <= RSS_GROWTH && fds_after <= fds_before,
    );
    Ok(record)
}

/// Sends connections `range` (each its kind of malformed bytes), `concurrency` at a
/// time; returns each one's kind and answer (`None`: could not connect).
async fn flood(
    addr: SocketAddr,
    range: std::ops::Range<usize>,
    concurrency: usize,
    within: Duration,
) -> io::Result<Vec<(usize, Option<Answer>)>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(range.len());
    for i in range {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        set.spawn(async move {
            let _permit = permit;
            let mut rng = Rng::new(0x5eed ^ (i as u64).wrapping_mul(0x9E37_79B9));
            let (bytes, eof) = payload(i, &mut rng);
            let answer = async {
                let Ok(Ok(mut stream)) = tokio::time::timeout(within, load::connect(addr)).await
                else {
                    return None;
                };
                if stream.write_all(&bytes).await.is_err() {
                    return Some(Answer::Reset);
                }
                if eof && stream.shutdown().await.is_err() {
                    return Some(Answer::Reset);
                }
                Some(super::await_answer(&mut stream, within).await)
            }
            .await;
            (i % KINDS.len(), answer)
        });
        // Reap as we go, so that finished tasks do not pile up.
        while let Some(done) = set.try_join_next() {
            results.push(done.map_err(io::Error::other)?);
        }
    }
    while let Some(joined) = set.join_next().await {
        results.push(joined.map_err(io::Error::other)?);
    }
    Ok(results)
}
