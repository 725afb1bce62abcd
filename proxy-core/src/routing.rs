//! Routes: which upstream group serves a request, by `Host` and path prefix.
//!
//! Specificity decides, not order: an exact host beats a wildcard (`*.example.com`,
//! longer suffixes first), which beats a route for any host; then the longest path
//! prefix wins; equal routes go by their order in the file. A prefix matches at a
//! path-segment boundary only (`/api` matches `/api`, `/api/x`, `/api?q`, not `/apix`).

use crate::config::{Config, Route};

/// The route chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routed<'c> {
    /// The upstream group's name.
    pub group: &'c str,
    /// Bytes to strip from the front of the path (`strip_prefix`), else 0.
    pub strip: usize,
    /// The route's own `max_request_body`, if it has one.
    pub max_request_body: Option<u64>,
    /// The route's own `allowed_origins`, if it has them.
    pub allowed_origins: Option<&'c [String]>,
}

/// Picks the route for a request to `host` (the `Host` value or the absolute-form
/// authority, port allowed) and `target` (origin-form). With no routes configured,
/// everything goes to `default`; with routes and no match, `None` (a 404).
pub fn route<'c>(config: &'c Config, host: Option<&[u8]>, target: &[u8]) -> Option<Routed<'c>> {
    if config.routes.is_empty() {
        return Some(Routed {
            group: "default",
            strip: 0,
            max_request_body: None,
            allowed_origins: None,
        });
    }
    let host = host.map(host_name);
    let mut best: Option<((u8, usize, usize), &Route)> = None;
    for route in &config.routes {
        let Some(host_rank) = host_rank(route.host.as_deref(), host) else {
            continue;
        };
        if !prefix_matches(route.path_prefix.as_bytes(), target) {
            continue;
        }
        let rank = (host_rank.0, host_rank.1, route.path_prefix.len());
        if best.is_none_or(|(b, _)| rank > b) {
            best = Some((rank, route));
        }
    }
    best.map(|(_, route)| Routed {
        group: &route.upstream,
        strip: if route.strip_prefix {
            route.path_prefix.trim_end_matches('/').len()
        } else {
            0
        },
        max_request_body: route.max_request_body,
        allowed_origins: route.allowed_origins.as_deref(),
    })
}

/// The host without its port or a trailing dot.
pub(crate) fn host_name(authority: &[u8]) -> &[u8] {
    let host = match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if !authority[colon..].contains(&b']') => &authority[..colon],
        _ => authority,
    };
    host.strip_suffix(b".").unwrap_or(host)
}

/// `Some((kind, suffix length))` when the route's host pattern matches: 2 exact, 1
/// wildcard, 0 any host.
fn host_rank(pattern: Option<&str>, host: Option<&[u8]>) -> Option<(u8, usize)> {
    let Some(pattern) = pattern else {
        return Some((0, 0));
    };
    let host = host?;
    if let Some(suffix) = pattern.strip_prefix("*.") {
        let suffix = suffix.as_bytes();
        let matches = host.len() > suffix.len() + 1
            && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            && host[host.len() - suffix.len() - 1] == b'.';
        return matches.then_some((1, suffix.len()));
    }
    host.eq_ignore_ascii_case(pattern.as_bytes())
        .then_some((2, pattern.len()))
}

/// Whether the path of `target` (origin-form, before any `?`) has a `.` or `..`
/// segment, spelled plainly or percent-encoded (`%2e`). RFC 3986 §5.2.4 removes them
/// when a reference is resolved, so a client never needs to send one; a server behind
/// the proxy that resolves them would serve another path than the one routed on
/// (`/public/../admin`). Where routes decide by path, such a request is refused.
/// Segments end at `/` and also at what some servers read as one: `\` (IIS, and any
/// Windows file server) and their percent-encoded forms (`%2f`, `%5c`), which servers
/// that decode before resolving turn into separators (`/public/..%2fadmin`).
pub fn has_dot_segment(target: &[u8]) -> bool {
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let mut rest = path;
    loop {
        let (dots, after) = leading_dots(rest);
        if matches!(dots, 1 | 2) && (after.is_empty() || separator_len(after) > 0) {
            return true;
        }
        // On to the next segment, past the next separator.
        let next = (0..rest.len()).find_map(|i| match separator_len(&rest[i..]) {
            0 => None,
            n => Some(i + n),
        });
        let Some(next) = next else {
            return false;
        };
        rest = &rest[next..];
    }
}

/// How many dots (`.` or `%2e`) `segment` starts with, and what follows them.
fn leading_dots(mut segment: &[u8]) -> (usize, &[u8]) {
    let mut dots = 0;
    loop {
        match segment {
            [b'.', tail @ ..] | [b'%', b'2', b'e' | b'E', tail @ ..] => segment = tail,
            _ => return (dots, segment),
        }
        dots += 1;
    }
}

/// The length of the path separator `path` starts with (`/`, `\`, `%2f`, `%5c`), or 0.
fn separator_len(path: &[u8]) -> usize {
    match path {
        [b'/' | b'\\', ..] => 1,
        [b'%', b'2', b'f' | b'F', ..] | [b'%', b'5', b'c' | b'C', ..] => 3,
        _ => 0,
    }
}

fn prefix_matches(prefix: &[u8], target: &[u8]) -> bool {
    if !target.starts_with(prefix) {
        return false;
    }
    prefix.ends_with(b"/") || matches!(target.get(prefix.len()), None | Some(b'/' | b'?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(routes: &[(Option<&str>, &str, &str, bool)]) -> Config {
        Config {
            routes: routes
                .iter()
                .map(|&(host, prefix, upstream, strip)| Route {
                    host: host.map(Into::into),
                    path_prefix: prefix.into(),
                    upstream: upstream.into(),
                    strip_prefix: strip,
                    ..Route::default()
                })
                .collect(),
            ..Config::default()
        }
    }

    fn group<'c>(c: &'c Config, host: &str, path: &str) -> Option<&'c str> {
        route(c, Some(host.as_bytes()), path.as_bytes()).map(|r| r.group)
    }

    #[test]
    fn longest_prefix_wins_at_segment_boundaries() {
        let c = config(&[
            (None, "/", "web", false),
            (None, "/api", "api", false),
            (None, "/api/v2", "v2", false),
        ]);
        assert_eq!(group(&c, "a", "/"), Some("web"));
        assert_eq!(group(&c, "a", "/api"), Some("api"));
        assert_eq!(group(&c, "a", "/api?x=1"), Some("api"));
        assert_eq!(group(&c, "a", "/api/v2/users"), Some("v2"));
        assert_eq!(group(&c, "a", "/apix"), Some("web"));
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any_host() {
        let c = config(&[
            (None, "/", "any", false),
            (Some("*.example.com"), "/", "wild", false),
            (Some("api.example.com"), "/", "exact", false),
        ]);
        assert_eq!(group(&c, "API.Example.com:8443", "/"), Some("exact"));
        assert_eq!(group(&c, "ws.example.com", "/"), Some("wild"));
        assert_eq!(
            group(&c, "example.com", "/"),
            Some("any"),
            "a wildcard needs a subdomain"
        );
        assert_eq!(group(&c, "other.org", "/"), Some("any"));
    }

    #[test]
    fn no_matching_route_is_none() {
        let c = config(&[(Some("example.com"), "/", "web", false)]);
        assert_eq!(group(&c, "other.org", "/"), None);
    }

    #[test]
    fn dot_segments_are_found_plain_or_percent_encoded() {
        for target in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/.%2E/admin",
            "/a/./b",
            "/a/%2E",
            "/..",
            "/a/..?x",
            "/public\\..\\admin",
            "/public/..\\admin",
            "/public/..%2fadmin",
            "/public/%2e%2e%5Cadmin",
            "/public%2f..%2Fadmin",
        ] {
            assert!(has_dot_segment(target.as_bytes()), "{target}");
        }
        for target in [
            "/",
            "/a/b",
            "/.well-known/x",
            "/a/...",
            "/a..b/",
            "/a?x=/../",
            "/%2e%2e%2e",
            "/a\\b",
            "/a..%2fb",
            "/...\\",
        ] {
            assert!(!has_dot_segment(target.as_bytes()), "{target}");
        }
    }

    #[test]
    fn strip_prefix_removes_the_prefix_without_its_trailing_slash() {
        let c = config(&[(None, "/api/", "api", true)]);
        assert_eq!(route(&c, None, b"/api/x").map(|r| r.strip), Some(4));
    }
}
