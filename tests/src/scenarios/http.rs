//! Plain HTTP/1.1 through the proxy: persistence, pipelining, bodies, and the
//! responses that have no body.

use super::{client, exchange, get, response, start, RESPONSE_WAIT};
use crate::backend::{Backend, Reply};
use crate::http::{self, sha256_hex};
use crate::ProxyUnderTest;

/// Two requests on one client connection travel on one upstream connection: the
/// upstream connection is kept (or pooled) and reused, not dialled twice.
pub async fn keep_alive_reuses_one_upstream_connection(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(&get("/first")).await.unwrap();
    let r1 = response(&mut c, "GET", "first").await;
    assert_eq!((r1.status, r1.text().as_str()), (200, "GET /first"));
    assert!(
        !r1.closes(),
        "the proxy closed a keep-alive connection: {:?}",
        r1.head.headers
    );
    c.write(&get("/second")).await.unwrap();
    let r2 = response(&mut c, "GET", "second").await;
    assert_eq!((r2.status, r2.text().as_str()), (200, "GET /second"));
    let conns = backend.connections();
    assert_eq!(
        conns.len(),
        1,
        "upstream connections dialled for two keep-alive requests"
    );
    let targets: Vec<_> = conns[0].requests.iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/first", "/second"]);
}

/// Three requests in one write (one with a body) are answered in order.
pub async fn pipelined_requests_answered_in_order(p: &dyn ProxyUnderTest) {
    let backend = Backend::http(|r| {
        let mut body = format!("{} {} ", r.method, r.target).into_bytes();
        body.extend_from_slice(&r.body);
        Reply::Bytes(http::ok(&body))
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let mut batch = get("/one");
    batch.extend_from_slice(
        b"POST /two HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello",
    );
    batch.extend_from_slice(&get("/three"));
    c.write(&batch).await.unwrap();
    let mut bodies = Vec::new();
    for what in ["one", "two", "three"] {
        let r = response(&mut c, "GET", what).await;
        assert_eq!(r.status, 200, "{what}");
        bodies.push(r.text());
    }
    assert_eq!(bodies, ["GET /one ", "POST /two hello", "GET /three "]);
}

/// A body with `Content-Length` arrives and is answered.
pub async fn post_with_content_length(p: &dyn ProxyUnderTest) {
    let backend = Backend::echo_body().await;
    let proxy = start(p, backend.addr).await;
    let r = exchange(
        &proxy,
        b"POST /cl HTTP/1.1\r\nHost: example.test\r\nContent-Length: 11\r\n\r\nhello world",
        "POST",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("content-length"), Some("11"));
}

/// A chunked body with a chunk extension and a trailer arrives re-encoded: same chunk
/// sizes, the extension and the trailer dropped.
pub async fn post_chunked(p: &dyn ProxyUnderTest) {
    let backend = Backend::echo_body().await;
    let proxy = start(p, backend.addr).await;
    let r = exchange(
        &proxy,
        b"POST /chunked HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
        "POST",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1, "one complete request at the backend");
    assert!(
        reqs[0].head.is_chunked(),
        "framing forwarded as chunked: {:?}",
        reqs[0].head.headers
    );
    // re-encoded: same chunk sizes, no extensions, no trailers (README)
    let received = backend.received_all();
    let body_start = http::find(&received, b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        String::from_utf8_lossy(&received[body_start..]),
        "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
        "chunked body as forwarded"
    );
}

/// 10 MiB uploaded with `Content-Length` arrive intact (SHA-256 computed by the backend).
pub async fn upload_ten_mebibytes_checked_by_sha256(p: &dyn ProxyUnderTest) {
    let backend = Backend::sha256_body().await;
    let proxy = start(p, backend.addr).await;
    let body = http::pattern(10 << 20, 1);
    let mut c = client(&proxy).await;
    c.write(
        format!(
            "PUT /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    c.write(&body).await.unwrap();
    let r = response(&mut c, "PUT", "upload").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        sha256_hex(&body),
        "SHA-256 of the body the backend received"
    );
}

/// 2 MiB uploaded chunked (odd chunk sizes) arrive intact.
pub async fn upload_chunked_two_mebibytes_checked_by_sha256(p: &dyn ProxyUnderTest) {
    let backend = Backend::sha256_body().await;
    let proxy = start(p, backend.addr).await;
    let body = http::pattern(2 << 20, 2);
    let mut c = client(&proxy).await;
    c.write(b"PUT /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    c.write(&http::chunked(&body, 9_999)).await.unwrap();
    let r = response(&mut c, "PUT", "chunked upload").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        sha256_hex(&body),
        "SHA-256 of the body the backend received"
    );
}

/// 10 MiB downloaded with `Content-Length` arrive intact.
pub async fn download_ten_mebibytes_checked_by_sha256(p: &dyn ProxyUnderTest) {
    let body = http::pattern(10 << 20, 3);
    let expected = sha256_hex(&body);
    let reply = http::ok(&body);
    let backend = Backend::http(move |_| Reply::Bytes(reply.clone())).await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(&get("/big")).await.unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(8), c.read_response("GET"))
        .await
        .expect("10 MiB download within 8 s")
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.until_close, "Content-Length framing lost");
    assert_eq!(r.body.len(), body.len());
    assert_eq!(sha256_hex(&r.body), expected);
}

/// Large bodies both ways on one keep-alive connection, a request pipelined right
/// behind an upload's last byte: every body arrives intact, in order, and one
/// upstream connection carries it all. (On Linux these bodies pass through a kernel
/// pipe, so this checks that a passed body ends exactly at its length, and that its
/// upstream connection goes back to the pool after it.)
pub async fn large_bodies_both_ways_on_one_connection_with_a_request_pipelined(
    p: &dyn ProxyUnderTest,
) {
    let download = http::pattern(3 << 20, 6);
    let reply = http::ok(&download);
    let backend = Backend::http(move |r| match r.method.as_str() {
        "PUT" => Reply::Bytes(http::ok(sha256_hex(&r.body).as_bytes())),
        _ => Reply::Bytes(reply.clone()),
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let wait = std::time::Duration::from_secs(8);
    let upload = http::pattern((2 << 20) + 12_345, 7);
    for round in 0..2 {
        c.write(&get("/down")).await.unwrap();
        let r = tokio::time::timeout(wait, c.read_response("GET"))
            .await
            .expect("download within 8 s")
            .unwrap();
        assert_eq!(
            (r.status, r.body.len()),
            (200, download.len()),
            "round {round}"
        );
        assert!(r.body == download, "download differs (round {round})");
        let mut put = format!(
            "PUT /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .into_bytes();
        put.extend_from_slice(&upload);
        put.extend_from_slice(&get("/after-upload"));
        c.write(&put).await.unwrap();
        let r = tokio::time::timeout(wait, c.read_response("PUT"))
            .await
            .expect("upload answered within 8 s")
            .unwrap();
        assert_eq!(r.text(), sha256_hex(&upload), "upload (round {round})");
        let r = tokio::time::timeout(wait, c.read_response("GET"))
            .await
            .expect("pipelined request answered within 8 s")
            .unwrap();
        assert!(r.body == download, "pipelined download (round {round})");
    }
    let conns = backend.connections();
    assert_eq!(conns.len(), 1, "upstream connections for six exchanges");
    let targets: Vec<_> = conns[0].requests.iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/down", "/up", "/after-upload"].repeat(2));
}

/// 10 MiB downloaded chunked arrive intact and the connection stays usable.
pub async fn download_chunked_ten_mebibytes_checked_by_sha256(p: &dyn ProxyUnderTest) {
    let body = http::pattern(10 << 20, 4);
    let expected = sha256_hex(&body);
    let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    reply.extend(http::chunked(&body, 50_000));
    let backend = Backend::http(move |r| {
        if r.target == "/big" {
            Reply::Bytes(reply.clone())
        } else {
            Reply::Bytes(http::ok(b"after"))
        }
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(&get("/big")).await.unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(8), c.read_response("GET"))
        .await
        .expect("10 MiB download within 8 s")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(sha256_hex(&r.body), expected);
    c.write(&get("/after")).await.unwrap();
    let r = response(&mut c, "GET", "request after the chunked body").await;
    assert_eq!(r.text(), "after");
}

/// Checks that `first` gets `status` with no body and the connection then carries
/// another request (so the proxy did not wait for a body that never comes).
async fn bodiless(
    p: &dyn ProxyUnderTest,
    method: &str,
    first: &[u8],
    upstream_reply: &'static [u8],
    status: u16,
) {
    let backend = Backend::http(move |r| {
        if r.target == "/after" {
            Reply::Bytes(http::ok(b"after"))
        } else {
            Reply::Bytes(upstream_reply.to_vec())
        }
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(first).await.unwrap();
    let r = response(&mut c, method, "first").await;
    assert_eq!(r.status, status);
    assert!(r.body.is_empty());
    c.write(&get("/after")).await.unwrap();
    let r = response(&mut c, "GET", "request after a response without body").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "after"),
        "framing after the bodiless response"
    );
    assert!(
        c.buffered().is_empty(),
        "stray bytes after the response: {:?}",
        c.buffered()
    );
}

/// A `HEAD` response announces a length but has no body.
pub async fn head_response_has_no_body(p: &dyn ProxyUnderTest) {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n";
    bodiless(
        p,
        "HEAD",
        b"HEAD /h HTTP/1.1\r\nHost: example.test\r\n\r\n",
        reply,
        200,
    )
    .await;
}

/// A `204` has no body.
pub async fn status_204_has_no_body(p: &dyn ProxyUnderTest) {
    bodiless(
        p,
        "GET",
        &get("/204"),
        b"HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n",
        204,
    )
    .await;
}

/// A `304` has no body even with a `Content-Length`.
pub async fn status_304_has_no_body(p: &dyn ProxyUnderTest) {
    let reply = b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 50\r\n\r\n";
    bodiless(p, "GET", &get("/304"), reply, 304).await;
}

/// `Expect: 100-continue`: the client gets the interim `100` before it sends the
/// body, then the final response.
pub async fn expect_100_continue_gets_interim_then_final(p: &dyn ProxyUnderTest) {
    let backend = Backend::continue_100().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(b"POST /e HTTP/1.1\r\nHost: example.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let interim = response(&mut c, "POST", "interim 100").await;
    assert_eq!(
        interim.status, 100,
        "interim response before the body was sent"
    );
    c.write(b"hello").await.unwrap();
    let r = response(&mut c, "POST", "final").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

/// A response delimited by the upstream closing reaches the client whole, then the
/// client connection is closed.
pub async fn read_until_close_response_then_eof(p: &dyn ProxyUnderTest) {
    let body = http::pattern(3_000_000, 5);
    let backend = Backend::read_until_close(body.clone()).await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(&get("/stream")).await.unwrap();
    let r = tokio::time::timeout(RESPONSE_WAIT, c.read_response("GET"))
        .await
        .expect("response")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len(), "body length");
    assert!(r.body == body, "body differs");
    if !r.until_close {
        let rest = c
            .expect_close(RESPONSE_WAIT)
            .await
            .expect("connection closed after the body");
        assert!(rest.is_empty(), "bytes after the body: {rest:?}");
    }
}

/// An HTTP/1.0 request without `Host` is forwarded with the upstream as `Host`, and
/// answered; the connection then closes (1.0 without keep-alive).
pub async fn http10_request_gets_host_and_response(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(b"GET /old HTTP/1.0\r\nUser-Agent: e2e\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, "GET", "HTTP/1.0").await;
    assert_eq!((r.status, r.text().as_str()), (200, "GET /old"));
    c.expect_close(RESPONSE_WAIT)
        .await
        .expect("HTTP/1.0 connection closed after the response");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("host"),
        Some(backend.addr.to_string().as_str()),
        "Host added for HTTP/1.0"
    );
    assert_eq!(reqs[0].header("user-agent"), Some("e2e"));
}

/// Pipelined requests are forwarded one at a time: the second request's bytes reach
/// the upstream only after it sent the first response.
pub async fn pipelined_request_not_forwarded_before_previous_response(p: &dyn ProxyUnderTest) {
    let backend = Backend::http(|r| {
        Reply::Delayed(
            std::time::Duration::from_millis(200),
            http::ok(r.target.as_bytes()),
        )
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let mut batch = get("/first");
    batch.extend_from_slice(&get("/second"));
    c.write(&batch).await.unwrap();
    assert_eq!(response(&mut c, "GET", "first").await.text(), "/first");
    assert_eq!(response(&mut c, "GET", "second").await.text(), "/second");
    let conns = backend.connections();
    assert_eq!(conns.len(), 1);
    let (before, _) = conns[0].received_before_and_after_first_send();
    let (head, used) = http::parse_head(&before)
        .unwrap()
        .expect("the first request");
    assert!(
        head.start_line.starts_with("GET /first "),
        "{}",
        head.start_line
    );
    assert_eq!(
        used,
        before.len(),
        "forwarded before the first response: {:?}",
        String::from_utf8_lossy(&before[used..])
    );
}
