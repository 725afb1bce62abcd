//! Upstream failures and the deadlines around a request: what the client sees.

use super::{client, get, response, start_with, RESPONSE_WAIT};
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
    let (r, took) = timed_get(&mut c, "/slow", "silent upstream").await;
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

/// A deadline that comes earlier than the one the timer is armed for still fires on
/// time: after a first exchange the connection waits on `keepalive_idle` (30 s); the
/// second request, on the same client connection and the pooled upstream connection,
/// meets a silent upstream, and its `upstream_response_head = 500ms` gives a 504 well
/// before the keep-alive deadline.
pub async fn an_earlier_deadline_on_a_kept_alive_connection_fires_on_time(p: &dyn ProxyUnderTest) {
    let backend = Backend::http(|r| match r.target.as_str() {
        "/slow" => crate::backend::Reply::Silent,
        _ => crate::backend::Reply::Bytes(crate::http::ok(b"fast")),
    })
    .await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.keepalive_idle = Duration::from_secs(30);
        c.timeouts.upstream_response_head = Duration::from_millis(500);
    })
    .await;
    let mut c = client(&proxy).await;
    c.write(&get("/fast")).await.unwrap();
    assert_eq!(response(&mut c, "GET", "first request").await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (r, took) = timed_get(&mut c, "/slow", "second request, silent upstream").await;
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "504 after {took:?}, for a 500 ms deadline"
    );
    assert_eq!(
        backend.connections().len(),
        1,
        "the second request went over the pooled connection"
    );
}

/// Sends `GET target` on `c` and reads the response: it, and how long it took.
async fn timed_get(
    c: &mut crate::http::Conn,
    target: &str,
    what: &str,
) -> (crate::http::Response, Duration) {
    let start = Instant::now();
    c.write(&get(target)).await.unwrap();
    let r = response(c, "GET", what).await;
    (r, start.elapsed())
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

/// A kept-alive client connection with no request for `keepalive_idle = 500ms` is
/// closed (quietly: no response bytes).
pub async fn idle_keepalive_client_closed_after_keepalive_idle(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.keepalive_idle = Duration::from_millis(500)
    })
    .await;
    let mut c = client(&proxy).await;
    c.write(&get("/")).await.unwrap();
    assert_eq!(response(&mut c, "GET", "first").await.status, 200);
    let idle_since = Instant::now();
    let rest = c
        .expect_close(Duration::from_secs(2))
        .await
        .expect("idle keep-alive connection closed");
    let after = idle_since.elapsed();
    assert!(
        rest.is_empty(),
        "bytes sent on an idle connection: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        after >= Duration::from_millis(400),
        "closed after {after:?}, before keepalive_idle"
    );
}

/// A request body that stops arriving for `body_read = 500ms` → 408 (no response had
/// started). The body is gathered before dialling (`request_buffering`, the default),
/// so the backend never hears of it; streamed (`request_buffering = false`), the
/// upstream connection is dropped, not pooled.
pub async fn stalled_request_body_is_408(p: &dyn ProxyUnderTest) {
    for request_buffering in [true, false] {
        let backend = stalled_request_body(p, request_buffering).await;
        let dialled = backend.connections().len();
        assert_eq!(
            dialled,
            usize::from(!request_buffering),
            "request_buffering = {request_buffering}: {dialled} upstream connections"
        );
    }
}

async fn stalled_request_body(p: &dyn ProxyUnderTest, request_buffering: bool) -> Backend {
    let backend = Backend::echo_body().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.body_read = Duration::from_millis(500);
        c.request_buffering = request_buffering;
    })
    .await;
    let mut c = client(&proxy).await;
    let start = Instant::now();
    c.write(b"POST /slow HTTP/1.1\r\nHost: example.test\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    let r = response(&mut c, "POST", "stalled request body").await;
    assert_eq!(r.status, 408);
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "408 after {:?}",
        start.elapsed()
    );
    assert!(
        backend.settle(Duration::from_secs(2)).await,
        "the upstream connection with half a body was kept"
    );
    assert!(
        backend.requests().is_empty(),
        "the backend got a complete request"
    );
    backend
}

/// A body sent in pieces, 200 ms apart: the backend is dialled only once it is whole
/// (`request_buffering`), and gets the head and the body together.
pub async fn a_slow_request_body_is_gathered_before_the_backend_is_dialled(p: &dyn ProxyUnderTest) {
    let backend = Backend::echo_body().await;
    let proxy = start_with(p, backend.addr, |_| {}).await;
    let mut c = client(&proxy).await;
    c.write(b"POST /form HTTP/1.1\r\nHost: example.test\r\nContent-Length: 11\r\n\r\n")
        .await
        .unwrap();
    for piece in [&b"hello"[..], b" "] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.write(piece).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        backend.connections().is_empty(),
        "the backend was dialled before the body was whole"
    );
    c.write(b"world").await.unwrap();
    let r = response(&mut c, "POST", "gathered body").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(backend.requests().len(), 1);
}

/// A body trickled at 100 B/s, 10 bytes every 100 ms (never silent for `body_read =
/// 500ms`), with `min_request_body_rate = 1000`: `408` while the client still sends,
/// once the grace (`body_read`) and what was sent are used up (about 0.55 s), and the
/// backend never hears of it.
pub async fn a_request_body_below_min_request_body_rate_is_408(p: &dyn ProxyUnderTest) {
    let backend = Backend::echo_body().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.body_read = Duration::from_millis(500);
        c.limits.min_request_body_rate = 1000;
    })
    .await;
    let mut c = client(&proxy).await;
    let start = Instant::now();
    c.write(b"POST /slow HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let mut answered = false;
    for _ in 0..50 {
        c.write(b"0123456789").await.unwrap();
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(100), c.fill()).await {
            answered = read.unwrap() > 0;
            break;
        }
    }
    assert!(answered, "no answer while the body trickled for 5 s");
    let r = response(&mut c, "POST", "a body below the minimum rate").await;
    let took = start.elapsed();
    assert_eq!(r.status, 408);
    assert!(took >= Duration::from_millis(450), "408 after {took:?}");
    assert!(backend.connections().is_empty(), "the backend was dialled");
}

/// `max_request_body = 64 KiB`: a `Content-Length` of 1 MiB gets `413` at its head, the
/// backend never dialled; a chunked body of 48 KiB goes through whole; one of 96 KiB
/// (16 KiB chunks) gets `413` once a chunk would cross the limit, and the backend,
/// dialled once 16 KiB were gathered, never completes a request from it.
pub async fn request_bodies_over_max_request_body_get_413(p: &dyn ProxyUnderTest) {
    let backend = Backend::sha256_body().await;
    let proxy = start_with(p, backend.addr, |c| c.limits.max_request_body = 64 << 10).await;
    let mut c = client(&proxy).await;
    c.write(b"POST /big HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, "POST", "a Content-Length over the limit").await;
    assert_eq!(r.status, 413);
    assert!(backend.connections().is_empty(), "the backend was dialled");
    let chunked = |chunks: usize| {
        let mut request =
            b"POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for _ in 0..chunks {
            request.extend(b"4000\r\n");
            request.extend(std::iter::repeat_n(b'z', 16 << 10));
            request.extend(b"\r\n");
        }
        request.extend(b"0\r\n\r\n");
        request
    };
    let mut c = client(&proxy).await;
    c.write(&chunked(3)).await.unwrap();
    let r = response(&mut c, "POST", "a chunked body within the limit").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        crate::http::sha256_hex(&vec![b'z'; 48 << 10]),
        "the backend got the whole body"
    );
    let mut c = client(&proxy).await;
    c.write(&chunked(6)).await.unwrap();
    let r = response(&mut c, "POST", "a chunked body over the limit").await;
    assert_eq!(r.status, 413);
    assert_eq!(
        backend.requests().len(),
        1,
        "only the first chunked request reached it"
    );
}

/// A response body that stops arriving for `body_read = 500ms` after the head was
/// forwarded: the client gets the head and the bytes so far, then the connection closes
/// (the body is visibly truncated).
pub async fn stalled_response_body_closes_client(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(_) = c.read_request().await? else {
            return Ok(());
        };
        c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst half")
            .await?;
        c.drain_to_eof().await;
        Ok(())
    })
    .await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.body_read = Duration::from_millis(500)
    })
    .await;
    let mut c = client(&proxy).await;
    c.write(&get("/stall")).await.unwrap();
    let head = tokio::time::timeout(RESPONSE_WAIT, c.read_head())
        .await
        .expect("head")
        .unwrap()
        .expect("head");
    assert!(
        head.start_line.starts_with("HTTP/1.1 200"),
        "{}",
        head.start_line
    );
    let start = Instant::now();
    let rest = c
        .expect_close(Duration::from_secs(2))
        .await
        .expect("closed after the body stalled");
    assert_eq!(String::from_utf8_lossy(&rest), "first half");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "closed after {:?}",
        start.elapsed()
    );
    assert!(
        backend.settle(RESPONSE_WAIT).await,
        "upstream connection not closed"
    );
}

/// A client that stops reading a large response: once nothing can be written for
/// `send = 500ms`, the proxy gives up and closes both connections (the upstream's
/// writes then fail), rather than buffering without bound.
pub async fn client_not_reading_hits_send_timeout(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(_) = c.read_request().await? else {
            return Ok(());
        };
        c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
            .await?;
        let chunk = vec![b'z'; 256 * 1024];
        // writes until the proxy drops the connection (an error ends the handler)
        loop {
            tokio::io::AsyncWriteExt::write_all(c.conn.stream(), &chunk).await?;
        }
    })
    .await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.send = Duration::from_millis(500)
    })
    .await;
    let mut c = client(&proxy).await;
    c.write(&get("/firehose")).await.unwrap();
    // never read
    assert!(
        backend.wait_connections(1, RESPONSE_WAIT).await,
        "the request never reached the upstream"
    );
    assert!(
        backend.settle(Duration::from_secs(6)).await,
        "the upstream is still being read 6 s after the client stopped reading"
    );
    let err = backend.connections()[0].error.clone();
    assert!(
        err.is_some(),
        "the upstream's writes ended without an error"
    );
    drop(c);
}
