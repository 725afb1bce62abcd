//! Upstreams that die, refuse, stay silent or cannot be reached.

use super::{bounded, metric, spread, start_observed, ws_open, ws_recv, ws_send, STEP};
use crate::backend::{upgrade_request, Backend, Mortal};
use crate::http::Conn;
use crate::scenarios::metrics::scrape;
use crate::scenarios::{get, start, start_with};
use crate::ws;
use crate::{test_config, ProxyUnderTest, RunningProxy};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// WebSockets open when the backend dies, and the latest a Close may come.
const DYING_TUNNELS: usize = 100;
const CLOSE_WITHIN: Duration = Duration::from_millis(500);

/// 100 WebSockets are open (each echoed once) and one plain request is in flight
/// (the backend read it and holds it) when the backend dies as if killed: its listener
/// and every connection closed at once with a TCP reset. Every WebSocket client gets
/// `Close 1014 "upstream went away"` within 500 ms (the target is 100 ms; the
/// figures are printed), and the request in flight gets a `502` as promptly. Once the
/// clients close, `/metrics` (where served) shows nothing left open.
pub async fn backend_death_gives_websockets_1014_and_in_flight_request_502(p: &dyn ProxyUnderTest) {
    let backend = Mortal::start().await;
    let o = start_observed(p, test_config(backend.addr)).await;
    let addr = o.proxy.addr;
    let conns = bounded(DYING_TUNNELS, 25, |i| async move {
        let mut c = ws_open(addr)
            .await
            .unwrap_or_else(|e| panic!("tunnel {i}: {e}"));
        let msg = format!("alive {i}");
        ws_send(&mut c, ws::TEXT, msg.as_bytes(), i).await.unwrap();
        let f = ws_recv(&mut c, STEP)
            .await
            .unwrap_or_else(|e| panic!("tunnel {i}: {e}"));
        assert_eq!(f.payload, msg.as_bytes(), "tunnel {i}: echo");
        c
    })
    .await;
    assert!(
        backend.wait(STEP, |m| m.tunnels() == DYING_TUNNELS).await,
        "the backend has {} tunnels",
        backend.tunnels()
    );
    let mut request = Conn::connect(addr).await.unwrap();
    request.write(&get("/in-flight")).await.unwrap();
    assert!(
        backend.wait(STEP, |m| m.held() == 1).await,
        "the request never reached the backend"
    );
    // Everyone waits for what the proxy sends; each notes when it came.
    let waiters: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let f = ws_recv(&mut c, STEP).await;
                (Instant::now(), f)
            })
        })
        .collect();
    let in_flight = tokio::spawn(async move {
        let r = tokio::time::timeout(STEP, request.read_response("GET")).await;
        (Instant::now(), r)
    });
    let killed = Instant::now();
    assert!(
        backend.kill().await,
        "the backend's sockets were not all closed"
    );
    let mut latencies = Vec::new();
    for (i, w) in waiters.into_iter().enumerate() {
        let (at, f) = w.await.unwrap();
        let f = f.unwrap_or_else(|e| panic!("tunnel {i}: no Close after the backend died: {e}"));
        assert_eq!(
            f.close(),
            Some((1014, "upstream went away".into())),
            "tunnel {i}: frame after the backend died: {f:?}"
        );
        latencies.push(at.saturating_duration_since(killed));
    }
    let (at, r) = in_flight.await.unwrap();
    let r = r
        .expect("no answer to the request in flight")
        .expect("reading the answer to the request in flight");
    let request_latency = at.saturating_duration_since(killed);
    eprintln!(
        "backend death: Close 1014 after {}; 502 after {request_latency:?}",
        spread(latencies.clone())
    );
    assert_eq!(r.status, 502, "request in flight when the backend died");
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest <= CLOSE_WITHIN,
        "a Close 1014 came {slowest:?} after the backend died"
    );
    assert!(
        request_latency <= CLOSE_WITHIN,
        "the 502 came {request_latency:?} after the backend died"
    );
    // the clients have closed their ends: nothing may be left behind
    super::wait_proxy_idle(&o, STEP).await.unwrap();
}

/// One request (or upgrade request) on a fresh connection: the status and how long
/// the answer took.
async fn timed(proxy: &RunningProxy, request: Vec<u8>, within: Duration) -> (u16, Duration) {
    let mut c = Conn::connect(proxy.addr).await.expect("connect");
    let start = Instant::now();
    c.write(&request).await.unwrap();
    let r = tokio::time::timeout(within, c.read_response("GET"))
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?}"))
        .expect("read the answer");
    (r.status, start.elapsed())
}

/// Nothing listens at the upstream's port (connections are refused): 20 requests
/// and 20 WebSocket upgrades, on fresh connections, each get a `502` within 500 ms
/// (refusal is immediate on loopback; no connect deadline is waited for).
pub async fn upstream_refused_is_502_promptly(p: &dyn ProxyUnderTest) {
    let dead = super::super::routing::dead_addr();
    let proxy = start(p, dead).await; // upstream_connect = 3 s
    let mut took = Vec::new();
    for i in 0..20 {
        for request in [get(&format!("/{i}")), upgrade_request("example.test")] {
            let (status, t) = timed(&proxy, request, STEP).await;
            assert_eq!(status, 502, "attempt {i}");
            took.push(t);
        }
    }
    let slowest = took.iter().max().copied().unwrap_or_default();
    eprintln!("refused upstream: 502 after {}", spread(took));
    assert!(
        slowest <= Duration::from_millis(500),
        "a 502 for a refused upstream took {slowest:?}"
    );
}

/// The response deadline of the blackhole scenarios.
const RESPONSE_HEAD: Duration = Duration::from_secs(1);

/// The upstream accepts and reads but never answers (a blackhole), with
/// `upstream_response_head = 1s`: a request and a WebSocket upgrade sent at the same
/// time each get a `504` between 0.9 s and 2 s.
pub async fn upstream_blackholed_is_504_at_the_deadline(p: &dyn ProxyUnderTest) {
    let backend = Backend::silent().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.upstream_response_head = RESPONSE_HEAD
    })
    .await;
    let within = RESPONSE_HEAD + STEP;
    let (plain, upgrade) = tokio::join!(
        timed(&proxy, get("/blackhole"), within),
        timed(&proxy, upgrade_request("example.test"), within),
    );
    eprintln!("blackholed upstream: request {plain:?}, upgrade {upgrade:?}");
    for (what, (status, took)) in [("request", plain), ("upgrade", upgrade)] {
        assert_eq!(status, 504, "{what}");
        assert!(
            took >= RESPONSE_HEAD - Duration::from_millis(100) && took <= Duration::from_secs(2),
            "{what}: 504 after {took:?} with upstream_response_head = {RESPONSE_HEAD:?}"
        );
    }
    assert_eq!(backend.requests().len(), 2, "requests the blackhole read");
}

/// A listener whose accept queue is full and that never accepts: on Linux, SYNs to it
/// are dropped, so a connect neither succeeds nor fails. Returns it, the connections
/// that fill its queue, and its address; `None` if no connect got stuck.
async fn unreachable_peer() -> Option<(
    tokio::net::TcpListener,
    Vec<tokio::net::TcpStream>,
    SocketAddr,
)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // Two connects in a row that neither succeed nor fail within 300 ms (one could be
    // merely slow on a loaded machine; on loopback two are not).
    let mut stuck = 0;
    for _ in 0..10 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => {
                fillers.push(s);
                stuck = 0;
            }
            Ok(Err(_)) => return None,
            Err(_) => {
                stuck += 1;
                if stuck == 2 {
                    return Some((listener, fillers, addr));
                }
            }
        }
    }
    None
}

/// The connect deadline of the unreachable scenario.
const CONNECT: Duration = Duration::from_secs(1);

/// The upstream cannot be reached (its SYNs are dropped: a listener with a full
/// accept queue), with `upstream_connect = 1s`: a request and a WebSocket upgrade sent
/// at the same time each get a `502` between 0.9 s and 2 s, and where `/metrics` is
/// served both failures are counted as timeouts.
pub async fn upstream_connect_timeout_is_502_at_the_deadline(p: &dyn ProxyUnderTest) {
    let (_listener, _fillers, addr) = unreachable_peer()
        .await
        .expect("could not make a peer whose SYNs are dropped (a full accept queue)");
    let mut config = test_config(addr);
    config.timeouts.upstream_connect = CONNECT;
    let o = start_observed(p, config).await;
    let within = CONNECT + STEP;
    let (plain, upgrade) = tokio::join!(
        timed(&o.proxy, get("/unreachable"), within),
        timed(&o.proxy, upgrade_request("example.test"), within),
    );
    eprintln!("unreachable upstream: request {plain:?}, upgrade {upgrade:?}");
    for (what, (status, took)) in [("request", plain), ("upgrade", upgrade)] {
        assert_eq!(status, 502, "{what}: connect timeout");
        assert!(
            took >= CONNECT - Duration::from_millis(100) && took <= Duration::from_secs(2),
            "{what}: 502 after {took:?} with upstream_connect = {CONNECT:?}"
        );
    }
    if let Some(admin) = o.admin {
        let (_, text) = scrape(admin).await;
        assert_eq!(
            metric(
                &text,
                "switchyard_upstream_connect_failures_total{reason=\"timeout\"}"
            ),
            Some(2),
            "{text}"
        );
    }
}
