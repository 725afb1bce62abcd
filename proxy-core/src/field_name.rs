//! The field names the proxy acts on, recognised once per field when a head is parsed.
//!
//! Every rule (framing, hop-by-hop, `Host`, upgrades) then asks for a [`FieldName`]
//! rather than comparing names again: a head is read once, not once per rule.

/// A field name the proxy has a rule for; anything else is [`FieldName::Other`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FieldName {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    SecWebSocketKey,
    SecWebSocketAccept,
    SecWebSocketExtensions,
    SecWebSocketProtocol,
    SecWebSocketVersion,
    XForwardedFor,
    XForwardedProto,
    Via,
    MaxForwards,
    Date,
    #[default]
    Other,
}

/// Every name recognised, as spelled in lowercase.
const NAMES: [(FieldName, &str); 20] = [
    (FieldName::Host, "host"),
    (FieldName::ContentLength, "content-length"),
    (FieldName::TransferEncoding, "transfer-encoding"),
    (FieldName::Connection, "connection"),
    (FieldName::KeepAlive, "keep-alive"),
    (FieldName::ProxyConnection, "proxy-connection"),
    (FieldName::Te, "te"),
    (FieldName::Trailer, "trailer"),
    (FieldName::Upgrade, "upgrade"),
    (FieldName::Expect, "expect"),
    (FieldName::SecWebSocketKey, "sec-websocket-key"),
    (FieldName::SecWebSocketAccept, "sec-websocket-accept"),
    (
        FieldName::SecWebSocketExtensions,
        "sec-websocket-extensions",
    ),
    (FieldName::SecWebSocketProtocol, "sec-websocket-protocol"),
    (FieldName::SecWebSocketVersion, "sec-websocket-version"),
    (FieldName::XForwardedFor, "x-forwarded-for"),
    (FieldName::XForwardedProto, "x-forwarded-proto"),
    (FieldName::Via, "via"),
    (FieldName::MaxForwards, "max-forwards"),
    (FieldName::Date, "date"),
];

/// The longest name in [`NAMES`].
const LONGEST: usize = 24;

/// `CANDIDATE[length][first byte & 0x1f]`: 1 + the index in [`NAMES`] of the only name
/// with that length and first letter (in either case), or 0. Built when compiling,
/// which fails if two names shared a slot.
static CANDIDATE: [[u8; 32]; LONGEST + 1] = {
    let mut table = [[0u8; 32]; LONGEST + 1];
    let mut i = 0;
    while i < NAMES.len() {
        let name = NAMES[i].1.as_bytes();
        let slot = &mut table[name.len()][(name[0] & 0x1f) as usize];
        assert!(*slot == 0, "two names share a slot");
        *slot = i as u8 + 1;
        i += 1;
    }
    table
};

/// The one name in [`NAMES`] that `name` could be, by its length and first letter.
#[inline]
fn candidate(name: &[u8]) -> Option<&'static (FieldName, &'static str)> {
    let first = name.first().map_or(0, |b| usize::from(b & 0x1f));
    CANDIDATE
        .get(name.len())
        .and_then(|row| row.get(first))
        .and_then(|&i| NAMES.get(usize::from(i).wrapping_sub(1)))
}

impl FieldName {
    /// Recognises a name, ignoring case: its length and first letter pick the one
    /// candidate, and a single comparison confirms it.
    #[inline]
    pub(crate) fn of(name: &[u8]) -> FieldName {
        match candidate(name) {
            Some(&(kind, spelled)) if name.eq_ignore_ascii_case(spelled.as_bytes()) => kind,
            _ => FieldName::Other,
        }
    }

    /// The recognised name that `name` spells with `_` for one or more of its `-`
    /// (`Transfer_Encoding`, `X-Forwarded_For`), in any case. Such a field is not one the
    /// proxy acts on, but CGI, WSGI, Rack and PHP read `_` and `-` alike (both are
    /// `HTTP_TRANSFER_ENCODING` to the application), so behind the proxy it would pass
    /// for the field the proxy framed by or set itself.
    pub(crate) fn underscored(name: &[u8]) -> Option<FieldName> {
        let &(kind, spelled) = candidate(name)?;
        let mut underscores = false;
        let alike = name.iter().zip(spelled.as_bytes()).all(|(&byte, &letter)| {
            let underscore = byte == b'_' && letter == b'-';
            underscores |= underscore;
            underscore || byte.to_ascii_lowercase() == letter
        });
        (alike && underscores).then_some(kind)
    }

    /// This name's bit in a set of names (see [`Fields::present`](crate::head::Fields)).
    pub(crate) fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Fields that are always hop-by-hop (see [`crate::hop_by_hop::ALWAYS`]).
    pub(crate) fn is_always_hop_by_hop(self) -> bool {
        use FieldName::*;
        matches!(
            self,
            Connection | KeepAlive | ProxyConnection | Te | Trailer | TransferEncoding | Upgrade
        )
    }

    /// Fields a `Connection` option may not remove (see [`crate::hop_by_hop::PROTECTED`]).
    pub(crate) fn is_protected(self) -> bool {
        use FieldName::*;
        matches!(self, Host | ContentLength | XForwardedFor | XForwardedProto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_recognised_in_any_case_and_only_exactly() {
        use FieldName::*;
        let all = NAMES;
        for (kind, name) in all {
            assert_eq!(FieldName::of(name.as_bytes()), kind, "{name}");
            assert_eq!(
                FieldName::of(name.to_uppercase().as_bytes()),
                kind,
                "{name}"
            );
            let mut other = name.as_bytes().to_vec();
            *other.last_mut().unwrap() ^= 0x01;
            assert_eq!(FieldName::of(&other), Other, "{name}");
        }
        for name in [
            "",
            "t",
            "hosts",
            "User-Agent",
            "Content-Type",
            "X-Forwarded-Host",
        ] {
            assert_eq!(FieldName::of(name.as_bytes()), Other, "{name}");
        }
        for name in crate::hop_by_hop::ALWAYS {
            assert!(
                FieldName::of(name.as_bytes()).is_always_hop_by_hop(),
                "{name}"
            );
        }
        for name in crate::hop_by_hop::PROTECTED {
            assert!(FieldName::of(name.as_bytes()).is_protected(), "{name}");
        }
    }

    #[test]
    fn a_name_with_underscores_for_hyphens_is_known_for_the_name_it_spells() {
        use FieldName::*;
        for (name, kind) in [
            ("Transfer_Encoding", TransferEncoding),
            ("content_length", ContentLength),
            ("X-Forwarded_For", XForwardedFor),
            ("X_FORWARDED_PROTO", XForwardedProto),
            ("Sec_WebSocket-Key", SecWebSocketKey),
            ("max_forwards", MaxForwards),
        ] {
            assert_eq!(FieldName::of(name.as_bytes()), Other, "{name}");
            assert_eq!(
                FieldName::underscored(name.as_bytes()),
                Some(kind),
                "{name}"
            );
        }
        for name in [
            // Spelled right: recognised, not an alias.
            "Transfer-Encoding",
            "X-Forwarded-For",
            // `_` where the name has a letter, or where it has nothing.
            "Transfer_Encodin_",
            "Host_",
            "_ost",
            // Other names with underscores, which pass as they are.
            "X_Request_Id",
            "api_key",
            "",
        ] {
            assert_eq!(FieldName::underscored(name.as_bytes()), None, "{name}");
        }
    }
}
