//! Invariant: upstream bytes split anywhere give the same outcome as in one piece, and the client gets nothing or well-formed responses: 1xx (never to HTTP/1.0), then one final head framing what follows it, or a solicited, verified 101 followed byte-exact by the upstream's bytes.
//!
//! Input: `header`, then `(header >> 2) & 0x0f` piece lengths (one byte each), then the
//! upstream's bytes. `header & 3` picks the request: a GET, a HEAD, a WebSocket
//! upgrade, or an HTTP/1.0 GET. Each run sends the request, connects, feeds the
//! upstream's bytes, snapshots, then the upstream sends EOF and it snapshots again.

use proxy_core::sim::Sim;
use proxy_core::upgrade::websocket_accept;
use proxy_core::{Config, Event, Side};

use crate::http::{check_body, decimal, parse_response, Framing, Parsed};
use crate::input::{piece_lengths, show, split, Reader};
use crate::tunnel::check_relay;

/// The WebSocket key of the upgrade request (RFC 6455 §1.3's example).
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The fixed request a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A kept-alive GET.
    Get,
    /// A HEAD: no response body may follow.
    Head,
    /// A WebSocket upgrade attempt.
    WebSocket,
    /// An HTTP/1.0 GET: no interim responses, no chunked coding.
    Http10,
}

impl Request {
    /// The request for a selector.
    pub fn from_selector(selector: u8) -> Request {
        match selector & 3 {
            0 => Request::Get,
            1 => Request::Head,
            2 => Request::WebSocket,
            _ => Request::Http10,
        }
    }

    /// Its bytes.
    pub fn bytes(self) -> Vec<u8> {
        match self {
            Request::Get => b"GET /r HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(),
            Request::Head => b"HEAD /r HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(),
            Request::WebSocket => format!(
                "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .into_bytes(),
            Request::Http10 => b"GET /r HTTP/1.0\r\nHost: example.com\r\n\r\n".to_vec(),
        }
    }
}

/// What can be seen of a run at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// What the client received.
    pub client: Vec<u8>,
    /// What the upstream received.
    pub upstream: Vec<u8>,
    /// Whether the session closed.
    pub closed: bool,
    /// `ShutdownWrite` outputs.
    pub shutdowns: Vec<Side>,
    /// `ReleaseUpstream` outputs.
    pub releases: Vec<bool>,
    /// Log events.
    pub events: Vec<Event>,
}

fn snapshot(sim: &Sim) -> Snapshot {
    Snapshot {
        client: sim.client_received().to_vec(),
        upstream: sim.upstream_received().to_vec(),
        closed: sim.is_closed(),
        shutdowns: sim.shutdowns().to_vec(),
        releases: sim.releases().to_vec(),
        events: sim.events().to_vec(),
    }
}

/// Before and after the upstream's EOF.
pub fn run(request: Request, pieces: &[&[u8]]) -> [Snapshot; 2] {
    let mut sim = Sim::new(Config::default());
    sim.client_sends(&request.bytes());
    sim.expect_connect();
    sim.upstream_connected();
    for piece in pieces {
        sim.upstream_sends(piece);
    }
    let before = snapshot(&sim);
    sim.eof(Side::Upstream);
    assert_eq!(sim.outputs_after_close(), 0, "outputs after Close");
    [before, snapshot(&sim)]
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut reader = Reader::new(data);
    let header = reader.u8();
    let request = Request::from_selector(header);
    let lengths = piece_lengths(&mut reader, usize::from((header >> 2) & 0x0f));
    let bytes = reader.rest();
    let whole = run(request, &[bytes]);
    let pieces = split(bytes, &lengths);
    let split_run = run(request, &pieces);
    for (stage, (w, s)) in ["before the upstream's EOF", "after it"]
        .iter()
        .zip(whole.iter().zip(&split_run))
    {
        // `ReleaseUpstream { reusable }` is decided at the response's end from the bytes
        // seen so far: bytes after it in the same read make the connection unusable,
        // the same bytes in a later read arrive after the release (the runtime's pool
        // drops a connection that became readable while idle). So a split run may
        // release as reusable where the whole run did not; never the reverse.
        let releases_agree = w.releases.len() == s.releases.len()
            && w.releases
                .iter()
                .zip(&s.releases)
                .all(|(whole, split)| !whole || *split);
        let unreleased = |x: &Snapshot| Snapshot {
            releases: Vec::new(),
            ..x.clone()
        };
        assert!(
            unreleased(w) == unreleased(s) && releases_agree,
            "split invariance broken {stage} for {request:?} and upstream bytes {}\n pieces: {:?}\n whole: {}\n split: {}",
            show(bytes),
            pieces.iter().map(|p| show(p)).collect::<Vec<_>>(),
            describe(w),
            describe(s)
        );
    }
    let [before, after] = whole;
    assert!(after.client.starts_with(&before.client));
    check_client_stream(request, &before.client, bytes, !before.closed);
    let upstream_eof_ends_body = check_client_stream(request, &after.client, bytes, false);
    if upstream_eof_ends_body {
        assert!(
            after.closed || after.shutdowns.contains(&Side::Client),
            "a close-delimited body ended at the upstream's EOF but the client was not told: {}",
            describe(&after)
        );
    }
}

fn describe(s: &Snapshot) -> String {
    format!(
        "client got {} | upstream got {} | closed {} | shutdowns {:?} | releases {:?} | events {:?}",
        show(&s.client),
        show(&s.upstream),
        s.closed,
        s.shutdowns,
        s.releases,
        s.events
    )
}

/// Checks what the client received (`require_complete`: the session is open and
/// the upstream has not closed, so an open tunnel must have forwarded everything);
/// returns whether its final response is
/// close-delimited (so only a close can end it).
pub fn check_client_stream(
    request: Request,
    client: &[u8],
    upstream_sent: &[u8],
    require_complete: bool,
) -> bool {
    let mut rest = client;
    while !rest.is_empty() {
        let head = match parse_response(rest) {
            Parsed::Complete(head) => head,
            other => panic!(
                "the client got bytes that are not a response ({other:?}): {}",
                show(client)
            ),
        };
        let say = |what: &str| format!("{what}, client got: {}", show(client));
        let status = head.status.unwrap_or_default();
        if status == 101 {
            assert_eq!(
                request,
                Request::WebSocket,
                "{}",
                say("a 101 reached a client that did not ask to upgrade")
            );
            assert_eq!(
                head.list("upgrade"),
                ["websocket"],
                "{}",
                say("a 101 for another protocol was accepted")
            );
            assert!(
                head.list("connection").contains(&"upgrade".to_owned()),
                "{}",
                say("a 101 without Connection: upgrade")
            );
            let accept = websocket_accept(WS_KEY);
            assert_eq!(
                head.single("sec-websocket-accept"),
                Some(accept.as_bytes()),
                "{}",
                say("a 101 with a wrong Sec-WebSocket-Accept was accepted")
            );
            // The request offers neither (RFC 6455 §4.1).
            for name in ["sec-websocket-protocol", "sec-websocket-extensions"] {
                assert!(
                    head.list(name).is_empty(),
                    "{}",
                    say("a 101 choosing a subprotocol or extension not offered was accepted")
                );
            }
            // After the 101 head (byte-exact), the client gets the upstream's frames as
            // the WebSocket relay rules allow, all of them while the tunnel is open.
            let head_101 = &rest[..head.len];
            let Some(at) = upstream_sent
                .windows(head_101.len())
                .position(|w| w == head_101)
            else {
                panic!("{}", say("the 101 head was not forwarded byte-exact"))
            };
            let original = &upstream_sent[at + head_101.len()..];
            match check_relay(original, &rest[head.len..], true, false) {
                Ok(relay) => assert!(
                    relay.complete || relay.proxy_close || !require_complete,
                    "{}",
                    say(&format!(
                        "an open tunnel held back some of the upstream's bytes {}",
                        show(original)
                    ))
                ),
                Err(e) => panic!("{}", say(&e)),
            }
            return false;
        }
        assert_eq!(
            head.version,
            1,
            "{}",
            say("a response head not in HTTP/1.1")
        );
        for name in ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
            assert_eq!(
                head.count(name),
                0,
                "{}",
                say(&format!("the hop-by-hop field {name} reached the client"))
            );
        }
        if (100..200).contains(&status) {
            assert_ne!(
                request,
                Request::Http10,
                "{}",
                say("an interim response reached an HTTP/1.0 client")
            );
            assert_eq!(
                head.count("connection"),
                0,
                "{}",
                say("an interim response with Connection")
            );
            rest = &rest[head.len..];
            continue;
        }
        let connection = head.list("connection");
        assert!(
            connection.len() <= 1,
            "{}",
            say("several Connection options")
        );
        assert!(
            connection.iter().all(|c| c == "close" || c == "keep-alive"),
            "{}",
            say("a Connection option that is not the proxy's own")
        );
        let close = connection.contains(&"close".to_owned());
        let codings = head.list("transfer-encoding");
        let lengths = head.count("content-length");
        assert!(lengths <= 1, "{}", say("several Content-Length fields"));
        assert!(
            status != 204 || lengths == 0,
            "{}",
            say("a Content-Length in a 204 (RFC 9110 §8.6)")
        );
        assert!(
            codings.is_empty() || lengths == 0,
            "{}",
            say("both Content-Length and Transfer-Encoding (RFC 9112 §6.2)")
        );
        if request == Request::Http10 {
            assert!(
                codings.is_empty(),
                "{}",
                say("Transfer-Encoding reached an HTTP/1.0 client")
            );
        }
        let framing = if request == Request::Head || status == 204 || status == 304 {
            Framing::None
        } else if !codings.is_empty() {
            assert!(
                codings.iter().filter(|c| *c == "chunked").count() <= 1,
                "{}",
                say("chunked applied twice")
            );
            // RFC 9112 §6.3 rule 4: a response whose final coding is not chunked is
            // delimited by the close.
            if codings.last().map(String::as_str) == Some("chunked") {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else if let Some(value) = head.single("content-length") {
            match decimal(value) {
                Some(0) => Framing::None,
                Some(n) => Framing::Length(n),
                None => panic!("{}", say("a Content-Length that is not a number")),
            }
        } else {
            Framing::UntilClose
        };
        if framing == Framing::UntilClose {
            let keep_alive = connection.contains(&"keep-alive".to_owned());
            assert!(
                close || (request == Request::Http10 && !keep_alive),
                "{}",
                say("a close-delimited response that does not say the connection closes")
            );
        }
        check_body("client", framing, &rest[head.len..]);
        return framing == Framing::UntilClose;
    }
    false
}
