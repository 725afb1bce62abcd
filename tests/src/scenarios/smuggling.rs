//! Request smuggling vectors and size limits (RFC 9112 §2.2, §5, §6, §7.1; RFC 9110
//! §5.5, §8.6). Each one: the client gets the error status, the connection is then
//! closed, and the backend receives nothing.

use super::{client, show, start, RESPONSE_WAIT};
use crate::backend::Backend;
use crate::http::contains;
use crate::ProxyUnderTest;
use std::time::Duration;

/// Sends `request`; asserts status `expected`, a close, and nothing at the backend.
async fn rejected(p: &dyn ProxyUnderTest, request: &[u8], expected: u16) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    // The proxy may answer and close before reading everything: a failed write is fine.
    let _ = c.write(request).await;
    let what = show(request);
    let r = match tokio::time::timeout(RESPONSE_WAIT, c.read_response("GET")).await {
        Err(_) => panic!("{what}: no response within {RESPONSE_WAIT:?}"),
        Ok(Err(e)) => panic!("{what}: expected {expected}, reading the response failed: {e}"),
        Ok(Ok(r)) => r,
    };
    assert_eq!(
        r.status, expected,
        "{what}: status (response head {:?})",
        r.head.start_line
    );
    c.expect_close(Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("{what}: after {expected}: {e}"));
    backend.settle(Duration::from_millis(300)).await;
    let got = backend.received_all();
    assert!(
        got.is_empty(),
        "{what}: the backend received {} bytes of a rejected request: {:?}",
        got.len(),
        String::from_utf8_lossy(&got)
    );
}

/// `Content-Length` together with `Transfer-Encoding` (RFC 9112 §6.1: ought to be
/// handled as an error; a proxy must not forward both).
pub async fn rejects_content_length_with_transfer_encoding(p: &dyn ProxyUnderTest) {
    let req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    rejected(p, req, 400).await;
}

/// Two `Content-Length` fields that differ (RFC 9112 §6.3 item 5).
pub async fn rejects_two_different_content_lengths(p: &dyn ProxyUnderTest) {
    let req = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    rejected(p, req, 400).await;
}

/// A `Content-Length` that is not a number.
pub async fn rejects_non_numeric_content_length(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
        400,
    )
    .await;
}

/// `Content-Length: +5` — `1*DIGIT` allows no sign (RFC 9110 §8.6), though Rust's
/// `u64::from_str` accepts one.
pub async fn rejects_plus_signed_content_length(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        400,
    )
    .await;
}

/// `Transfer-Encoding: gzip`: the final coding is not chunked, so the length is
/// unknowable (RFC 9112 §6.3 item 4).
pub async fn rejects_transfer_encoding_not_ending_in_chunked(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
        400,
    )
    .await;
}

/// `Transfer-Encoding: chunked, foo`: an unknown coding, chunked not last.
pub async fn rejects_unknown_transfer_coding(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, foo\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

/// `chunked` applied twice (RFC 9112 §6.1: a sender must not apply chunked more than once).
pub async fn rejects_chunked_applied_twice(p: &dyn ProxyUnderTest) {
    let req =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    rejected(p, req, 400).await;
}

/// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1: ought to be an error).
pub async fn rejects_transfer_encoding_on_http10(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

/// Obsolete line folding in a request (RFC 9112 §5.2: reject with 400).
pub async fn rejects_obs_fold(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        400,
    )
    .await;
}

/// Whitespace between a field name and the colon (RFC 9112 §5.1: must reject with 400).
pub async fn rejects_space_before_colon(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
        400,
    )
    .await;
}

/// NUL in a field value (RFC 9110 §5.5: must reject or replace; a proxy rejects).
pub async fn rejects_nul_in_header_value(p: &dyn ProxyUnderTest) {
    rejected(p, b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\0b\r\n\r\n", 400).await;
}

/// A control character (VT) in `Transfer-Encoding`.
pub async fn rejects_control_character_in_transfer_encoding(p: &dyn ProxyUnderTest) {
    rejected(
        p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
}

/// A CR inside a field value (RFC 9112 §2.2).
pub async fn rejects_cr_in_header_value(p: &dyn ProxyUnderTest) {
    rejected(p, b"GET / HTTP/1.1\r\nHost: a\r\nX-Cr: a\rb\r\n\r\n", 400).await;
}

/// Bare LF line endings (RFC 9112 §2.2: a proxy must not guess).
pub async fn rejects_bare_lf_line_endings(p: &dyn ProxyUnderTest) {
    rejected(p, b"GET / HTTP/1.1\nHost: a\nX-A: 1\n\n", 400).await;
}

/// HTTP/1.1 without `Host` (RFC 9112 §3.2: must respond 400).
pub async fn rejects_missing_host_on_http11(p: &dyn ProxyUnderTest) {
    rejected(p, b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400).await;
}

/// Two `Host` fields (RFC 9112 §3.2: must respond 400).
pub async fn rejects_two_host_fields(p: &dyn ProxyUnderTest) {
    rejected(p, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400).await;
}

/// Sends a valid chunked head followed by a broken body; asserts the client gets a
/// 400 (no response had started: the backend waits for the whole body), the backend
/// never gets a complete request, and the broken bytes never reach it.
async fn broken_chunked_body(p: &dyn ProxyUnderTest, body: &[u8], must_not_forward: &[u8]) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let mut req = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(body);
    let what = format!("chunked body {:?}", String::from_utf8_lossy(body));
    let _ = c.write(&req).await;
    let r = match tokio::time::timeout(RESPONSE_WAIT, c.read_response("POST")).await {
        Err(_) => panic!("{what}: no response within {RESPONSE_WAIT:?}"),
        Ok(Err(e)) => panic!("{what}: expected 400, reading the response failed: {e}"),
        Ok(Ok(r)) => r,
    };
    assert_eq!(r.status, 400, "{what}: status");
    c.expect_close(Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("{what}: after 400: {e}"));
    backend.settle(Duration::from_secs(1)).await;
    assert!(
        backend.requests().is_empty(),
        "{what}: the backend got a complete request"
    );
    let got = backend.received_all();
    assert!(
        !contains(&got, must_not_forward),
        "{what}: invalid bytes {:?} reached the backend: {:?}",
        String::from_utf8_lossy(must_not_forward),
        String::from_utf8_lossy(&got)
    );
}

/// A chunk size that is not hex (RFC 9112 §7.1).
pub async fn rejects_invalid_chunk_size(p: &dyn ProxyUnderTest) {
    broken_chunked_body(p, b"zz\r\nhello\r\n0\r\n\r\n", b"zz").await;
}

/// A chunk size that overflows 64 bits.
pub async fn rejects_chunk_size_overflow(p: &dyn ProxyUnderTest) {
    broken_chunked_body(
        p,
        b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffff",
    )
    .await;
}

/// Chunk data not followed by CRLF.
pub async fn rejects_missing_crlf_after_chunk_data(p: &dyn ProxyUnderTest) {
    broken_chunked_body(p, b"5\r\nhelloXX0\r\n\r\n", b"XX").await;
}

/// Whitespace after the chunk size (BWS is not allowed there, RFC 9112 §7.1).
pub async fn rejects_whitespace_after_chunk_size(p: &dyn ProxyUnderTest) {
    broken_chunked_body(p, b"5 \r\nhello\r\n0\r\n\r\n", b"hello").await;
}

/// A head larger than `max_head_size` (16 KiB) → 431 (RFC 6585 §5).
pub async fn rejects_head_over_limit_with_431(p: &dyn ProxyUnderTest) {
    let big = "x".repeat(17 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    rejected(p, req.as_bytes(), 431).await;
}

/// More than `max_headers` (100) fields → 431.
pub async fn rejects_too_many_fields_with_431(p: &dyn ProxyUnderTest) {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..101 {
        req.push_str(&format!("X-F{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    rejected(p, req.as_bytes(), 431).await;
}

/// A request-target longer than `max_target_len` (8 KiB) → 414 (RFC 9110 §15.5.15).
pub async fn rejects_long_target_with_414(p: &dyn ProxyUnderTest) {
    let target = format!("/{}", "a".repeat(8 * 1024 + 10));
    let req = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
    rejected(p, req.as_bytes(), 414).await;
}
