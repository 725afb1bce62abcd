//! Request heads: parse strictly (RFC 9112 §3, §5; RFC 9110 §7.2) and write the head
//! the upstream gets.

use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;
use std::net::IpAddr;
use std::ops::Range;

use crate::config::Config;
use crate::error::ProxyError;
use crate::field_name::FieldName;
use crate::framing::{self, BodyKind};
use crate::head::{header_room, headers_up_to, FieldRoom, Fields, MAX_LOCATABLE};
use crate::head_writer::{self, HeadWriter};
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
    /// Boxed: most requests have none, and a request head is moved several times.
    upgrade: Option<Box<UpgradeOffer>>,
    /// `Max-Forwards` of a `TRACE` or `OPTIONS` (RFC 9110 §7.6.2); other methods'
    /// is not the proxy's business and passes untouched.
    max_forwards: Option<u32>,
}

impl RequestHead {
    /// Parses and checks a complete head (as collected up to its empty line).
    pub fn parse(head: Bytes, config: &Config) -> Result<RequestHead, ProxyError> {
        RequestHead::parse_in(head, config, FieldRoom::default())
    }

    /// [`parse`](Self::parse), with `room` for the field positions.
    pub(crate) fn parse_in(
        head: Bytes,
        config: &Config,
        room: FieldRoom,
    ) -> Result<RequestHead, ProxyError> {
        let limits = &config.limits;
        if head.len() > MAX_LOCATABLE {
            return Err(ProxyError::RequestHeadTooLarge);
        }
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
            Err(e) => {
                let retry = (e == httparse::Error::Version).then(|| as_http11(&head));
                return match retry.flatten() {
                    Some(copy) => RequestHead::parse_in(copy, config, room),
                    None => Err(classify(e, &head, limits.max_target_len)),
                };
            }
        };
        let fields = Fields::locate(head.clone(), request.headers, room);
        if fields.underscored().is_some() {
            return Err(ProxyError::UnderscoredFieldName);
        }
        let method_bytes = &head[method.clone()];
        if method_bytes == b"CONNECT" {
            return Err(ProxyError::ConnectNotSupported);
        }
        let (forward_target, target_authority) =
            request_target(&head, target.clone(), method_bytes)?;
        check_host(&fields, http10, target_authority.is_some())?;
        let body = framing::request_body(&fields, http10)?;
        let connection = fields.connection;
        let keep_alive = if http10 {
            !connection.close && connection.keep_alive
        } else {
            !connection.close
        };
        let upgrade = upgrade::offer(&fields, http10)?.map(Box::new);
        if upgrade.is_some() && body != BodyKind::Empty {
            // Readers disagree on where the switch comes (RFC 9110 §7.8: after the body;
            // llhttp: after the head), so the body could be read as the next request.
            return Err(ProxyError::UpgradeWithBody);
        }
        let max_forwards = match method_bytes {
            b"TRACE" | b"OPTIONS" => max_forwards(&fields)?,
            _ => None,
        };
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
            max_forwards,
        })
    }

    /// Gives back the room its field positions took.
    pub(crate) fn into_room(self) -> FieldRoom {
        self.fields.into_room()
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
            .or_else(|| self.fields.values(FieldName::Host).next())
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
        self.upgrade.as_deref()
    }

    /// Fields as received, for the upgrade check (the subprotocols and extensions
    /// offered).
    pub(crate) fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Whether the method is HEAD (its response has no body).
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// Whether the proxy must answer this request itself rather than forward it: a
    /// `TRACE` or `OPTIONS` whose `Max-Forwards` has run out (RFC 9110 §7.6.2).
    pub fn answer_here(&self) -> bool {
        self.max_forwards == Some(0)
    }

    /// The response of the final recipient to a request that [`answer_here`]: for
    /// `OPTIONS`, 200 with no content; for `TRACE`, 200 with the request as received
    /// (`message/http`, RFC 9110 §9.3.8), less the fields that carry credentials.
    /// With `date`, it has a `Date`.
    ///
    /// [`answer_here`]: Self::answer_here
    pub(crate) fn answer(&self, date: Option<crate::HttpDate>) -> Bytes {
        let trace = match self.method() {
            b"TRACE" => {
                let mut out = HeadWriter::new(&self.fields, 0);
                out.put(self.method());
                out.put(b" ");
                out.put(self.target());
                out.put(match self.http10 {
                    true => b" HTTP/1.0\r\n",
                    false => b" HTTP/1.1\r\n",
                });
                for field in self.fields.iter() {
                    if !is_credential(field.name) {
                        out.keep(&field);
                    }
                }
                out.finish()
            }
            _ => Bytes::new(),
        };
        let mut response = BytesMut::with_capacity(128 + trace.len());
        response.put_slice(b"HTTP/1.1 200 OK\r\n");
        if !trace.is_empty() {
            response.put_slice(b"Content-Type: message/http\r\n");
        }
        if let Some(date) = date {
            head_writer::put_field(&mut response, b"Date", &date);
        }
        let mut digits = [0u8; 20];
        let length = head_writer::decimal(trace.len() as u64, &mut digits);
        head_writer::put_field(&mut response, b"Content-Length", length);
        response.put_slice(b"Connection: close\r\n\r\n");
        response.put_slice(&trace);
        response.freeze()
    }

    /// Whether the client sent `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        !self.http10 && self.fields.has_token(FieldName::Expect, "100-continue")
    }

    /// The head the upstream gets: request-line in HTTP/1.1 with an origin-form target;
    /// every end-to-end field byte-exact and in order; hop-by-hop fields removed;
    /// `X-Forwarded-*` added as configured; `Connection: Upgrade` for an upgrade.
    /// A request without `Host` (HTTP/1.0) gets `fallback_host` (the upstream's address).
    pub fn forward(&self, config: &Config, client: &ClientInfo, fallback_host: &[u8]) -> Bytes {
        let forwarded = &config.forwarded;
        // List fields the proxy adds its hop to get every earlier value, then its own,
        // in one field where the first one was (RFC 9110 §5.3), or at the end.
        // (On the stack: forwarding a head allocates only its output.)
        let mut ip = [0u8; 48];
        let xff = match client.addr {
            Some(addr) if forwarded.x_forwarded_for => write_ip(addr.ip(), &mut ip),
            _ => None,
        };
        // RFC 9110 §7.6.3: a gateway MUST add Via to the requests it forwards.
        let via: &[u8] = if self.http10 {
            b"1.0 switchyard"
        } else {
            b"1.1 switchyard"
        };
        let via = forwarded.via.then_some(via);
        let mut out = HeadWriter::new(&self.fields, 128);
        match self.unchanged_request_line() {
            Some(line) => out.keep_line(line),
            None => {
                out.put(self.method());
                out.put(b" ");
                out.put(&self.forward_target);
                out.put(b" HTTP/1.1\r\n");
            }
        }
        let [mut host_written, mut length_written, mut xff_written, mut via_written] = [false; 4];
        let (mut upgrade_written, mut te_written) = (false, false);
        for field in self.fields.iter() {
            let (kind, name) = (field.kind, field.name);
            match kind {
                FieldName::Upgrade if self.upgrade.is_some() => {
                    // Byte-exact, unless it named `h2c`, which is never offered (see
                    // `upgrade::offer`): then the offer's protocols alone.
                    match self.fields.list(FieldName::Upgrade).any(upgrade::is_h2c) {
                        false => out.keep(&field),
                        true if !upgrade_written => {
                            let offered = self.upgrade.iter().flat_map(|u| &u.protocols);
                            let list = offered.map(String::as_str).collect::<Vec<_>>();
                            out.field(name, list.join(", ").as_bytes());
                        }
                        true => {}
                    }
                    upgrade_written = true;
                }
                // Re-encoded as chunked: the codings still apply.
                FieldName::TransferEncoding if self.body == BodyKind::Chunked => {
                    out.transfer_encoding(&field, &mut te_written)
                }
                _ if self.fields.is_hop_by_hop(kind, name) => {}
                // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request
                // is ignored; passed on in the HTTP/1.1 request, the upstream could act
                // on it (a 417, say) for a client that never meant it.
                FieldName::Expect
                    if self.http10 && field.value.eq_ignore_ascii_case(b"100-continue") => {}
                FieldName::Host => {
                    match self.target_authority.as_deref() {
                        Some(authority) => out.field(name, authority),
                        None => out.keep(&field),
                    }
                    host_written = true;
                }
                FieldName::ContentLength => {
                    if !length_written {
                        let mut digits = [0u8; 20];
                        match self.body {
                            BodyKind::Length(n) => {
                                out.field(name, head_writer::decimal(n, &mut digits))
                            }
                            _ => out.field(name, b"0"),
                        }
                        length_written = true;
                    }
                }
                FieldName::XForwardedFor if xff.is_some() => {
                    if !xff_written {
                        self.put_appended(&mut out, kind, name, xff.unwrap_or_default());
                        xff_written = true;
                    }
                }
                FieldName::Via if via.is_some() => {
                    if !via_written {
                        self.put_appended(&mut out, kind, name, via.unwrap_or_default());
                        via_written = true;
                    }
                }
                FieldName::MaxForwards if self.max_forwards.is_some() => {
                    let left = self.max_forwards.unwrap_or_default().saturating_sub(1);
                    let mut digits = [0u8; 20];
                    out.field(name, head_writer::decimal(u64::from(left), &mut digits));
                }
                // Replaced below: the client does not get to say.
                FieldName::XForwardedProto if forwarded.x_forwarded_proto => {}
                _ => out.keep(&field),
            }
        }
        if !host_written {
            let host = self.target_authority.as_deref().unwrap_or(fallback_host);
            out.field(b"Host", host);
        }
        if let (Some(own), false) = (xff, xff_written) {
            out.field(b"X-Forwarded-For", own);
        }
        if let (Some(own), false) = (via, via_written) {
            out.field(b"Via", own);
        }
        if forwarded.x_forwarded_proto {
            out.field(
                b"X-Forwarded-Proto",
                if client.tls { b"https" } else { b"http" },
            );
        }
        if self.upgrade.is_some() {
            out.field(b"Connection", b"Upgrade");
        }
        out.finish()
    }

    /// The request-line as received, when it is the one that goes upstream: an
    /// HTTP/1.1 request-line whose target is forwarded as it is.
    fn unchanged_request_line(&self) -> Option<Range<usize>> {
        let head = &self.fields.bytes;
        let (method, target) = (&self.method, &self.target);
        let target_kept = head.get(target.clone()).map(<[u8]>::as_ptr)
            == Some(self.forward_target.as_ptr())
            && self.forward_target.len() == target.len();
        let end = target.end + 11;
        let canonical = method.end + 1 == target.start
            && head.get(method.end) == Some(&b' ')
            && head.get(target.end..end) == Some(b" HTTP/1.1\r\n");
        (target_kept && canonical).then_some(method.start..end)
    }

    /// One `name` field with the values of every `kind` field, then `own`.
    fn put_appended(&self, out: &mut HeadWriter<'_>, kind: FieldName, name: &[u8], own: &[u8]) {
        out.put(name);
        out.put(b": ");
        for earlier in self.fields.values(kind) {
            out.put(earlier);
            out.put(b", ");
        }
        out.put(own);
        out.put(b"\r\n");
    }
}

/// The address as `Display` writes it; an IPv4 address (the common case) without
/// going through `fmt`.
fn write_ip(ip: IpAddr, buf: &mut [u8; 48]) -> Option<&[u8]> {
    let len = match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                let digits = [
                    b'0' + octet / 100,
                    b'0' + octet / 10 % 10,
                    b'0' + octet % 10,
                ];
                let skip = match octet {
                    100.. => 0,
                    10.. => 1,
                    _ => 2,
                };
                let dot = usize::from(i > 0);
                let part = buf.get_mut(len..len + dot + 3 - skip)?;
                part[..dot].copy_from_slice(&b"."[..dot]);
                part[dot..].copy_from_slice(&digits[skip..]);
                len += part.len();
            }
            len
        }
        IpAddr::V6(v6) => {
            let mut rest = &mut buf[..];
            write!(rest, "{v6}").ok()?;
            48 - rest.len()
        }
    };
    buf.get(..len)
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

/// The version of a request line of three parts (`method SP target SP version`);
/// `None` for any other shape, which is malformed whatever its version.
fn version_token(line: &[u8]) -> Option<&[u8]> {
    let mut parts = line.split(|&b| b == b' ');
    let (_method, _target, version) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(version)
}

/// `HTTP/x.y` at the end of a well-formed request line, with x.y other than 1.0 and 1.1.
/// A version without its minor digit (`HTTP/1`, `HTTP/3`) is not the syntax of any
/// (RFC 9112 §2.3): a malformed request line, not an unsupported version.
fn is_other_http_version(line: &[u8]) -> bool {
    let version = version_token(line).unwrap_or_default();
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// A copy of a head whose request line says `HTTP/1.2` to `HTTP/1.9`, saying
/// `HTTP/1.1`: such a request is read as the highest minor version of its major one
/// the proxy implements (RFC 9110 §2.5), not refused. Rare, so a copy; the request
/// line is written anew when forwarded, so nothing else changes.
fn as_http11(head: &[u8]) -> Option<Bytes> {
    let line_end = head.iter().position(|&b| b == b'\r')?;
    match version_token(&head[..line_end])? {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => {
            let mut copy = BytesMut::from(head);
            copy[line_end - 1] = b'1';
            Some(copy.freeze())
        }
        _ => None,
    }
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

/// The `Max-Forwards` count (RFC 9110 §7.6.2): one field of decimal digits. A count
/// too large for 32 bits is as good as endless and is capped.
fn max_forwards(fields: &Fields) -> Result<Option<u32>, ProxyError> {
    let mut values = fields.values(FieldName::MaxForwards);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(ProxyError::InvalidMaxForwards);
    }
    let count = value.iter().fold(0u32, |n, &d| {
        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    });
    Ok(Some(count))
}

/// Fields a `TRACE` reflection leaves out (RFC 9110 §9.3.8: "likely to contain
/// sensitive data").
fn is_credential(name: &[u8]) -> bool {
    [&b"authorization"[..], b"proxy-authorization", b"cookie"]
        .iter()
        .any(|credential| name.eq_ignore_ascii_case(credential))
}

/// RFC 9112 §3.2: HTTP/1.1 requires exactly one `Host`; HTTP/1.0 at most one. Its value
/// must be a `uri-host [ ":" port ]`, whatever the target's form. An empty one names no
/// host, and an `http` URI with an empty host is invalid (RFC 9110 §4.2.1), so it is
/// refused unless an absolute-form target (whose authority replaces it) names one.
fn check_host(fields: &Fields, http10: bool, absolute_form: bool) -> Result<(), ProxyError> {
    let mut hosts = fields.values(FieldName::Host);
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(ProxyError::DuplicateHost),
        (None, _) if !http10 && !absolute_form => Err(ProxyError::MissingHost),
        (None, _) => Ok(()),
        (Some(b""), None) if absolute_form => Ok(()),
        (Some(host), None) if is_valid_authority(host) => Ok(()),
        (Some(_), None) => Err(ProxyError::InvalidHost),
    }
}

/// `host [ ":" port ]` with reg-name, IPv4 or IP-literal characters (RFC 3986 §3.2.2).
fn is_valid_authority(authority: &[u8]) -> bool {
    if let Some(b'[') = authority.first() {
        return is_valid_ip_literal_authority(authority);
    }
    // A reg-name or IPv4 address, in one pass: reg-name bytes (digits among them)
    // and at most one ':', which starts the port.
    let mut colon = None;
    for (i, &b) in authority.iter().enumerate() {
        if !REG_NAME[usize::from(b)] {
            if b != b':' || colon.is_some() {
                return false;
            }
            colon = Some(i);
        }
    }
    match colon {
        None => !authority.is_empty(),
        Some(colon) => colon > 0 && is_port(&authority[colon + 1..]),
    }
}

/// `[` IP-literal `]` [ ":" port ], the rare form of [`is_valid_authority`].
fn is_valid_ip_literal_authority(authority: &[u8]) -> bool {
    let (host, port) = match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if !authority[colon..].contains(&b']') => {
            (&authority[..colon], &authority[colon + 1..])
        }
        _ => (authority, &b""[..]),
    };
    let [b'[', inner @ .., b']'] = host else {
        return false;
    };
    !inner.is_empty()
        && inner
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && is_port(port)
}

/// An authority's port: up to 5 digits, possibly none (RFC 3986 §3.2.3).
fn is_port(port: &[u8]) -> bool {
    port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// The bytes of a reg-name or IPv4 address (unreserved, sub-delims, `%`) as a table.
static REG_NAME: [bool; 256] = crate::head::alphanumeric_and(b"-._~!$&'()*+,;=%");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let ips: [IpAddr; 6] = [
            [0, 0, 0, 0].into(),
            [192, 0, 2, 1].into(),
            [10, 99, 100, 255].into(),
            [255, 255, 255, 255].into(),
            "2001:db8::1".parse().unwrap(),
            "::ffff:192.0.2.1".parse().unwrap(),
        ];
        for ip in ips {
            let mut buf = [0u8; 48];
            assert_eq!(write_ip(ip, &mut buf), Some(ip.to_string().as_bytes()));
        }
    }
}
