//! Backend death: WebSocket tunnels open and HTTP requests in flight when the backend
//! is killed with SIGKILL. Every WebSocket client should get a Close frame saying why
//! (1014, "bad gateway": the upstream went away) within 100 ms, rather than a bare TCP
//! close that it cannot tell from a network failure (1006); every request in flight a
//! 502; and the proxy must not spin on the dead sockets afterwards.
//!
//! The backend here is a child process of this tool (the same `backend` subcommand on
//! its own port, inheriting this tool's core), so that killing it touches nothing else.

use super::{
    close_frame, get_json, one_request, open_tunnels, quantile, sorted, spawn_backend, Answer,
    Common, Record, Tunnel,
};
use crate::load;
use crate::ws::{self, parse_header};
use bytes::Buf;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Where the backend to be killed listens (the proxy's upstream in this scenario).
    #[arg(long)]
    pub victim: SocketAddr,
    /// WebSocket tunnels open when the backend dies.
    #[arg(long, default_value_t = 1000)]
    pub tunnels: usize,
    /// HTTP requests in flight (the backend holds them, `GET /delay`) when it dies.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// The deadline for the Close frame after the kill (milliseconds).
    #[arg(long, default_value_t = 100.0)]
    pub deadline_ms: f64,
    /// How long after the kill to wait for each client's outcome (seconds).
    #[arg(long, default_value_t = 5.0)]
    pub wait: f64,
    /// Seconds over which the proxy's CPU is measured once every client has its answer.
    #[arg(long, default_value_t = 2.0)]
    pub cpu_window: f64,
}

/// "No spin": the proxy's CPU after the kill stays under this share of a core.
const MAX_CPU: f64 = 0.05;
/// The close code for "the upstream went away" (RFC 6455 §7.4.1: 1014 bad gateway).
const BAD_GATEWAY: u16 = 1014;

/// How a tunnel ended after the kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// A Close frame with this code (1005: none in it).
    Close(u16),
    /// TCP closed without a Close frame: the client's 1006.
    Eof,
    Reset,
    /// Nothing within the wait.
    Nothing,
}

pub async fn run(common: &Common, options: Options) -> io::Result<Record> {
    let proxy = common.proxy()?;
    let mut record = Record::new("backend-death", common);
    record.setting("tunnels", options.tunnels);
    record.setting("in_flight_requests", options.in_flight);
    record.setting("deadline_ms", options.deadline_ms);

    let mut victim = spawn_backend(options.victim, None).await?;

    let (tunnels, open_failed, first) =
        open_tunnels(common.addr, options.tunnels, 128, Duration::from_secs(30)).await;
    if let Some(first) = first {
        record.note(format!("first tunnel failure: {first}"));
    }

    // Requests the backend holds (it answers /delay after 60 s) when it dies.
    let wait = Duration::from_secs_f64(options.wait);
    let hold_for = Duration::from_secs(60);
    let mut requests = Vec::with_capacity(options.in_flight);
    for _ in 0..options.in_flight {
        let addr = common.addr;
        requests.push(tokio::spawn(async move {
            let Ok(mut stream) = load::connect(addr).await else {
                return (Answer::Reset, Instant::now());
            };
            let request = format!(
                "GET /delay?ms={} HTTP/1.1\r\nHost: soak\r\n\r\n",
                hold_for.as_millis()
            );
            if stream.write_all(request.as_bytes()).await.is_err() {
                return (Answer::Reset, Instant::now());
            }
            let answer = super::await_answer(&mut stream, hold_for).await;
            (answer, Instant::now())
        }));
    }
    // Every tunnel's upgrade and every request must have reached the backend.
    let expected = (tunnels.len() + options.in_flight) as u64;
    let reached = Instant::now();
    loop {
        let seen = get_json(options.victim, "/stats")
            .await
            .ok()
            .and_then(|stats| stats["requests"].as_u64())
            .unwrap_or(0);
        if seen >= expected {
            break;
        }
        if reached.elapsed() > Duration::from_secs(5) {
            record.note(format!(
                "only {seen} of {expected} requests had reached the backend when it was killed"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let opened = tunnels.len();
    let watch_until = Instant::now() + Duration::from_millis(300) + wait;
    let watchers: Vec<_> = tunnels
        .into_iter()
        .map(|tunnel| tokio::spawn(watch(tunnel, watch_until)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed_at = Instant::now();
    victim.start_kill()?;
    let _ = victim.wait().await;

    let mut ends = Vec::with_capacity(opened);
    for watcher in watchers {
        ends.push(watcher.await.map_err(io::Error::other)?);
    }
    let mut answers = Vec::with_capacity(options.in_flight);
    for request in requests {
        let (answer, at) = match tokio::time::timeout(wait + Duration::from_secs(1), request).await
        {
            Ok(joined) => joined.map_err(io::Error::other)?,
            Err(_) => (Answer::Nothing, Instant::now()),
        };
        answers.push((answer, at));
    }
    let cpu_after = proxy.cpu_over(options.cpu_window).await;
    let after_start = Instant::now();
    let fresh = one_request(common.addr, "/", Duration::from_secs(5)).await;
    let fresh_ms = after_start.elapsed().as_secs_f64() * 1e3;

    let ms_after_kill = |at: Instant| at.saturating_duration_since(killed_at).as_secs_f64() * 1e3;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut close_times = Vec::new();
    let mut in_time_1014 = 0;
    for &(ended, at) in &ends {
        let label = match ended {
            Ended::Close(code) => {
                close_times.push(ms_after_kill(at));
                if code == BAD_GATEWAY && ms_after_kill(at) <= options.deadline_ms {
                    in_time_1014 += 1;
                }
                format!("close {code}")
            }
            Ended::Eof => {
                close_times.push(ms_after_kill(at));
                "no close frame (1006)".to_owned()
            }
            Ended::Reset => {
                close_times.push(ms_after_kill(at));
                "reset (1006)".to_owned()
            }
            Ended::Nothing => "nothing".to_owned(),
        };
        *codes.entry(label).or_default() += 1;
    }
    let close_times = sorted(close_times);
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut status_times = Vec::new();
    for &(answer, at) in &answers {
        *statuses.entry(answer.label()).or_default() += 1;
        if answer != Answer::Nothing {
            status_times.push(ms_after_kill(at));
        }
    }
    let status_times = sorted(status_times);
    let got_502 = statuses.get("502").copied().unwrap_or(0);
    let summary = |map: &BTreeMap<String, usize>| {
        map.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };

    record.figure("tunnels_open", opened);
    record.figure("open_failures", open_failed);
    record.figure("tunnel_ends", summary(&codes));
    record.figure("close_1014_within_deadline", in_time_1014);
    record.number("tunnel_end_p50_ms", quantile(&close_times, 0.5), 1);
    record.number("tunnel_end_max_ms", quantile(&close_times, 1.0), 1);
    record.figure("in_flight_answers", summary(&statuses));
    record.number("in_flight_answer_max_ms", quantile(&status_times, 1.0), 1);
    record.number("proxy_cpu_after_kill", cpu_after, 3);
    record.figure("new_request_after_kill", fresh.label());
    record.number("new_request_ms", fresh_ms, 1);
    record.check(
        "every WebSocket gets Close 1014 within 100 ms",
        format!("{in_time_1014}/{}", options.tunnels),
        in_time_1014 == options.tunnels,
    );
    record.check(
        "in-flight HTTP requests get 502",
        format!("{got_502}/{}", options.in_flight),
        got_502 == options.in_flight,
    );
    record.check(
        "no spin: proxy CPU after the kill < 5%",
        format!("{:.1}%", cpu_after * 100.0),
        cpu_after < MAX_CPU,
    );
    Ok(record)
}

/// Waits for the end of `tunnel` (at most until `until`); after a Close frame, answers
/// it as a client should and waits briefly for the TCP close.
async fn watch(mut tunnel: Tunnel, until: Instant) -> (Ended, Instant) {
    let until = tokio::time::Instant::from_std(until);
    loop {
        if let Some((header, n)) = parse_header(&tunnel.buf) {
            let total = n + header.len as usize;
            if tunnel.buf.len() >= total {
                let at = Instant::now();
                if header.opcode != ws::OP_CLOSE {
                    tunnel.buf.advance(total);
                    continue;
                }
                let payload = &tunnel.buf[n..total];
                let code = match payload {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                let _ = tunnel
                    .stream
                    .write_all(&close_frame(code, tunnel.mask))
                    .await;
                let mut rest = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Ok(n) = tunnel.stream.read(&mut rest).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                return (Ended::Close(code), at);
            }
        }
        tunnel.buf.reserve(1024);
        match tokio::time::timeout_at(until, tunnel.stream.read_buf(&mut tunnel.buf)).await {
            Ok(Ok(0)) => return (Ended::Eof, Instant::now()),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return (Ended::Reset, Instant::now()),
            Err(_) => return (Ended::Nothing, Instant::now()),
        }
    }
}
