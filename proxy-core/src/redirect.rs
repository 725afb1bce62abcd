//! Listeners that send every request to https ([`ClientInfo::redirect_to_https`]):
//! the proxy answers itself with a permanent redirect to the same host (without its
//! port) and target, as nginx's `return 301 https://$host$request_uri` does: `301`
//! for `GET` and `HEAD`, which every client knows, and `308` for the other methods,
//! since a 301 lets a client turn a `POST` into a `GET` (RFC 9110 §15.4.2, §15.4.9).
//!
//! [`ClientInfo::redirect_to_https`]: crate::ClientInfo::redirect_to_https

use crate::head_writer;
use crate::request::RequestHead;
use crate::routing::host_name;
use crate::HttpDate;
use bytes::{BufMut, Bytes, BytesMut};
use std::num::NonZeroU16;

/// Puts `target` with each byte outside visible ASCII percent-encoded: a raw UTF-8
/// path (which httparse, like nginx, lets through to the upstream) becomes the URI a
/// `Location` must hold (RFC 9110 §10.2.2, RFC 3986 §2.1), the same one a browser
/// would have sent. Nothing else is touched, `%` included, so an encoded target stays
/// as it came.
fn put_percent_encoding_non_ascii(out: &mut BytesMut, target: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in target {
        if b.is_ascii_graphic() {
            out.put_u8(b);
        } else {
            out.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// The redirect for `request` to https on `port` (written only if not 443) and its
/// status, or `None` when it names no host (an HTTP/1.0 request without `Host`):
/// there is nowhere to send it. The host and target were checked when the head was
/// parsed (RFC 9112 §3.2, §3.3), so they are safe to repeat in `Location` (the
/// target's non-ASCII bytes percent-encoded).
pub(crate) fn to_https(
    request: &RequestHead,
    port: NonZeroU16,
    date: Option<HttpDate>,
) -> Option<(Bytes, u16)> {
    let host = host_name(request.host()?);
    if host.is_empty() {
        return None;
    }
    let target = request.forward_target();
    let (status, line): (u16, &[u8]) = match request.method() {
        b"GET" | b"HEAD" => (301, b"HTTP/1.1 301 Moved Permanently\r\n"),
        _ => (308, b"HTTP/1.1 308 Permanent Redirect\r\n"),
    };
    let mut response = BytesMut::with_capacity(128 + host.len() + target.len());
    response.put_slice(line);
    response.put_slice(b"Location: https://");
    response.put_slice(host);
    if port.get() != 443 {
        let mut digits = [0u8; 20];
        response.put_u8(b':');
        response.put_slice(head_writer::decimal(u64::from(port.get()), &mut digits));
    }
    put_percent_encoding_non_ascii(&mut response, target);
    response.put_slice(b"\r\n");
    if let Some(date) = date {
        head_writer::put_field(&mut response, b"Date", &date);
    }
    response.put_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
    Some((response.freeze(), status))
}
