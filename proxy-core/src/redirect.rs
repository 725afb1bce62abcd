//! Listeners that send every request to https ([`ClientInfo::redirect_to_https`]):
//! the proxy answers itself with `308 Permanent Redirect` to the same host (without
//! its port) and target, as nginx's `return 301 https://$host$request_uri` does. A 308
//! keeps a `POST` a `POST` where a 301 lets the client turn it into a `GET`.
//!
//! [`ClientInfo::redirect_to_https`]: crate::ClientInfo::redirect_to_https

use crate::head_writer;
use crate::request::RequestHead;
use crate::routing::host_name;
use crate::HttpDate;
use bytes::{BufMut, Bytes, BytesMut};

/// The redirect for `request`, or `None` when it names no host (an HTTP/1.0 request
/// without `Host`): there is nowhere to send it. The host and target were checked when
/// the head was parsed (RFC 9112 §3.2, §3.3), so they are safe to repeat in `Location`.
pub(crate) fn to_https(request: &RequestHead, date: Option<HttpDate>) -> Option<Bytes> {
    let host = host_name(request.host()?);
    if host.is_empty() {
        return None;
    }
    let target = request.forward_target();
    let mut response = BytesMut::with_capacity(128 + host.len() + target.len());
    response.put_slice(b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://");
    response.put_slice(host);
    response.put_slice(target);
    response.put_slice(b"\r\n");
    if let Some(date) = date {
        head_writer::put_field(&mut response, b"Date", &date);
    }
    response.put_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
    Some(response.freeze())
}
