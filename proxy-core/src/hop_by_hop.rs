//! Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection and are not
//! forwarded. The proxy writes its own `Connection` (and framing) for the next hop.

use crate::field_name::FieldName;
use crate::head::{list_elements, Fields};

/// Fields that are always hop-by-hop. `Transfer-Encoding` is on the list because the
/// proxy re-frames every chunked body; the framing code writes it back when it does.
pub const ALWAYS: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields a `Connection` option may not remove. Naming them in `Connection` is a known
/// trick to make a proxy strip a field the next hop relies on ("hop-by-hop header
/// abuse"): routing (`Host`), framing (`Content-Length`) and the proxy's own
/// `X-Forwarded-*` fields stay.
pub const PROTECTED: [&str; 4] = [
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// What a head's `Connection` fields say, read once as the head's fields are located: the
/// options the proxy acts on, and a screen of all the options, so that most fields
/// are known not to be named without a look at them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionOptions {
    /// A bit per listed option, from its length and first letter (see
    /// [`screen_bit`]): a name whose bit is clear is not listed.
    screen: u64,
    /// `close` is listed (RFC 9112 §9.6).
    pub(crate) close: bool,
    /// `keep-alive` is listed (HTTP/1.0 persistence, RFC 9112 §9.3).
    pub(crate) keep_alive: bool,
    /// `upgrade` is listed (RFC 9110 §7.8).
    pub(crate) upgrade: bool,
}

impl ConnectionOptions {
    /// Adds the options listed in one `Connection` value (as each is located).
    pub(crate) fn add(&mut self, value: &[u8]) {
        for option in list_elements(value) {
            self.screen |= screen_bit(option);
            self.close |= option.eq_ignore_ascii_case(b"close");
            self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            self.upgrade |= option.eq_ignore_ascii_case(b"upgrade");
        }
    }

    /// Whether `name` may be listed: false means it certainly is not, and no look
    /// at the options is needed.
    #[inline]
    pub(crate) fn may_list(&self, name: &[u8]) -> bool {
        self.screen & screen_bit(name) != 0
    }
}

impl Fields {
    /// Whether the field `name` (recognised as `kind`) must not be forwarded: it is
    /// always hop-by-hop, or a `Connection` field of this head lists it.
    #[inline]
    pub(crate) fn is_hop_by_hop(&self, kind: FieldName, name: &[u8]) -> bool {
        kind.is_always_hop_by_hop()
            || (!kind.is_protected()
                && self.connection.may_list(name)
                && self
                    .list(FieldName::Connection)
                    .any(|o| name.eq_ignore_ascii_case(o)))
    }
}

/// One of 64 bits for a name, the same in any case: most fields then need no look at
/// the options (`keep-alive` and `User-Agent` have the same length, not the same bit).
#[inline]
fn screen_bit(s: &[u8]) -> u64 {
    let first = s.first().map_or(0, |b| b & 0x1f);
    1 << ((s.len() * 7 + usize::from(first)) % 64)
}

/// Whether a field with this name must not be forwarded, given the head's
/// `Connection` options.
pub fn is_hop_by_hop(name: &[u8], connection_options: &[&[u8]]) -> bool {
    let kind = FieldName::of(name);
    kind.is_always_hop_by_hop()
        || (!kind.is_protected()
            && connection_options
                .iter()
                .any(|o| name.eq_ignore_ascii_case(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_options_are_hop_by_hop() {
        assert!(is_hop_by_hop(b"X-Secret", &[b"close", b"x-secret"]));
        assert!(!is_hop_by_hop(b"X-Other", &[b"close", b"x-secret"]));
    }

    #[test]
    fn connection_cannot_remove_host_or_content_length() {
        assert!(!is_hop_by_hop(b"Host", &[b"host"]));
        assert!(!is_hop_by_hop(b"content-length", &[b"Content-Length"]));
    }

    #[test]
    fn standard_hop_by_hop_fields_in_any_case() {
        for name in [
            "Connection",
            "KEEP-ALIVE",
            "Proxy-Connection",
            "te",
            "Trailer",
            "Upgrade",
        ] {
            assert!(is_hop_by_hop(name.as_bytes(), &[]), "{name}");
        }
    }
}
