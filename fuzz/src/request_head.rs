//! Invariant: client bytes split anywhere give the same outcome as in one piece, and each upstream connection gets exactly one well-formed, unambiguously framed request with no hop-by-hop field but `Connection: Upgrade`/`Upgrade` on upgrades.
//!
//! Input: `header`, then `header & 0x0f` piece lengths (one byte each), then the client
//! bytes. `header & 0x10` selects small limits (512-byte heads, 16 fields, 128-byte
//! targets) so that size limits are reached with short inputs.
//!
//! Each run feeds the client bytes to a [`Sim`], then, for up to four exchanges,
//! connects the upstream, records what it received, and answers `200` with a 2-byte
//! body (so pipelined requests proceed); finally the client sends EOF.

use proxy_core::sim::Sim;
use proxy_core::{Config, Event, Side};

use crate::http::{
    check_body, decimal, parse_request, parse_response, Framing, Head, Parsed, HOP_BY_HOP,
    PROTECTED,
};
use crate::input::{piece_lengths, show, split, Reader};

/// The upstream's answer to every request.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Everything observable about one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What each upstream connection received, in order.
    pub upstream: Vec<Vec<u8>>,
    /// What the client received.
    pub client: Vec<u8>,
    /// Whether the session had closed before the client's EOF.
    pub closed: bool,
    /// Whether it closed after the client's EOF.
    pub closed_after_eof: bool,
    /// `ShutdownWrite` outputs.
    pub shutdowns: Vec<Side>,
    /// `ReleaseUpstream` outputs.
    pub releases: Vec<bool>,
    /// Log events.
    pub events: Vec<Event>,
}

/// The configuration a run uses.
pub fn config(small_limits: bool) -> Config {
    let mut config = Config::default();
    if small_limits {
        config.limits.max_head_size = 512;
        config.limits.max_headers = 16;
        config.limits.max_target_len = 128;
    }
    config
}

/// Feeds `pieces` in order and plays the upstream.
pub fn run(config: &Config, pieces: &[&[u8]]) -> Outcome {
    let mut sim = Sim::new(config.clone());
    for piece in pieces {
        sim.client_sends(piece);
    }
    let mut upstream = Vec::new();
    for _ in 0..4 {
        if !sim.has_pending_connect() {
            break;
        }
        sim.expect_connect();
        sim.upstream_connected();
        upstream.push(sim.take_upstream_received());
        sim.upstream_sends(RESPONSE);
    }
    let closed = sim.is_closed();
    sim.eof(Side::Client);
    assert_eq!(sim.outputs_after_close(), 0, "outputs after Close");
    Outcome {
        upstream,
        client: sim.client_received().to_vec(),
        closed,
        closed_after_eof: sim.is_closed(),
        shutdowns: sim.shutdowns().to_vec(),
        releases: sim.releases().to_vec(),
        events: sim.events().to_vec(),
    }
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut reader = Reader::new(data);
    let header = reader.u8();
    let lengths = piece_lengths(&mut reader, usize::from(header & 0x0f));
    let bytes = reader.rest();
    let config = config(header & 0x10 != 0);

    let whole = run(&config, &[bytes]);
    let pieces = split(bytes, &lengths);
    let split_run = run(&config, &pieces);
    assert_same(&whole, &split_run, bytes, &pieces);

    let client_head = match parse_request(bytes) {
        Parsed::Complete(head) => Some(head),
        _ => None,
    };
    for (i, received) in whole.upstream.iter().enumerate() {
        check_forwarded_request(received, if i == 0 { client_head.as_ref() } else { None });
    }
    if !whole.client.is_empty() {
        assert!(
            matches!(parse_response(&whole.client), Parsed::Complete(_)),
            "the client got bytes that are not a response: {}",
            show(&whole.client)
        );
    }
}

fn assert_same(whole: &Outcome, split: &Outcome, bytes: &[u8], pieces: &[&[u8]]) {
    if whole == split {
        return;
    }
    let pieces: Vec<String> = pieces.iter().map(|p| show(p)).collect();
    let mut diff = String::new();
    if whole.upstream != split.upstream {
        let show_all = |v: &[Vec<u8>]| v.iter().map(|s| show(s)).collect::<Vec<_>>();
        diff += &format!(
            "\n upstream got (whole): {:?}\n upstream got (split): {:?}",
            show_all(&whole.upstream),
            show_all(&split.upstream)
        );
    }
    if whole.client != split.client {
        diff += &format!(
            "\n client got (whole): {}\n client got (split): {}",
            show(&whole.client),
            show(&split.client)
        );
    }
    if (whole.closed, whole.closed_after_eof) != (split.closed, split.closed_after_eof) {
        diff += &format!(
            "\n closed (whole): {}/{}  closed (split): {}/{}",
            whole.closed, whole.closed_after_eof, split.closed, split.closed_after_eof
        );
    }
    if whole.events != split.events {
        diff += &format!(
            "\n events (whole): {:?}\n events (split): {:?}",
            whole.events, split.events
        );
    }
    if (&whole.shutdowns, &whole.releases) != (&split.shutdowns, &split.releases) {
        diff += &format!(
            "\n shutdowns/releases (whole): {:?}/{:?}  (split): {:?}/{:?}",
            whole.shutdowns, whole.releases, split.shutdowns, split.releases
        );
    }
    panic!(
        "split invariance broken for client bytes {}\n pieces: {:?}{diff}",
        show(bytes),
        pieces
    );
}

/// One upstream connection's bytes: exactly one complete HTTP/1.1 request head, then
/// a body that its framing delimits, then nothing. No hop-by-hop field crosses except
/// `Upgrade` with `Connection: Upgrade` (an upgrade attempt) and `Transfer-Encoding`
/// ending in `chunked` (the proxy re-frames the body); nothing the client named in
/// `Connection` crosses unless protected; one `Host`; the proxy's own `X-Forwarded-*`.
pub fn check_forwarded_request(received: &[u8], client: Option<&Head>) {
    let head = match parse_request(received) {
        Parsed::Complete(head) => head,
        other => panic!(
            "upstream got no complete request head ({other:?}): {}",
            show(received)
        ),
    };
    let say = |what: &str| format!("upstream head {what}: {}", show(&received[..head.len]));
    assert_eq!(head.version, 1, "{}", say("is not HTTP/1.1"));
    let target = head.target.as_deref().unwrap_or_default();
    assert!(
        target.starts_with('/') || target == "*",
        "{}",
        say("has a target not in origin-form")
    );
    assert_eq!(
        head.count("host"),
        1,
        "{}",
        say("does not have exactly one Host")
    );

    let upgrade = head.count("upgrade") > 0;
    let connection: Vec<&[u8]> = head.values("connection").collect();
    if upgrade {
        assert_eq!(
            connection,
            [&b"Upgrade"[..]],
            "{}",
            say("has Upgrade without exactly `Connection: Upgrade`")
        );
    } else {
        assert!(
            connection.is_empty(),
            "{}",
            say("has Connection without Upgrade")
        );
    }
    for name in ["keep-alive", "proxy-connection", "te", "trailer"] {
        assert_eq!(
            head.count(name),
            0,
            "{}",
            say(&format!("forwards the hop-by-hop field {name}"))
        );
    }

    // Behind CGI, WSGI, Rack or PHP, `_` reads as `-`: such a name would pass there
    // for a framing field, or for the proxy's own `X-Forwarded-*`.
    for (name, _) in &head.fields {
        let read_as = name.replace('_', "-").to_ascii_lowercase();
        let governed =
            HOP_BY_HOP.contains(&read_as.as_str()) || PROTECTED.contains(&read_as.as_str());
        assert!(
            !name.contains('_') || !governed,
            "{}",
            say(&format!(
                "forwards {name}, which reads as {read_as} behind CGI"
            ))
        );
    }

    let codings = head.list("transfer-encoding");
    let lengths = head.count("content-length");
    assert!(lengths <= 1, "{}", say("has several Content-Length fields"));
    assert!(
        codings.is_empty() || lengths == 0,
        "{}",
        say("has both Content-Length and Transfer-Encoding")
    );
    let framing = if !codings.is_empty() {
        assert_eq!(
            codings.last().map(String::as_str),
            Some("chunked"),
            "{}",
            say("has a final coding other than chunked")
        );
        assert_eq!(
            codings.iter().filter(|c| *c == "chunked").count(),
            1,
            "{}",
            say("has chunked twice")
        );
        Framing::Chunked
    } else if let Some(value) = head.single("content-length") {
        match decimal(value) {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => panic!("{}", say("has a Content-Length that is not a number")),
        }
    } else {
        Framing::None
    };

    assert_eq!(
        head.values("x-forwarded-proto").collect::<Vec<_>>(),
        [&b"http"[..]],
        "{}",
        say("has a wrong X-Forwarded-Proto")
    );
    let xff: Vec<&[u8]> = head.values("x-forwarded-for").collect();
    assert!(
        xff.len() == 1 && xff[0].ends_with(b"192.0.2.1"),
        "{}",
        say("has a wrong X-Forwarded-For")
    );

    if let Some(client) = client {
        assert_eq!(
            head.method,
            client.method,
            "{}",
            say("has another method than the client's")
        );
        for option in client.list("connection") {
            let structural =
                ["connection", "upgrade", "transfer-encoding"].contains(&option.as_str());
            if structural || PROTECTED.contains(&option.as_str()) {
                continue;
            }
            if option == "via" {
                // The client's `Via` is dropped; the proxy adds its own (RFC 9110 §7.6.3).
                assert_eq!(
                    head.values("via").collect::<Vec<_>>(),
                    [&b"1.1 switchyard"[..]],
                    "{}",
                    say("forwards the client's Via, which its Connection named")
                );
                continue;
            }
            assert_eq!(
                head.count(&option),
                0,
                "{}",
                say(&format!(
                    "forwards {option}, which the client's Connection named"
                ))
            );
        }
    }
    check_body("upstream", framing, &received[head.len..]);
}
