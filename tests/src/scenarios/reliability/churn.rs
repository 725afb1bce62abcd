//! Many WebSockets: one after another (churn), and all at once.

use super::{
    bounded, close_payload, gauges, spread, start_observed, wait_proxy_idle, ws_open, ws_recv,
    ws_send, STEP,
};
use crate::backend::WsEcho;
use crate::http::Conn;
use crate::ws;
use crate::{raise_fd_limit, test_config, ProxyUnderTest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cycles of the churn scenario, and how many run at once.
const CYCLES: usize = 2000;
const WORKERS: usize = 16;

/// One churn cycle: open a WebSocket, echo one 32-byte message, close handshake
/// (`1000 "bye"` both ways), then the proxy closes the TCP connection.
async fn churn_cycle(addr: SocketAddr, i: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let mut c = ws_open(addr).await?;
    let payload = format!("cycle {i:026}");
    debug_assert_eq!(payload.len(), 32);
    ws_send(&mut c, ws::TEXT, payload.as_bytes(), i).await?;
    let f = ws_recv(&mut c, STEP).await?;
    if f.opcode != ws::TEXT || f.payload != payload.as_bytes() {
        return Err(format!(
            "echo was opcode {:x} {:?}, sent {payload:?}",
            f.opcode,
            String::from_utf8_lossy(&f.payload)
        ));
    }
    ws_send(&mut c, ws::CLOSE, &close_payload(1000, "bye"), i + 1).await?;
    let f = ws_recv(&mut c, STEP).await?;
    if f.close() != Some((1000, "bye".into())) {
        return Err(format!("answer to Close 1000 \"bye\": {f:?}"));
    }
    let rest = c.expect_close(STEP).await?;
    if !rest.is_empty() {
        return Err(format!("bytes after the Close: {rest:?}"));
    }
    Ok(start.elapsed())
}

/// 2,000 cycles of WebSocket open → one 32-byte echo → close handshake, 16 at a time:
/// no cycle fails, every echo is exact, every close handshake completes with the
/// proxy closing the connection; afterwards the backend holds no connection (one was
/// opened per cycle, each got its message and its Close) and, where `/metrics` is
/// served, the proxy reports no open connection and no open tunnel.
pub async fn churn_two_thousand_websocket_cycles_leave_nothing_open(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let o = start_observed(p, test_config(backend.addr)).await;
    let addr = o.proxy.addr;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut times = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= CYCLES {
                        return (failures, times);
                    }
                    match churn_cycle(addr, i).await {
                        Ok(t) => times.push(t),
                        Err(e) => failures.push(format!("cycle {i}: {e}")),
                    }
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    let mut times = Vec::new();
    for w in workers {
        let (f, t) = w.await.expect("worker panicked");
        failures.extend(f);
        times.extend(t);
    }
    let took = started.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {CYCLES} cycles failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    eprintln!(
        "churn: {CYCLES} cycles ({WORKERS} at once) in {took:?}; per cycle {}",
        spread(times)
    );
    let log = backend
        .wait_for(STEP, |l| l.accepted >= CYCLES && l.open() == 0)
        .await;
    assert_eq!(log.accepted, CYCLES, "upstream connections (one per cycle)");
    assert_eq!(
        log.open(),
        0,
        "upstream connections still open {STEP:?} after the last cycle"
    );
    assert_eq!(log.messages, CYCLES, "messages the backend echoed");
    assert_eq!(log.closes.len(), CYCLES, "Close frames the backend got");
    assert!(
        log.closes
            .iter()
            .all(|c| c.as_ref() == Some(&(1000, "bye".to_string()))),
        "a Close reached the backend changed"
    );
    assert!(log.errors.is_empty(), "backend errors: {:?}", log.errors);
    wait_proxy_idle(&o, STEP).await.unwrap();
}

/// Tunnels of the many-tunnels scenario.
const TUNNELS: usize = 500;

/// 500 WebSockets open at the same time (the backend and, where served, `/metrics`
/// count all 500 open at once); each echoes its own distinct message exactly, all of
/// them concurrently; then each closes with its own code and reason, which comes back
/// from the backend, and the proxy closes every connection. Afterwards nothing is
/// left open on either side.
pub async fn five_hundred_concurrent_websockets_echo_and_close_cleanly(p: &dyn ProxyUnderTest) {
    // Per tunnel, this process holds the client's and the backend's sockets, plus the
    // proxy's two when it runs in-process: 2,000 descriptors, more than a common soft
    // limit of 1,024.
    let wanted = (TUNNELS * 4 + 1024) as u64;
    let limit = raise_fd_limit(wanted);
    assert!(
        limit >= wanted,
        "this scenario needs about {wanted} open files; the limit is {limit} and could not be raised (ulimit -n)"
    );
    let backend = WsEcho::start().await;
    let o = start_observed(p, test_config(backend.addr)).await;
    let addr = o.proxy.addr;
    let opened = Instant::now();
    // opened 50 at a time, so that no listen backlog overflows (a dropped SYN is
    // retried after a second)
    let conns: Vec<Conn> = bounded(TUNNELS, 50, |i| async move {
        ws_open(addr)
            .await
            .unwrap_or_else(|e| panic!("tunnel {i}: {e}"))
    })
    .await;
    let open_took = opened.elapsed();
    let log = backend
        .wait_for(STEP, |l| l.accepted >= TUNNELS || !l.errors.is_empty())
        .await;
    assert_eq!(
        (log.accepted, log.open()),
        (TUNNELS, TUNNELS),
        "upstream connections accepted and open at once"
    );
    if let Some(admin) = o.admin {
        let (open, tunnels, _) = gauges(admin).await;
        assert_eq!(
            (open, tunnels),
            (TUNNELS as u64, TUNNELS as u64),
            "connections_open and tunnels_open"
        );
    }
    // every tunnel echoes its own message, all at once
    let echoed = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let msg = format!("tunnel {i} says {}", "x".repeat(i % 97));
                ws_send(&mut c, ws::TEXT, msg.as_bytes(), i).await?;
                let f = ws_recv(&mut c, Duration::from_secs(5)).await?;
                if f.opcode != ws::TEXT || f.payload != msg.as_bytes() {
                    return Err(format!(
                        "tunnel {i}: sent {msg:?}, got opcode {:x} {:?}",
                        f.opcode,
                        String::from_utf8_lossy(&f.payload)
                    ));
                }
                Ok(c)
            })
        })
        .collect();
    let mut conns = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        conns.push(
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("tunnel {i}: {e}")),
        );
    }
    let echo_took = echoed.elapsed();
    // every tunnel closes with its own reason, all at once
    let closed = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let reason = format!("bye {i}");
                ws_send(&mut c, ws::CLOSE, &close_payload(4000, &reason), i).await?;
                let f = ws_recv(&mut c, Duration::from_secs(5)).await?;
                if f.close() != Some((4000, reason.clone())) {
                    return Err(format!("answer to Close 4000 {reason:?}: {f:?}"));
                }
                let rest = c.expect_close(Duration::from_secs(5)).await?;
                if rest.is_empty() {
                    Ok(())
                } else {
                    Err(format!("bytes after the Close: {rest:?}"))
                }
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        t.await
            .unwrap()
            .unwrap_or_else(|e| panic!("tunnel {i}: {e}"));
    }
    let close_took = closed.elapsed();
    eprintln!(
        "{TUNNELS} tunnels: opened in {open_took:?}, all echoed in {echo_took:?}, all closed in {close_took:?}"
    );
    let log = backend.wait_for(STEP, |l| l.open() == 0).await;
    assert_eq!(log.open(), 0, "upstream connections left open");
    assert_eq!(log.messages, TUNNELS);
    let mut reasons: Vec<_> = log
        .closes
        .iter()
        .map(|c| c.clone().expect("a Close with a code"))
        .collect();
    reasons.sort();
    let mut expected: Vec<_> = (0..TUNNELS).map(|i| (4000, format!("bye {i}"))).collect();
    expected.sort();
    assert!(
        reasons == expected,
        "the Close frames the backend got are not each tunnel's own"
    );
    assert!(log.errors.is_empty(), "backend errors: {:?}", log.errors);
    wait_proxy_idle(&o, STEP).await.unwrap();
}
