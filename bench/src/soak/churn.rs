//! Churn: WebSocket open → one 32 B echo → close handshake, over and over from a pool
//! of workers. A proxy that leaks anything per tunnel (a descriptor, a buffer, a timer
//! entry) shows it here as fds or RSS that do not come back once the cycles stop.
//!
//! A cycle follows RFC 6455 §7.1.1 from the client's side: after the Close reply the
//! client waits for the server to close TCP first, so a proxy that answers the Close
//! but leaves the connection open fails the cycle (bounded by `--eof-within`).

use super::{close_frame, quantile, sorted, Common, Record, PAYLOAD};
use crate::load;
use crate::procfs;
use crate::ws::{self, Rng};
use bytes::Buf;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Cycles in all.
    #[arg(long, default_value_t = 100_000)]
    pub cycles: u64,
    /// Concurrent workers, each running one cycle after another.
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
    /// Cycles run before the "before" figures are read, so that the allocator's
    /// high-water mark for `workers` concurrent tunnels is not counted as growth (the
    /// RSS of the fresh proxy is reported too).
    #[arg(long, default_value_t = 1000)]
    pub warmup_cycles: u64,
    /// Seconds to wait after the last cycle before reading fds and RSS again.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Longest a cycle may take before it counts as failed (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub cycle_timeout: f64,
    /// Longest wait for the proxy's TCP close after the Close reply (seconds).
    #[arg(long, default_value_t = 2.0)]
    pub eof_within: f64,
    /// Stop starting cycles after this many seconds (the record says so).
    #[arg(long, default_value_t = 600.0)]
    pub max_seconds: f64,
}

/// Allowed RSS growth after the settle (the issue: within +5%).
const RSS_GROWTH: f64 = 0.05;

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let proxy = common.proxy()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_fresh = proxy.rss_kib()?;
    let warmup = Options {
        cycles: options.warmup_cycles,
        max_seconds: 60.0,
        ..options.clone()
    };
    let (warm_times, warm_failed, _) = cycles(common.addr, &warmup).await?;
    tokio::time::sleep(Duration::from_secs_f64(options.settle)).await;
    let (fds_before, rss_before) = (proxy.fds()?, proxy.rss_kib()?);
    let (cores_before, proxy_cpu_before) = (procfs::CoreTimes::read(), proxy.cpu());
    let started = Instant::now();
    let (times, failed, first_errors) = cycles(common.addr, &options).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let (cores_after, proxy_cpu_after) = (procfs::CoreTimes::read(), proxy.cpu());
    tokio::time::sleep(Duration::from_secs_f64(options.settle)).await;
    let (fds_after, rss_after) = (proxy.fds()?, proxy.rss_kib()?);

    let done = times.len() as u64;
    let times = sorted(times);
    let mut record = Record::new("churn", common);
    record.setting("cycles", options.cycles);
    record.setting("workers", options.workers);
    record.setting("warmup_cycles", options.warmup_cycles);
    record.setting("settle_s", options.settle);
    record.figure("cycles_ok", done);
    record.figure("failures", failed);
    record.number("elapsed_s", elapsed, 2);
    record.number("cycles_per_s", done as f64 / elapsed, 0);
    record.number("cycle_p50_ms", quantile(&times, 0.5), 2);
    record.number("cycle_p99_ms", quantile(&times, 0.99), 2);
    // Which core set the rate: the proxy's CPU per cycle, and how busy each core was
    // (the load generator and the backend share the other one).
    let proxy_cpu = proxy_cpu_after - proxy_cpu_before;
    record.number("proxy_cpu", proxy_cpu / elapsed, 2);
    record.number(
        "proxy_cpu_us_per_cycle",
        proxy_cpu * 1e6 / done.max(1) as f64,
        1,
    );
    let busy: Vec<_> = cores_before
        .busy_since(&cores_after)
        .into_iter()
        .map(|b| super::round(b, 2))
        .collect();
    record.figure("cores_busy", busy);
    record.figure("fds_before", fds_before);
    record.figure("fds_after", fds_after);
    let growth = record.rss_figures(rss_fresh, rss_before, rss_after);
    record.number(
        "rss_growth_since_fresh_pct",
        (rss_after / rss_fresh - 1.0) * 100.0,
        1,
    );
    if warm_failed > 0 || (warm_times.len() as u64) < options.warmup_cycles {
        record.note(format!(
            "warm-up: {warm_failed} of {} cycles failed",
            options.warmup_cycles
        ));
    }
    if done + failed < options.cycles {
        record.note(format!(
            "stopped at the {} s bound after {} of {} cycles",
            options.max_seconds,
            done + failed,
            options.cycles
        ));
    }
    for error in &first_errors {
        record.note(format!("failure: {error}"));
    }
    record.check(
        "0 failures",
        format!("{failed} of {}", done + failed),
        failed == 0 && done == options.cycles,
    );
    record.check(
        "open fds back to baseline",
        format!("{fds_before} → {fds_after}"),
        fds_after <= fds_before,
    );
    record.check(
        "RSS after 2 s settle within +5%",
        format!("{:+.1}%", growth * 100.0),
        growth <= RSS_GROWTH,
    );
    Ok(record)
}

/// Runs `options.cycles` cycles over `options.workers` workers (stopping at
/// `max_seconds`): the successful cycles' durations (ms), the failures, and the first
/// few failures' reasons.
async fn cycles(addr: SocketAddr, options: &Options) -> io::Result<(Vec<f64>, u64, Vec<String>)> {
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let first_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let stop_at = started + Duration::from_secs_f64(options.max_seconds);
    let mut workers = Vec::with_capacity(options.workers);
    for w in 0..options.workers.max(1) {
        let (next, failures, first_errors) = (next.clone(), failures.clone(), first_errors.clone());
        let options = options.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::from_time(w as u64);
            let mut times = Vec::new();
            loop {
                if Instant::now() >= stop_at
                    || next.fetch_add(1, Ordering::Relaxed) >= options.cycles
                {
                    return times;
                }
                let begun = Instant::now();
                let result = tokio::time::timeout(
                    Duration::from_secs_f64(options.cycle_timeout),
                    cycle(addr, &mut rng, Duration::from_secs_f64(options.eof_within)),
                )
                .await
                .unwrap_or_else(|_| Err(io::Error::other("cycle timed out")));
                match result {
                    Ok(()) => times.push(begun.elapsed().as_secs_f64() * 1e3),
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        let mut first = first_errors.lock().expect("not poisoned");
                        if first.len() < 5 {
                            first.push(e.to_string());
                        }
                    }
                }
            }
        }));
    }
    let mut times = Vec::new();
    for worker in workers {
        times.extend(worker.await.map_err(io::Error::other)?);
    }
    let failed = failures.load(Ordering::Relaxed);
    let first = first_errors.lock().expect("not poisoned").clone();
    Ok((times, failed, first))
}

/// One cycle: open, echo, Close 1000, the Close reply, the proxy's TCP close.
async fn cycle(addr: SocketAddr, rng: &mut Rng, eof_within: Duration) -> io::Result<()> {
    let (mut stream, mut buf) = load::ws_connect(addr, rng).await?;
    let mask = (rng.next() as u32).to_ne_bytes();
    let frame = load::client_frame(&PAYLOAD, mask);
    load::echo_once(&mut stream, &mut buf, &frame, &PAYLOAD).await?;
    stream.write_all(&close_frame(1000, mask)).await?;
    let header = load::read_frame(&mut stream, &mut buf).await?;
    if header.opcode != ws::OP_CLOSE {
        return Err(io::Error::other(format!(
            "expected the Close reply, got opcode {}",
            header.opcode
        )));
    }
    buf.advance(header.len as usize);
    let eof = async {
        buf.clear();
        buf.reserve(256);
        match stream.read_buf(&mut buf).await {
            Ok(0) => Ok(()),
            Ok(_) => Err(io::Error::other("bytes after the Close reply")),
            // A reset after the Close handshake still ends the connection.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    };
    tokio::time::timeout(eof_within, eof)
        .await
        .map_err(|_| io::Error::other("no TCP close after the Close handshake"))?
}
