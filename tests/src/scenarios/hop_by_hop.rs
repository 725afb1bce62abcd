//! Hop-by-hop fields (RFC 9110 §7.6.1) stay on their hop; every other field is
//! forwarded byte-exact, in order (Switchyard's design, item 5).

use super::{client, response, start, RESPONSE_WAIT};
use crate::backend::Backend;
use crate::http::Head;
use crate::ProxyUnderTest;

/// The fields of `head` whose names are among `names` (case-insensitive), in order.
fn only<'a>(head: &'a Head, names: &[&str]) -> Vec<(&'a str, &'a str)> {
    head.headers
        .iter()
        .filter(|(n, _)| names.iter().any(|m| m.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// `Connection: close, X-Foo`, `X-Foo`, `Keep-Alive`, `TE`, `Proxy-Connection` do not
/// reach the backend; the other fields do, byte-exact and in order; the client's
/// address is appended to `X-Forwarded-For`; the client's `X-Forwarded-Proto` is
/// replaced.
pub async fn hop_by_hop_request_fields_not_forwarded_others_byte_exact(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(
        b"GET /hop?q=1 HTTP/1.1\r\n\
          Host: example.test\r\n\
          X-First: 1\r\n\
          Connection: close, X-Foo\r\n\
          X-Foo: 1\r\n\
          Keep-Alive: timeout=5\r\n\
          TE: trailers\r\n\
          Proxy-Connection: keep-alive\r\n\
          accept: */*\r\n\
          X-Forwarded-For: 10.0.0.1\r\n\
          X-Forwarded-Proto: https\r\n\
          UPPER-CASE: Yes\r\n\
          x-MiXeD-name: VaLuE with  Spaces\r\n\
          Cookie: a=1; b=2\r\n\
          \r\n",
    )
    .await
    .unwrap();
    let r = response(&mut c, "GET", "hop-by-hop request").await;
    assert_eq!(r.status, 200);
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1);
    let head = &reqs[0].head;
    assert_eq!(reqs[0].target, "/hop?q=1", "request-target forwarded as is");
    for gone in ["X-Foo", "Keep-Alive", "TE", "Proxy-Connection"] {
        assert!(!head.has(gone), "{gone} was forwarded: {:?}", head.headers);
    }
    assert!(
        !head.has_token("connection", "x-foo"),
        "Connection still names X-Foo: {:?}",
        head.headers
    );
    let end_to_end = [
        "Host",
        "X-First",
        "accept",
        "UPPER-CASE",
        "x-MiXeD-name",
        "Cookie",
    ];
    assert_eq!(
        only(head, &end_to_end),
        [
            ("Host", "example.test"),
            ("X-First", "1"),
            ("accept", "*/*"),
            ("UPPER-CASE", "Yes"),
            ("x-MiXeD-name", "VaLuE with  Spaces"),
            ("Cookie", "a=1; b=2"),
        ],
        "end-to-end fields: names, values and order; all fields: {:?}",
        head.headers
    );
    let xff: Vec<&str> = head
        .all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    assert_eq!(
        xff,
        ["10.0.0.1", "127.0.0.1"],
        "X-Forwarded-For: {:?}",
        head.headers
    );
    assert_eq!(
        head.all("x-forwarded-proto"),
        ["http"],
        "X-Forwarded-Proto: {:?}",
        head.headers
    );
}

/// A response's `Connection`-named fields, `Keep-Alive` and `Proxy-Connection` do
/// not reach the client; the other fields do, byte-exact and in order.
pub async fn hop_by_hop_response_fields_not_forwarded_others_byte_exact(p: &dyn ProxyUnderTest) {
    let backend = Backend::fixed(
        b"HTTP/1.1 200 Fine Thanks\r\n\
          X-Resp-First: A\r\n\
          Connection: X-Bar\r\n\
          X-Bar: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          content-type: text/plain; charset=utf-8\r\n\
          Set-Cookie: a=1\r\n\
          Set-Cookie: b=2\r\n\
          X-MiXeD-Case: VaLuE\r\n\
          Content-Length: 2\r\n\
          \r\n\
          ok",
    )
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, "GET", "hop-by-hop response").await;
    assert_eq!(
        (r.status, r.reason.as_str(), r.text().as_str()),
        (200, "Fine Thanks", "ok")
    );
    for gone in ["X-Bar", "Keep-Alive", "Proxy-Connection"] {
        assert!(
            !r.head.has(gone),
            "{gone} reached the client: {:?}",
            r.head.headers
        );
    }
    assert!(
        !r.head.has_token("connection", "x-bar"),
        "Connection still names X-Bar: {:?}",
        r.head.headers
    );
    let end_to_end = [
        "X-Resp-First",
        "content-type",
        "Set-Cookie",
        "X-MiXeD-Case",
        "Content-Length",
    ];
    assert_eq!(
        only(&r.head, &end_to_end),
        [
            ("X-Resp-First", "A"),
            ("content-type", "text/plain; charset=utf-8"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-MiXeD-Case", "VaLuE"),
            ("Content-Length", "2"),
        ],
        "end-to-end response fields; all: {:?}",
        r.head.headers
    );
}

/// `Connection: close` from the client: after the response the client connection is
/// closed by the proxy.
pub async fn connection_close_request_closes_client_connection(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(b"GET /bye HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, "GET", "Connection: close").await;
    assert_eq!((r.status, r.text().as_str()), (200, "GET /bye"));
    let rest = c
        .expect_close(RESPONSE_WAIT)
        .await
        .expect("closed after the response");
    assert!(rest.is_empty(), "bytes after the response: {rest:?}");
}

/// `Upgrade` without `Connection: upgrade` is no upgrade attempt: neither field is
/// forwarded, and the request is an ordinary one.
pub async fn upgrade_field_without_connection_upgrade_not_forwarded(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(b"GET /no-upgrade HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nX-After: 1\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, "GET", "Upgrade without Connection: upgrade").await;
    assert_eq!((r.status, r.text().as_str()), (200, "GET /no-upgrade"));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1);
    assert!(
        !reqs[0].head.has("upgrade"),
        "Upgrade forwarded: {:?}",
        reqs[0].head.headers
    );
    assert!(
        !reqs[0].head.has_token("connection", "upgrade"),
        "{:?}",
        reqs[0].head.headers
    );
    assert_eq!(reqs[0].header("x-after"), Some("1"));
}

/// `Connection` naming `Content-Length` or `Host` must not strip them (hop-by-hop
/// abuse): the backend still gets the framing and the host, and the body.
pub async fn connection_cannot_strip_content_length_or_host(p: &dyn ProxyUnderTest) {
    let backend = Backend::echo_body().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(
        b"POST /abuse HTTP/1.1\r\nHost: example.test\r\nConnection: Content-Length, Host\r\n\
          Content-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    let r = response(&mut c, "POST", "Connection: Content-Length, Host").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("content-length"),
        Some("5"),
        "{:?}",
        reqs[0].head.headers
    );
    assert_eq!(
        reqs[0].header("host"),
        Some("example.test"),
        "{:?}",
        reqs[0].head.headers
    );
}

/// A response without `Date` reaches the client with the proxy's (RFC 9110 §6.6.1: a
/// recipient with a clock adds one): one field, an IMF-fixdate of the current second.
pub async fn a_response_without_date_gets_the_proxys(p: &dyn ProxyUnderTest) {
    let backend = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let now = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap_or_default().as_secs()
    };
    let before = now();
    c.write(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let r = response(&mut c, "GET", "response without Date").await;
    let after = now();
    assert_eq!(r.text(), "ok");
    let dates = r.head.all("date");
    // The proxy's clock ticks each second: it may read the second before `before`.
    let expected: Vec<String> = (before.saturating_sub(1)..=after)
        .map(|t| String::from_utf8_lossy(&proxy_core::http_date(t)).into_owned())
        .collect();
    assert!(
        dates.len() == 1 && expected.iter().any(|d| d == dates[0]),
        "Date fields {dates:?}, expected one of {expected:?}"
    );
}
