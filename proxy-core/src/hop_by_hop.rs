//! Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection and are not
//! forwarded. The proxy writes its own `Connection` (and framing) for the next hop.

use crate::field_name::FieldName;
use crate::head::Fields;

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

/// What a head's `Connection` fields say, read once when the head is parsed: the
/// options the proxy acts on, and which lengths the options have, so that a field
/// whose name has no option's length is known not to be named without a look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionOptions {
    /// Bit `n` set: an option `n` bytes long (63 for any longer) is listed.
    lengths: u64,
    /// `close` is listed (RFC 9112 §9.6).
    pub(crate) close: bool,
    /// `keep-alive` is listed (HTTP/1.0 persistence, RFC 9112 §9.3).
    pub(crate) keep_alive: bool,
    /// `upgrade` is listed (RFC 9110 §7.8).
    pub(crate) upgrade: bool,
}

impl ConnectionOptions {
    /// The options listed in every `Connection` field of a head.
    pub(crate) fn of(fields: &Fields) -> ConnectionOptions {
        let mut options = ConnectionOptions::default();
        if !fields.has(FieldName::Connection) {
            return options;
        }
        for option in fields.list(FieldName::Connection) {
            options.lengths |= length_bit(option);
            options.close |= option.eq_ignore_ascii_case(b"close");
            options.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            options.upgrade |= option.eq_ignore_ascii_case(b"upgrade");
        }
        options
    }

    /// Whether a `Connection` field of `fields` (the head these options were read
    /// from) lists `name`.
    fn name(&self, fields: &Fields, name: &[u8]) -> bool {
        self.lengths & length_bit(name) != 0
            && fields
                .list(FieldName::Connection)
                .any(|option| name.eq_ignore_ascii_case(option))
    }

    /// Whether the field `name` (recognised as `kind`) of `fields` must not be
    /// forwarded.
    pub(crate) fn is_hop_by_hop(&self, fields: &Fields, kind: FieldName, name: &[u8]) -> bool {
        kind.is_always_hop_by_hop() || (!kind.is_protected() && self.name(fields, name))
    }
}

fn length_bit(s: &[u8]) -> u64 {
    1 << s.len().min(63)
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
