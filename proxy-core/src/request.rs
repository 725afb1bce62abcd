//! Request heads: parse strictly (RFC 9112 §3, §5; RFC 9110 §7.2) and write the head
//! the upstream gets.

use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;
use std::ops::Range;

use crate::config::Config;
use crate::error::ProxyError;
use crate::framing::{self, BodyKind};
use crate::head::{header_room, headers_up_to, is_field_value_byte, Fields};
use crate::hop_by_hop;
use crate::io::ClientInfo;
use crate::upgrade::{self, UpgradeOffer};

/// A checked request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    fields: Fields,
    method: Range<usize>,
    target: Range<usize>,
    /// What goes upstream as the request-target (origin-form; RFC 9112 §3.2.2).
    forward_target: Bytes,
    /// The authority of an absolute-form target, which replaces `Host` (RFC 9112 §3.2.2).
    target_authority: Option<Bytes>,
    http10: bool,
    body: BodyKind,
    keep_alive: bool,
    upgrade: Option<UpgradeOffer>,
}

impl RequestHead {
    /// Parses and checks a complete head (as collected up to its empty line).
    pub fn parse(head: Bytes, config: &Config) -> Result<RequestHead, ProxyError> {
        let limits = &config.limits;
        let (mut stack, mut heap) = (header_room(), Vec::new());
        let headers = headers_up_to(&mut stack, &mut heap, limits.max_headers);
        let mut request = httparse::Request::new(&mut []);
        let (method, target, http10) = match request.parse_with_uninit_headers(&head, headers) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default();
                let target = request.path.unwrap_or_default();
                if target.len() > limits.max_target_len {
                    return Err(ProxyError::RequestTargetTooLong);
                }
                (
                    range_in(&head, method.as_bytes()),
                    range_in(&head, target.as_bytes()),
                    request.version == Some(0),
                )
            }
            Ok(httparse::Status::Partial) => return Err(ProxyError::MalformedRequestLine),
            Err(e) => return Err(classify(e, &head, limits.max_target_len)),
        };
        let fields = Fields::locate(head.clone(), request.headers);
        // httparse accepts obs-text and HTAB in values; controls it already refuses.
        if fields
            .iter()
            .any(|(_, v)| !v.iter().all(|&b| is_field_value_byte(b)))
        {
            return Err(ProxyError::InvalidFieldValue);
        }
        let method_bytes = &head[method.clone()];
        if method_bytes == b"CONNECT" {
            return Err(ProxyError::ConnectNotSupported);
        }
        let (forward_target, target_authority) =
            request_target(&head, target.clone(), method_bytes)?;
        check_host(&fields, http10, target_authority.is_some())?;
        let body = framing::request_body(&fields, http10)?;
        let close = fields.has_token("connection", "close");
        let keep_alive = if http10 {
            !close && fields.has_token("connection", "keep-alive")
        } else {
            !close
        };
        let upgrade = upgrade::offer(&fields, http10);
        Ok(RequestHead {
            fields,
            method,
            target,
            forward_target,
            target_authority,
            http10,
            body,
            keep_alive,
            upgrade,
        })
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &[u8] {
        &self.fields.bytes[self.method.clone()]
    }

    /// The request-target as received.
    pub fn target(&self) -> &[u8] {
        &self.fields.bytes[self.target.clone()]
    }

    /// [`method`](Self::method), sharing the head's buffer.
    pub(crate) fn method_bytes(&self) -> Bytes {
        self.fields.bytes.slice(self.method.clone())
    }

    /// At most `max` bytes of [`target`](Self::target), sharing the head's buffer.
    pub(crate) fn target_bytes(&self, max: usize) -> Bytes {
        let target = self.target.clone();
        let end = target.end.min(target.start + max);
        self.fields.bytes.slice(target.start..end)
    }

    /// The host the request is for: the absolute-form authority, else `Host`.
    pub fn host(&self) -> Option<&[u8]> {
        self.target_authority
            .as_deref()
            .or_else(|| self.fields.values("host").next())
    }

    /// The request-target that goes upstream (origin-form).
    pub fn forward_target(&self) -> &[u8] {
        &self.forward_target
    }

    /// Removes the first `len` bytes of the path (a route's `strip_prefix`), keeping
    /// the target in origin-form.
    pub fn strip_prefix(&mut self, len: usize) {
        if len == 0 || len > self.forward_target.len() {
            return;
        }
        let rest = self.forward_target.slice(len..);
        self.forward_target = if rest.starts_with(b"/") {
            rest
        } else {
            let mut with_slash = BytesMut::with_capacity(rest.len() + 1);
            with_slash.put_u8(b'/');
            with_slash.put_slice(&rest);
            with_slash.freeze()
        };
    }

    /// Whether the request line said HTTP/1.0.
    pub fn is_http10(&self) -> bool {
        self.http10
    }

    /// How the body is delimited.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Whether the client wants the connection kept open after this exchange
    /// (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The upgrade the client offered, if this is an upgrade attempt.
    pub fn upgrade(&self) -> Option<&UpgradeOffer> {
        self.upgrade.as_ref()
    }

    /// Whether the method is HEAD (its response has no body).
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// Whether the client sent `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        !self.http10 && self.fields.has_token("expect", "100-continue")
    }

    /// The head the upstream gets: request-line in HTTP/1.1 with an origin-form target;
    /// every end-to-end field byte-exact and in order; hop-by-hop fields removed;
    /// `X-Forwarded-*` added as configured; `Connection: Upgrade` for an upgrade.
    /// A request without `Host` (HTTP/1.0) gets `fallback_host` (the upstream's address).
    pub fn forward(&self, config: &Config, client: &ClientInfo, fallback_host: &[u8]) -> Bytes {
        let options = hop_by_hop::connection_options(&self.fields);
        let forwarded = &config.forwarded;
        // List fields the proxy adds its hop to: every earlier value, then its own, in
        // one field where the first one was (RFC 9110 §5.3), or at the end.
        // (On the stack: forwarding a head allocates only its output.)
        let mut ip = [0u8; 48];
        let mut xff = None;
        if let Some(addr) = client.addr.filter(|_| forwarded.x_forwarded_for) {
            let mut rest = &mut ip[..];
            if write!(rest, "{}", addr.ip()).is_ok() {
                let len = 48 - rest.len();
                xff = Some(&ip[..len]);
            }
        }
        // RFC 9110 §7.6.3: a gateway MUST add Via to the requests it forwards.
        let via: &[u8] = if self.http10 {
            b"1.0 switchyard"
        } else {
            b"1.1 switchyard"
        };
        let mut appended: [Appended; 2] = [
            (b"X-Forwarded-For", xff, false),
            (b"Via", forwarded.via.then_some(via), false),
        ];
        let mut out = BytesMut::with_capacity(self.fields.bytes.len() + 128);
        out.put_slice(self.method());
        out.put_u8(b' ');
        out.put_slice(&self.forward_target);
        out.put_slice(b" HTTP/1.1\r\n");
        let (mut host_written, mut length_written) = (false, false);
        for (name, value) in self.fields.iter() {
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("upgrade") && self.upgrade.is_some() {
                put_field(&mut out, name, value);
            } else if hop_by_hop::is_hop_by_hop(name, &options) {
                if is("transfer-encoding") && self.body == BodyKind::Chunked {
                    // Re-encoded as chunked: the codings still apply.
                    put_field(&mut out, name, value);
                }
            } else if is("host") {
                let value = self.target_authority.as_deref().unwrap_or(value);
                put_field(&mut out, name, value);
                host_written = true;
            } else if is("content-length") {
                if !length_written {
                    if let BodyKind::Length(n) = self.body {
                        put_field(&mut out, name, n.to_string().as_bytes());
                    } else {
                        put_field(&mut out, name, b"0");
                    }
                    length_written = true;
                }
            } else if let Some((canonical, Some(own), written)) = appended
                .iter_mut()
                .find(|(n, own, _)| own.is_some() && name.eq_ignore_ascii_case(n))
            {
                if !*written {
                    let mut combined = BytesMut::new();
                    let lower = String::from_utf8_lossy(canonical).to_ascii_lowercase();
                    for earlier in self.fields.values(&lower) {
                        combined.put_slice(earlier);
                        combined.put_slice(b", ");
                    }
                    combined.put_slice(own);
                    put_field(&mut out, name, &combined);
                    *written = true;
                }
            } else if is("x-forwarded-proto") && forwarded.x_forwarded_proto {
                // Replaced below: the client does not get to say.
            } else {
                put_field(&mut out, name, value);
            }
        }
        if !host_written {
            let host = self.target_authority.as_deref().unwrap_or(fallback_host);
            put_field(&mut out, b"Host", host);
        }
        for (canonical, own, written) in appended {
            if let (Some(own), false) = (own, written) {
                put_field(&mut out, canonical, own);
            }
        }
        if forwarded.x_forwarded_proto {
            put_field(
                &mut out,
                b"X-Forwarded-Proto",
                if client.tls { b"https" } else { b"http" },
            );
        }
        if self.upgrade.is_some() {
            put_field(&mut out, b"Connection", b"Upgrade");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }
}

/// A list field the proxy adds its hop to: the name, its value (if configured) and
/// whether it was written yet.
type Appended<'a> = (&'static [u8], Option<&'a [u8]>, bool);

pub(crate) fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// The range of `part` (a sub-slice of `whole`) inside `whole`.
pub(crate) fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// Maps httparse's error onto the rule that was broken.
fn classify(error: httparse::Error, head: &[u8], max_target_len: usize) -> ProxyError {
    use httparse::Error::*;
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    match error {
        HeaderName => ProxyError::InvalidFieldName,
        HeaderValue => ProxyError::InvalidFieldValue,
        TooManyHeaders => ProxyError::TooManyRequestFields,
        Version if is_other_http_version(line) => ProxyError::UnsupportedVersion,
        _ if line
            .split(|&b| b == b' ')
            .nth(1)
            .is_some_and(|t| t.len() > max_target_len) =>
        {
            ProxyError::RequestTargetTooLong
        }
        _ => ProxyError::MalformedRequestLine,
    }
}

/// `HTTP/x.y` at the end of a request line, with x.y other than 1.0 and 1.1.
fn is_other_http_version(line: &[u8]) -> bool {
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit())
        || matches!(version, [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit())
}

/// Checks the request-target's form (RFC 9112 §3.2) and returns the origin-form target
/// to forward, plus the authority when the target was in absolute-form.
fn request_target(
    head: &Bytes,
    target: Range<usize>,
    method: &[u8],
) -> Result<(Bytes, Option<Bytes>), ProxyError> {
    let bytes = &head[target.clone()];
    if bytes.contains(&b'#') {
        return Err(ProxyError::InvalidRequestTarget);
    }
    if bytes.starts_with(b"/") {
        return Ok((head.slice(target), None));
    }
    if bytes == b"*" {
        return if method == b"OPTIONS" {
            Ok((head.slice(target), None))
        } else {
            Err(ProxyError::InvalidRequestTarget)
        };
    }
    let scheme_len = if starts_with_ignore_case(bytes, b"http://") {
        7
    } else if starts_with_ignore_case(bytes, b"https://") {
        8
    } else {
        return Err(ProxyError::InvalidRequestTarget);
    };
    let rest = &bytes[scheme_len..];
    let authority_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if authority.is_empty() || authority.contains(&b'@') || !is_valid_authority(authority) {
        return Err(ProxyError::InvalidRequestTarget);
    }
    let start = target.start + scheme_len;
    let authority = head.slice(start..start + authority_len);
    let path = head.slice(start + authority_len..target.end);
    let forward = if path.starts_with(b"/") {
        path
    } else {
        let mut with_slash = BytesMut::with_capacity(path.len() + 1);
        with_slash.put_u8(b'/');
        with_slash.put_slice(&path);
        with_slash.freeze()
    };
    Ok((forward, Some(authority)))
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// RFC 9112 §3.2: HTTP/1.1 requires exactly one `Host`; HTTP/1.0 at most one. Its value
/// must be a `uri-host [ ":" port ]` (or empty), whatever the target's form.
fn check_host(fields: &Fields, http10: bool, absolute_form: bool) -> Result<(), ProxyError> {
    let mut hosts = fields.values("host");
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(ProxyError::DuplicateHost),
        (None, _) if !http10 && !absolute_form => Err(ProxyError::MissingHost),
        (None, _) => Ok(()),
        (Some(host), None) if host.is_empty() || is_valid_authority(host) => Ok(()),
        (Some(_), None) => Err(ProxyError::InvalidHost),
    }
}

/// `host [ ":" port ]` with reg-name, IPv4 or IP-literal characters (RFC 3986 §3.2.2).
fn is_valid_authority(authority: &[u8]) -> bool {
    let (host, port) = match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if !authority[colon..].contains(&b']') => {
            (&authority[..colon], &authority[colon + 1..])
        }
        _ => (authority, &b""[..]),
    };
    let host_ok = if let [b'[', inner @ .., b']'] = host {
        !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
    };
    host_ok && port.iter().all(u8::is_ascii_digit) && port.len() <= 5
}
