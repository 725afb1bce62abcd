//! Protocol upgrades (RFC 9110 §7.8, §15.2.2; RFC 6455 §4).
//!
//! A proxy must not let an upstream switch a client that never asked: the `101` is
//! accepted only when it answers an upgrade attempt, says `Connection: upgrade`, names
//! exactly one of the offered protocols, and, for WebSocket, proves it read the
//! client's key (`Sec-WebSocket-Accept`) and chose no subprotocol or extension the
//! client did not offer (the client would fail the connection, RFC 6455 §4.1, with
//! nothing to say why; the proxy answers `502` instead).

use base64::Engine as _;

use crate::error::ProxyError;
use crate::field_name::FieldName;
use crate::head::{is_token, Fields};

/// The GUID RFC 6455 §1.3 appends to the client's key.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What the client asked to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeOffer {
    /// Protocols listed in `Upgrade`, as sent (`name` or `name/version`).
    pub protocols: Vec<String>,
    /// The `Sec-WebSocket-Key`, when exactly one was sent.
    pub websocket_key: Option<String>,
}

/// An HTTP/1.1 request is an upgrade attempt when it has `Upgrade` and its `Connection`
/// lists the `upgrade` option. (RFC 9110 §7.8: `Upgrade` in HTTP/1.0 is ignored.)
///
/// `h2c` is never offered upstream: an upstream that switched to it would speak HTTP/2
/// with the client past every rule of the proxy (routing, smuggling checks,
/// `X-Forwarded-For`): the "h2c smuggling" attack. RFC 9113 §3.1 deprecates that
/// upgrade; a client that offers it gets HTTP/1.1, as from a server that declines.
///
/// Every element of `Upgrade` must be a protocol, `token ["/" token]`, or the request
/// is `400`: an upstream reading a malformed list more loosely could find a protocol
/// (`h2c` in `" h2c`) the proxy never saw.
///
/// An attempt that offers WebSocket must carry exactly one `Sec-WebSocket-Key`, the
/// base64 of 16 bytes (RFC 6455 §4.1, §11.3.1); otherwise it is the client's fault, and
/// it gets `400` (as from Node's `ws` or Go's gorilla) rather than a `502` for the accept
/// no upstream could get right. Then its `Sec-WebSocket-Version` must be `13`, the
/// framing the proxy follows, else `426` naming it (RFC 6455 §4.2.2).
pub(crate) fn offer(fields: &Fields, http10: bool) -> Result<Option<UpgradeOffer>, ProxyError> {
    if http10 || !fields.connection.upgrade || !fields.has(FieldName::Upgrade) {
        return Ok(None);
    }
    if !fields.list(FieldName::Upgrade).all(is_protocol) {
        return Err(ProxyError::InvalidUpgrade);
    }
    let protocols: Vec<String> = fields
        .list(FieldName::Upgrade)
        .filter(|p| !is_h2c(p))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if protocols.is_empty() {
        return Ok(None);
    }
    let mut keys = fields.values(FieldName::SecWebSocketKey);
    let websocket_key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_websocket_key(key) => {
            std::str::from_utf8(key).ok().map(str::to_owned)
        }
        _ => None,
    };
    let offer = UpgradeOffer {
        protocols,
        websocket_key,
    };
    if offer.offers_websocket() {
        if offer.websocket_key.is_none() {
            return Err(ProxyError::InvalidWebSocketKey);
        }
        let mut versions = fields.values(FieldName::SecWebSocketVersion);
        if !matches!((versions.next(), versions.next()), (Some(b"13"), None)) {
            return Err(ProxyError::UnsupportedWebSocketVersion);
        }
    }
    Ok(Some(offer))
}

impl UpgradeOffer {
    /// Whether WebSocket is among the protocols offered.
    pub fn offers_websocket(&self) -> bool {
        self.protocols.iter().any(|p| is_websocket(p.as_bytes()))
    }
}

/// A `Sec-WebSocket-Key` as RFC 6455 §4.1 has clients send it: 16 bytes in base64 (24
/// characters, padded).
fn is_websocket_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24
        && base64::engine::general_purpose::STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

/// Checks a `101` against the offer and, for WebSocket, the subprotocols and extensions
/// in the `request` fields; returns the protocol switched to.
pub(crate) fn accept_switch(
    offer: Option<&UpgradeOffer>,
    request: &Fields,
    response: &Fields,
) -> Result<String, ProxyError> {
    let offer = offer.ok_or(ProxyError::UnsolicitedUpgrade)?;
    if !response.connection.upgrade {
        return Err(ProxyError::UpgradeProtocolMismatch);
    }
    let mut chosen = response.list(FieldName::Upgrade);
    let protocol = match (chosen.next(), chosen.next()) {
        (Some(p), None) => p,
        _ => return Err(ProxyError::UpgradeProtocolMismatch),
    };
    let offered = offer
        .protocols
        .iter()
        .any(|o| same_protocol(o.as_bytes(), protocol));
    if !offered {
        return Err(ProxyError::UpgradeProtocolMismatch);
    }
    if is_websocket(protocol) {
        let key = offer
            .websocket_key
            .as_deref()
            .ok_or(ProxyError::WebSocketAcceptMismatch)?;
        let mut accepts = response.values(FieldName::SecWebSocketAccept);
        match (accepts.next(), accepts.next()) {
            (Some(accept), None) if accept == websocket_accept(key).as_bytes() => {}
            _ => return Err(ProxyError::WebSocketAcceptMismatch),
        }
        check_negotiated(request, response)?;
    }
    Ok(String::from_utf8_lossy(protocol).into_owned())
}

/// RFC 6455 §4.1: a `101` may select at most one subprotocol, one the client offered
/// (compared exactly, as browsers do; a `Sec-WebSocket-Protocol` field must name it),
/// and only extensions the client offered (by name, ignoring case; their parameters
/// are the endpoints' business). What was offered is read from the `request` fields.
fn check_negotiated(request: &Fields, response: &Fields) -> Result<(), ProxyError> {
    let mut chosen = response.list(FieldName::SecWebSocketProtocol);
    match (chosen.next(), chosen.next()) {
        // A field that names none is no choice either (browsers fail it).
        (None, _) if !response.has(FieldName::SecWebSocketProtocol) => {}
        (Some(subprotocol), None)
            if request
                .list(FieldName::SecWebSocketProtocol)
                .any(|o| o == subprotocol) => {}
        _ => return Err(ProxyError::WebSocketSubprotocolMismatch),
    }
    let offered = |name: &[u8]| {
        (request.list(FieldName::SecWebSocketExtensions))
            .any(|o| extension_name(o).eq_ignore_ascii_case(name))
    };
    match (response.list(FieldName::SecWebSocketExtensions)).all(|e| offered(extension_name(e))) {
        true => Ok(()),
        false => Err(ProxyError::WebSocketExtensionMismatch),
    }
}

/// Whether a `101` accepted by [`accept_switch`] negotiated an extension, allowing RSV
/// bits in its frames: it names one (an empty field names none).
pub(crate) fn negotiates_extension(response: &Fields) -> bool {
    response
        .list(FieldName::SecWebSocketExtensions)
        .next()
        .is_some()
}

/// An extension's name: what comes before its first `;` (RFC 6455 §9.1).
fn extension_name(extension: &[u8]) -> &[u8] {
    let name = extension.split(|&b| b == b';').next().unwrap_or_default();
    crate::head::trim_ows(name)
}

/// Whether `element` is a protocol as RFC 9110 §7.8 writes it: `name` or
/// `name/version`, both tokens.
fn is_protocol(element: &[u8]) -> bool {
    let mut parts = element.splitn(2, |&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    is_token(name) && parts.next().is_none_or(is_token)
}

/// Whether a protocol (`name` or `name/version`) is WebSocket, whatever its version:
/// its accept is checked and its tunnel is frame-aware.
pub(crate) fn is_websocket(protocol: &[u8]) -> bool {
    let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
    name.eq_ignore_ascii_case(b"websocket")
}

/// Whether a protocol (`name` or `name/version`) is cleartext HTTP/2 (see [`offer`]).
pub(crate) fn is_h2c(protocol: &[u8]) -> bool {
    let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
    name.eq_ignore_ascii_case(b"h2c")
}

/// Protocol names compare case-insensitively; a version, when the response gives one,
/// must match an offered one (RFC 9110 §7.8).
fn same_protocol(offered: &[u8], chosen: &[u8]) -> bool {
    let name = |p: &[u8]| {
        p.split(|&b| b == b'/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    if chosen.contains(&b'/') {
        offered.eq_ignore_ascii_case(chosen)
    } else {
        name(offered) == name(chosen)
    }
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key ++ GUID)), RFC 6455 §4.2.2.
pub fn websocket_accept(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_accept_matches_rfc6455_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn protocol_versions_must_match_when_given() {
        assert!(same_protocol(b"WebSocket", b"websocket"));
        assert!(same_protocol(b"h2c", b"H2C"));
        assert!(!same_protocol(b"foo/1", b"foo/2"));
        assert!(same_protocol(b"foo/1", b"foo"));
    }
}
