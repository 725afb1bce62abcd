//! A flood of malformed requests.

use super::{bounded, spread, start_observed, wait_proxy_idle};
use crate::backend::Backend;
use crate::http::Conn;
use crate::scenarios::{exchange, get};
use crate::{test_config, ProxyUnderTest};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connections of the flood, how many at once, and the head deadline.
const FLOOD: usize = 500;
const AT_ONCE: usize = 25;
const CLIENT_HEAD: Duration = Duration::from_secs(1);
/// The longest any one of them may stay open.
const BOUND: Duration = Duration::from_secs(3);

/// xorshift64: reproducible "random" bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Malformed input number `i`, and whether the client then shuts down its write half.
fn malformed(i: usize) -> (Vec<u8>, bool) {
    let seed = i as u64 + 1;
    let r = noise(seed, 8);
    let good = format!("GET /flood/{i} HTTP/1.1\r\nHost: example.test\r\nX-A: b\r\n\r\n");
    match i % 6 {
        // random bytes, kept open or ended
        0 => (noise(seed, 16 + r[0] as usize), false),
        1 => (noise(seed, 16 + r[0] as usize), true),
        // a valid head cut short, then EOF
        2 => {
            let cut = 1 + r[1] as usize % (good.len() - 2);
            (good.as_bytes()[..cut].to_vec(), true)
        }
        // a complete head with random bytes in a field value, one of them a control
        // character (tabs and bytes over 0x7f alone would be a valid value)
        3 => {
            let mut junk = noise(seed, 32);
            junk[r[4] as usize % 32] = [0, 1, 8, 0x0b, 0x1f, 0x7f][r[5] as usize % 6];
            let mut b = b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Junk: ".to_vec();
            b.extend(junk.into_iter().map(|b| if b == b'\n' { 0 } else { b }));
            b.extend_from_slice(b"\r\n\r\n");
            (b, false)
        }
        // a complete head with one random byte of the request line replaced
        4 => {
            let mut b = good.clone().into_bytes();
            let at = r[2] as usize % 14; // in "GET /flood/N HTTP/1.1"
            b[at] = match r[3] {
                c if c.is_ascii_graphic() || c == b' ' => 0,
                c => c,
            };
            (b, false)
        }
        // a complete head with a field line that has no colon
        _ => (
            format!("GET /flood/{i} HTTP/1.1\r\nHost: example.test\r\nno colon {i}\r\n\r\n")
                .into_bytes(),
            false,
        ),
    }
}

/// How the proxy dealt with one malformed connection.
#[derive(Debug)]
enum Outcome {
    /// An answer with this status, then the close.
    Status(u16),
    /// Closed (or reset) without an answer.
    Closed,
}

async fn flood_one(addr: SocketAddr, i: usize) -> Result<(Outcome, Duration), String> {
    let (bytes, fin) = malformed(i);
    let mut c = Conn::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let start = Instant::now();
    // the proxy may answer and close while this is being written
    let _ = c.write(&bytes).await;
    if fin {
        let _ = c.shutdown_write().await;
    }
    let got = c.expect_close(BOUND).await?;
    let took = start.elapsed();
    if got.is_empty() {
        return Ok((Outcome::Closed, took));
    }
    let text = String::from_utf8_lossy(&got);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("answer is not an HTTP/1.1 response: {text:?}"))?;
    Ok((Outcome::Status(status), took))
}

/// 500 connections of malformed input, 25 at a time, with `client_head = 1s`: random
/// bytes (left open or ended), valid heads cut short then ended, complete heads with
/// random bytes in a field, a corrupted request line or a field without a colon. Each
/// gets a `400` (or `408`, `414`, `431`) or a bare close, within 3 s, never anything
/// else; the backend is not even connected to; afterwards a normal request is served
/// and `/metrics` (where served) shows no connection left open.
pub async fn malformed_flood_gets_4xx_or_close_and_reaches_no_backend(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let mut config = test_config(backend.addr);
    config.timeouts.client_head = CLIENT_HEAD;
    let o = start_observed(p, config).await;
    let addr = o.proxy.addr;
    let started = Instant::now();
    let outcomes = bounded(FLOOD, AT_ONCE, |i| flood_one(addr, i)).await;
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let mut took = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        let (outcome, t) = o.unwrap_or_else(|e| {
            panic!(
                "malformed input {i} ({:?}): {e}",
                String::from_utf8_lossy(&malformed(i).0)
            )
        });
        if let Outcome::Status(s) = outcome {
            assert!(
                [400, 408, 414, 431].contains(&s),
                "malformed input {i} ({:?}) got {s}",
                String::from_utf8_lossy(&malformed(i).0)
            );
        }
        *statuses.entry(format!("{outcome:?}")).or_default() += 1;
        took.push(t);
    }
    eprintln!(
        "malformed flood: {FLOOD} connections in {:?}: {statuses:?}; each closed after {}",
        started.elapsed(),
        spread(took)
    );
    assert!(
        backend.connections().is_empty(),
        "the backend was connected to {} times during the flood",
        backend.connections().len()
    );
    let r = exchange(&o.proxy, &get("/after-the-flood"), "GET").await;
    assert_eq!(
        (r.status, r.text()),
        (200, "GET /after-the-flood".to_string())
    );
    wait_proxy_idle(&o, BOUND).await.unwrap();
}
