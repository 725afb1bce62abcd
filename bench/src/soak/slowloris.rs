//! Slowloris: connections that send a request head one byte per second and never
//! finish it. The head timeout must close each of them, counted from the head's first
//! byte (not from the last byte received, or a byte a second would keep it open
//! forever), with a 408 before the close; meanwhile normal clients must keep their rate.
//!
//! Each slow connection reads while it writes, so the close is timed when it happens,
//! not at the next byte. Waiting ends at `head_timeout + grace` after the first byte;
//! what is still open then is reported as "not closed".

use super::normal::{self, Normal};
use super::{quantile, sorted, status_of, Common, Record};
use crate::load;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Slow connections.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// The head timeout the proxy is expected to apply (seconds, from the first byte).
    #[arg(long, default_value_t = 60.0)]
    pub head_timeout: f64,
    /// How long past `head_timeout` to wait for closes before giving up (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Seconds between two bytes of a slow head.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    #[command(flatten)]
    pub normal: Normal,
}

/// A close counts as "at the timeout" within this fraction of it.
const TOLERANCE: f64 = 0.10;

/// The never-ending head: a request line and Host, then header lines forever. No
/// blank line can appear, so the head is never complete.
const HEAD_START: &[u8] = b"GET /slowloris HTTP/1.1\r\nHost: soak\r\n";
const HEAD_MORE: &[u8] = b"X-Slow: 1\r\n";

fn head_byte(i: usize) -> u8 {
    match HEAD_START.get(i) {
        Some(&b) => b,
        None => HEAD_MORE[(i - HEAD_START.len()) % HEAD_MORE.len()],
    }
}

/// What happened to one slow connection.
#[derive(Debug, Default, Clone)]
struct Slow {
    /// Seconds from its first byte to the close; `None`: not closed (or never opened).
    closed_after: Option<f64>,
    /// The status the proxy sent before closing, if any.
    status: Option<u16>,
    reset: bool,
    opened: bool,
    bytes_sent: usize,
}

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let mut record = Record::new("slowloris", common);
    record.setting("connections", options.connections);
    record.setting("head_timeout_s", options.head_timeout);
    record.setting("wait_bound_s", options.head_timeout + options.grace);
    options.normal.settings(&mut record);

    let normal = &options.normal;
    let before = normal::measure(common, normal, normal.pairs, normal.window).await?;

    let started = Arc::new(AtomicUsize::new(0));
    let mut slow = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let (started, addr, options) = (started.clone(), common.addr, options.clone());
        slow.push(tokio::spawn(async move {
            let mut outcome = Slow::default();
            let Ok(Ok(mut stream)) =
                tokio::time::timeout(Duration::from_secs(5), load::connect(addr)).await
            else {
                started.fetch_add(1, Ordering::Relaxed);
                return outcome;
            };
            outcome.opened = true;
            let first = Instant::now();
            let deadline = first + Duration::from_secs_f64(options.head_timeout + options.grace);
            let interval = Duration::from_secs_f64(options.interval);
            let mut next = first;
            let mut response = Vec::new();
            let mut read_buf = [0u8; 1024];
            let mut counted = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {
                        let byte = [head_byte(outcome.bytes_sent)];
                        if stream.write_all(&byte).await.is_err() {
                            outcome.closed_after = Some(first.elapsed().as_secs_f64());
                            outcome.reset = true;
                            break;
                        }
                        outcome.bytes_sent += 1;
                        if !counted {
                            started.fetch_add(1, Ordering::Relaxed);
                            counted = true;
                        }
                        next += interval;
                    }
                    read = stream.read(&mut read_buf) => match read {
                        Ok(0) => {
                            outcome.closed_after = Some(first.elapsed().as_secs_f64());
                            break;
                        }
                        Ok(n) => {
                            response.extend_from_slice(&read_buf[..n]);
                            outcome.status = outcome.status.or_else(|| status_of(&response));
                        }
                        Err(_) => {
                            outcome.closed_after = Some(first.elapsed().as_secs_f64());
                            outcome.reset = true;
                            break;
                        }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            if !counted {
                started.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        }));
    }
    // The normal clients measure once every slow connection has sent its first byte,
    // and must be done well before the first head timeout fires.
    let first_bytes = Instant::now();
    while started.load(Ordering::Relaxed) < options.connections
        && first_bytes.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The proxy's CPU with only the slow connections (a byte each per second): what
    // keeping them costs it, which slows the control's windows too (see `normal`).
    let idle_window = (options.head_timeout * 0.2).min(2.0);
    let cpu_slow_only = common.proxy()?.cpu_over(idle_window).await;
    // The pairs with slow clients must end before the first head timeout fires: fewer
    // of them if need be, then shorter windows.
    let spent = first_bytes.elapsed().as_secs_f64();
    let available = (options.head_timeout * 0.8 - spent - 1.0).max(1.0);
    let pairs =
        ((available / normal.phase_seconds(1)).floor() as usize).clamp(1, normal.pairs.max(1));
    let window = normal
        .window
        .min(available / (2 * pairs) as f64 - normal::WARMUP)
        .max(0.5);
    if pairs < normal.pairs || window < normal.window {
        record.note(format!(
            "{pairs} pair(s) of {window:.1} s windows with slow clients, to end before the head timeout"
        ));
    }
    let during = normal::measure(common, normal, pairs, window).await?;

    let mut outcomes = Vec::with_capacity(slow.len());
    for task in slow {
        outcomes.push(task.await.map_err(io::Error::other)?);
    }
    // The two instances again, once the slow connections are gone (closed by the proxy
    // or, past the bound, by us).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = normal::measure(common, normal, normal.pairs, normal.window).await?;
    let n = outcomes.len();
    let opened = outcomes.iter().filter(|o| o.opened).count();
    let closed: Vec<&Slow> = outcomes
        .iter()
        .filter(|o| o.closed_after.is_some())
        .collect();
    let times = sorted(closed.iter().filter_map(|o| o.closed_after).collect());
    let with_408 = closed.iter().filter(|o| o.status == Some(408)).count();
    let other_status = closed
        .iter()
        .filter(|o| o.status.is_some_and(|s| s != 408))
        .count();
    let resets = closed.iter().filter(|o| o.reset).count();
    let t = options.head_timeout;
    let on_time = times
        .iter()
        .filter(|&&s| s >= t * (1.0 - TOLERANCE) && s <= t * (1.0 + TOLERANCE))
        .count();
    let early = times.iter().filter(|&&s| s < t * (1.0 - TOLERANCE)).count();
    let max_bytes = outcomes.iter().map(|o| o.bytes_sent).max().unwrap_or(0);

    normal::record_phases(&mut record, &before, &during, &after, cpu_slow_only);
    record.figure("slow_opened", opened);
    record.figure("closed", closed.len());
    record.figure("not_closed", n - closed.len());
    record.number("closed_fraction", closed.len() as f64 / n.max(1) as f64, 3);
    record.number("close_after_p50_s", quantile(&times, 0.5), 2);
    record.number("close_after_max_s", quantile(&times, 1.0), 2);
    record.figure("closed_early", early);
    record.figure("got_408", with_408);
    record.figure("got_other_status", other_status);
    record.figure("closed_by_reset", resets);
    record.figure("most_head_bytes_sent", max_bytes);
    if opened < n {
        record.note(format!("{} slow connections could not connect", n - opened));
    }
    record.check(
        &format!("every slow connection closed at the head timeout ({t} s ±10%)"),
        format!("{on_time}/{n}"),
        on_time == n,
    );
    record.check(
        "a 408 before each close",
        format!("{with_408}/{n}"),
        with_408 == n,
    );
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slow_head_never_ends() {
        let head: Vec<u8> = (0..5000).map(head_byte).collect();
        assert!(head.starts_with(HEAD_START));
        assert!(crate::http::head_end(&head).is_none());
    }
}
