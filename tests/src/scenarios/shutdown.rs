//! Graceful shutdown of `serve`: idle connections close at once, in-flight work
//! finishes, everything ends by `timeouts.shutdown`.

use super::{client, get, response, start_with, RESPONSE_WAIT};
use crate::backend::{Backend, Reply, WsEcho};
use crate::http;
use crate::ws;
use crate::ProxyUnderTest;
use futures_util::SinkExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// An idle keep-alive client does not hold shutdown up: with a 5 s shutdown deadline,
/// `serve` returns within 1.5 s and the client sees its connection closed.
pub async fn shutdown_with_idle_keepalive_connection_returns_promptly(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.shutdown = Duration::from_secs(5)
    })
    .await;
    let mut c = client(&proxy).await;
    c.write(&get("/")).await.unwrap();
    assert_eq!(response(&mut c, "GET", "before shutdown").await.status, 200);
    let start = Instant::now();
    proxy
        .shutdown(Duration::from_millis(1500))
        .await
        .expect("serve returned promptly");
    c.expect_close(Duration::from_secs(1))
        .await
        .expect("idle keep-alive connection closed on shutdown");
    assert!(start.elapsed() < Duration::from_millis(2500));
}

/// A request in flight when shutdown begins still gets its whole response, marked
/// `Connection: close`; then `serve` returns within the deadline and the port no
/// longer accepts.
pub async fn shutdown_lets_in_flight_request_finish(p: &dyn ProxyUnderTest) {
    let body = http::pattern(100_000, 9);
    let reply = http::ok(&body);
    let backend =
        Backend::http(move |_| Reply::Delayed(Duration::from_millis(500), reply.clone())).await;
    let mut proxy = start_with(p, backend.addr, |c| {
        c.timeouts.shutdown = Duration::from_secs(3)
    })
    .await;
    let addr = proxy.addr;
    let mut c = client(&proxy).await;
    c.write(&get("/slow")).await.unwrap();
    // wait until the request reached the backend, then begin the shutdown
    let t0 = Instant::now();
    while backend.requests().is_empty() {
        assert!(
            t0.elapsed() < RESPONSE_WAIT,
            "request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.begin_shutdown();
    let r = response(&mut c, "GET", "in-flight request during shutdown").await;
    assert_eq!(r.status, 200);
    assert!(r.body == body, "in-flight body cut or changed");
    assert!(
        r.head.has_token("connection", "close"),
        "in-flight response during shutdown: {:?}",
        r.head.headers
    );
    proxy
        .shutdown(Duration::from_secs(4))
        .await
        .expect("serve returned within the deadline");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the proxy still accepts connections after serve returned"
    );
}

/// An open WebSocket when shutdown begins gets `Close 1001 "going away"` on both
/// sides, by the deadline (1 s), and `serve` returns.
pub async fn shutdown_ends_open_tunnel_by_deadline(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let mut proxy = start_with(p, backend.addr, |c| {
        c.timeouts.shutdown = Duration::from_secs(1)
    })
    .await;
    let mut client = ws::connect(proxy.addr).await;
    client.send(Message::text("before")).await.unwrap();
    ws::next(&mut client, RESPONSE_WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    let start = Instant::now();
    proxy.begin_shutdown();
    let end = ws::wait_end(&mut client, Duration::from_millis(2500))
        .await
        .expect("tunnel ended by the deadline");
    assert_eq!(
        end,
        ws::End::Close(Some((1001, "going away".into()))),
        "what the client saw"
    );
    let log = backend
        .wait_for(RESPONSE_WAIT, |l| !l.closes.is_empty())
        .await;
    assert_eq!(
        log.closes,
        [Some((1001, "going away".to_string()))],
        "what the upstream saw"
    );
    proxy
        .shutdown(Duration::from_secs(2))
        .await
        .expect("serve returned");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        start.elapsed()
    );
}
