//! Upstream failures and the deadlines around a request: what the client sees.

use super::{client, get, response, start_with};
use crate::backend::Backend;
use crate::ProxyUnderTest;
use std::time::{Duration, Instant};

/// The upstream port refuses connections → 502.
pub async fn upstream_unreachable_is_502(p: &dyn ProxyUnderTest) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let proxy = start_with(p, dead, |c| {
        c.timeouts.upstream_connect = Duration::from_secs(2)
    })
    .await;
    let mut c = client(&proxy).await;
    c.write(&get("/")).await.unwrap();
    let r = response(&mut c, "GET", "unreachable upstream").await;
    assert_eq!(r.status, 502);
}

/// The upstream accepts and closes without answering → 502.
pub async fn upstream_closes_without_answer_is_502(p: &dyn ProxyUnderTest) {
    let backend = Backend::close_immediately().await;
    let proxy = start_with(p, backend.addr, |_| {}).await;
    let mut c = client(&proxy).await;
    c.write(&get("/")).await.unwrap();
    let r = response(&mut c, "GET", "upstream closed").await;
    assert_eq!(r.status, 502);
}

/// The upstream accepts, reads, never answers; `upstream_response_head = 500ms` → 504
/// after about that long.
pub async fn upstream_silent_is_504(p: &dyn ProxyUnderTest) {
    let backend = Backend::silent().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.upstream_response_head = Duration::from_millis(500)
    })
    .await;
    let mut c = client(&proxy).await;
    let start = Instant::now();
    c.write(&get("/slow")).await.unwrap();
    let r = response(&mut c, "GET", "silent upstream").await;
    let took = start.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(400),
        "504 after {took:?}, before the 500 ms deadline"
    );
    assert_eq!(
        backend.requests().len(),
        1,
        "the request did reach the upstream"
    );
}

/// A client that sends half a head and stops; `client_head = 500ms` → 408, then close.
pub async fn slow_client_head_is_408(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.client_head = Duration::from_millis(500)
    })
    .await;
    let mut c = client(&proxy).await;
    let start = Instant::now();
    c.write(b"GET / HTTP/1.1\r\nHost: exa").await.unwrap();
    let r = response(&mut c, "GET", "incomplete head").await;
    let took = start.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        took >= Duration::from_millis(400),
        "408 after {took:?}, before the 500 ms deadline"
    );
    c.expect_close(Duration::from_secs(2))
        .await
        .expect("closed after 408");
    assert!(
        backend.received_all().is_empty(),
        "the backend received part of an incomplete head"
    );
}

/// Sends a GET to a backend that answers with `reply`; asserts the client gets 502.
async fn bad_response(p: &dyn ProxyUnderTest, reply: Vec<u8>, what: &str) {
    let backend = Backend::http(move |_| crate::backend::Reply::Bytes(reply.clone())).await;
    let proxy = start_with(p, backend.addr, |_| {}).await;
    let mut c = client(&proxy).await;
    c.write(&get("/")).await.unwrap();
    let r = response(&mut c, "GET", what).await;
    assert_eq!(r.status, 502, "{what}: got {:?}", r.head.start_line);
    assert!(
        !r.text().contains("smuggled"),
        "{what}: upstream body reached the client"
    );
    assert!(
        backend.settle(Duration::from_secs(1)).await,
        "{what}: the upstream connection was kept (it must be closed)"
    );
}

/// A response with two different `Content-Length`s (RFC 9112 §6.3 item 5: a proxy
/// must close the upstream connection and answer 502), or a non-numeric one.
pub async fn upstream_invalid_content_length_is_502(p: &dyn ProxyUnderTest) {
    let two = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Length: 5\r\n\r\nsmuggled".to_vec();
    bad_response(p, two, "two Content-Lengths").await;
    let alpha = b"HTTP/1.1 200 OK\r\nContent-Length: 8x\r\n\r\nsmuggled".to_vec();
    bad_response(p, alpha, "non-numeric Content-Length").await;
}

/// A response head larger than `max_head_size` → 502.
pub async fn upstream_response_head_over_limit_is_502(p: &dyn ProxyUnderTest) {
    let mut reply = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n", "y".repeat(17 * 1024)).into_bytes();
    reply.extend_from_slice(b"Content-Length: 8\r\n\r\nsmuggled");
    bad_response(p, reply, "17 KiB response head").await;
}

/// A response that is not HTTP → 502.
pub async fn upstream_garbage_response_is_502(p: &dyn ProxyUnderTest) {
    bad_response(
        p,
        b"SSH-2.0-OpenSSH_9.6\r\n\r\nsmuggled".to_vec(),
        "non-HTTP answer",
    )
    .await;
}
