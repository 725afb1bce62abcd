//! Which page origins may open a WebSocket (`websocket.allowed_origins`).
//!
//! A browser lets any page open a WebSocket to any server, with the user's cookies,
//! and says which page in `Origin` (RFC 6455 §4.1, §10.2; RFC 6454). A server that
//! does not check it serves other sites' scripts as if they were its own pages:
//! cross-site WebSocket hijacking. With a list configured, an upgrade to WebSocket
//! whose `Origin` matches no entry gets `403` and never reaches the upstream. A
//! handshake without `Origin` passes: only browsers send one, and a client that is
//! not a browser carries no other site's cookies.
//!
//! Entries are `scheme://host[:port]`: `https://app.example.com`, or
//! `https://*.example.com` for every subdomain (not the bare domain, as in routes).
//! Schemes, hosts and default ports compare as browsers serialise an origin: any
//! case, `https://a.example:443` the same as `https://a.example`.

use crate::head::Fields;

/// One side of a comparison: a configured entry or a request's `Origin`.
struct Origin<'a> {
    https: bool,
    host: &'a [u8],
    port: u16,
}

impl<'a> Origin<'a> {
    /// `scheme://host[:port]` with an `http` or `https` scheme and no path; `None`
    /// for anything else (`null`, a path, a bad port).
    fn parse(text: &'a [u8]) -> Option<Origin<'a>> {
        let split = text.windows(3).position(|w| w == b"://")?;
        let (scheme, rest) = (&text[..split], &text[split + 3..]);
        let https = match scheme {
            s if s.eq_ignore_ascii_case(b"https") => true,
            s if s.eq_ignore_ascii_case(b"http") => false,
            _ => return None,
        };
        let default_port = if https { 443 } else { 80 };
        // An IPv6 literal's colons are inside its brackets.
        let port_colon = match rest.iter().rposition(|&b| b == b':') {
            Some(colon) if !rest[colon..].contains(&b']') => Some(colon),
            _ => None,
        };
        let (host, port) = match port_colon {
            Some(colon) => (&rest[..colon], parse_port(&rest[colon + 1..])?),
            None => (rest, default_port),
        };
        let valid = !host.is_empty()
            && host.iter().all(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'[' | b']' | b':')
            });
        valid.then_some(Origin { https, host, port })
    }

    /// Whether `self`, an entry, admits `origin`.
    fn admits(&self, origin: &Origin<'_>) -> bool {
        if self.https != origin.https || self.port != origin.port {
            return false;
        }
        match self.host.strip_prefix(b"*") {
            // `*.example.com`: a name ending in `.example.com`, with a label before it.
            Some(suffix) => {
                origin.host.len() > suffix.len()
                    && origin.host[origin.host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            None => self.host.eq_ignore_ascii_case(origin.host),
        }
    }
}

/// A port as a browser writes it: 1–5 digits, 1–65535.
fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port = std::str::from_utf8(digits).ok()?.parse::<u16>().ok()?;
    (port > 0).then_some(port)
}

/// Checks an `allowed_origins` entry, saying what is wrong with it.
pub fn check_entry(entry: &str) -> Result<(), String> {
    let why = || {
        format!(
            "{entry:?} is not an origin: write scheme://host[:port] with http or https, \
             e.g. \"https://app.example.com\" or \"https://*.example.com\""
        )
    };
    let origin = Origin::parse(entry.as_bytes()).ok_or_else(why)?;
    let wildcard_ok = match origin.host.strip_prefix(b"*.") {
        Some(rest) => !rest.is_empty() && !rest.contains(&b'*'),
        None => !origin.host.contains(&b'*'),
    };
    if !wildcard_ok {
        return Err(format!(
            "{entry:?}: a wildcard may only be a whole first label, as in \"https://*.example.com\""
        ));
    }
    Ok(())
}

/// Whether a WebSocket handshake with these fields may go on: `allowed` is empty (any
/// origin), the request has no `Origin`, or its one `Origin` matches an entry.
/// Several `Origin` fields are refused: no browser sends two, and which one an
/// application reads is anyone's guess.
pub(crate) fn allows(allowed: &[String], fields: &Fields) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let mut values = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"origin"))
        .map(|f| f.value);
    let origin = match (values.next(), values.next()) {
        (None, _) => return true,
        (Some(value), None) => value,
        (Some(_), Some(_)) => return false,
    };
    if origin.contains(&b'*') {
        return false;
    }
    let Some(origin) = Origin::parse(origin) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|entry| Origin::parse(entry.as_bytes()))
        .any(|entry| entry.admits(&origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(entry: &str, origin: &str) -> bool {
        check_entry(entry).unwrap();
        let entry = Origin::parse(entry.as_bytes()).unwrap();
        Origin::parse(origin.as_bytes()).is_some_and(|o| entry.admits(&o))
    }

    #[test]
    fn origins_compare_as_browsers_serialise_them() {
        assert!(admits("https://app.example.com", "https://app.example.com"));
        assert!(admits("https://App.Example.COM", "HTTPS://app.example.com"));
        assert!(admits(
            "https://app.example.com:443",
            "https://app.example.com"
        ));
        assert!(admits("http://localhost:3000", "http://localhost:3000"));
        assert!(admits("http://[::1]:8080", "http://[::1]:8080"));
        assert!(!admits("https://app.example.com", "http://app.example.com"));
        assert!(!admits(
            "https://app.example.com",
            "https://app.example.com:8443"
        ));
        assert!(!admits(
            "https://app.example.com",
            "https://app.example.com.evil.test"
        ));
        assert!(!admits(
            "https://app.example.com",
            "https://evilapp.example.com"
        ));
        assert!(!admits("http://localhost:3000", "http://localhost"));
    }

    #[test]
    fn a_wildcard_admits_subdomains_only() {
        let entry = "https://*.example.com";
        assert!(admits(entry, "https://a.example.com"));
        assert!(admits(entry, "https://a.b.example.com"));
        assert!(!admits(entry, "https://example.com"));
        assert!(!admits(entry, "https://evilexample.com"));
        assert!(!admits(entry, "https://a.example.com.evil.test"));
        assert!(!admits(entry, "http://a.example.com"));
        assert!(admits(
            "https://*.example.com:8443",
            "https://a.example.com:8443"
        ));
    }

    #[test]
    fn entries_that_are_not_origins_are_refused_with_a_reason() {
        for bad in [
            "app.example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/chat",
            "wss://app.example.com",
            "null",
            "*",
            "https://app.example.com:0",
            "https://app.example.com:65536",
            "https://a.*.example.com",
            "https://*",
            "https://*example.com",
        ] {
            assert!(check_entry(bad).is_err(), "{bad}");
        }
        assert!(check_entry("https://*.example.com").is_ok());
    }
}
