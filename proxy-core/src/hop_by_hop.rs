//! Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection and are not
//! forwarded. The proxy writes its own `Connection` (and framing) for the next hop.

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

/// The options listed in every `Connection` field of a head, as given.
pub(crate) fn connection_options(fields: &crate::head::Fields) -> Vec<&[u8]> {
    fields.list("connection").collect()
}

/// Whether a field with this name must not be forwarded, given the head's
/// `Connection` options.
pub fn is_hop_by_hop(name: &[u8], connection_options: &[&[u8]]) -> bool {
    let named = |list: &[&str]| list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()));
    if named(&ALWAYS) {
        return true;
    }
    !named(&PROTECTED)
        && connection_options
            .iter()
            .any(|o| name.eq_ignore_ascii_case(o))
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
