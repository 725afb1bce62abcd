//! Properties over arbitrary inputs (proptest): split invariance, byte conservation in
//! tunnels, termination, and forward(parse(x)) stability.

mod common;
use common::*;
use proptest::prelude::*;
use proxy_core::request::RequestHead;
use proxy_core::sim::Sim;
use proxy_core::{ClientInfo, Config, Input, Side};
use std::time::Duration;

/// Cuts `bytes` at the given (unsorted, possibly repeated) positions.
fn cut<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for p in points {
        pieces.push(&bytes[start..p]);
        start = p;
    }
    pieces.push(&bytes[start..]);
    pieces
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,12}"
}

/// A valid request: method, path, extra fields, and a body framed by length or chunks.
fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
        "/[a-z0-9/._-]{0,20}",
        prop::collection::vec((token(), "[ -~]{0,20}"), 0..6),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..4),
        any::<bool>(),
    )
        .prop_map(|(method, path, fields, chunks, chunked)| {
            let mut head = format!("{method} {path} HTTP/1.1\r\nHost: example.com\r\n");
            for (name, value) in fields {
                let lower = name.to_ascii_lowercase();
                if [
                    "host",
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "upgrade",
                    "te",
                    "trailer",
                    "keep-alive",
                    "expect",
                    "via",
                ]
                .contains(&lower.as_str())
                    || lower.starts_with("x-forwarded")
                    || lower.starts_with("proxy-")
                {
                    continue;
                }
                head.push_str(&format!("{name}: {}\r\n", value.trim()));
            }
            let body: Vec<u8> = chunks.concat();
            let mut out;
            if chunked {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                out = head.into_bytes();
                for c in &chunks {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            } else {
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                out = head.into_bytes();
                out.extend_from_slice(&body);
            }
            out
        })
}

proptest! {

    /// The same request split anywhere gives the same result.
    #[test]
    fn any_split_of_a_request_gives_the_same_outcome(request in request(), points in prop::collection::vec(any::<usize>(), 0..12)) {
        let whole = client_pieces_outcome(&[&request], OK);
        let split = client_pieces_outcome(&cut(&request, &points), OK);
        prop_assert_eq!(&split, &whole);
        prop_assert!(whole.client.ends_with("hello"));
    }

    /// Whatever the bytes, the split does not change the decision either.
    #[test]
    fn any_split_of_arbitrary_bytes_gives_the_same_outcome(bytes in prop::collection::vec(any::<u8>(), 0..300), points in prop::collection::vec(any::<usize>(), 0..8)) {
        let whole = client_pieces_outcome(&[&bytes], OK);
        let split = client_pieces_outcome(&cut(&bytes, &points), OK);
        prop_assert_eq!(split, whole);
    }

    /// Tunnel bytes arrive complete and in order, whatever the read splits and
    /// whenever the writes are reported done.
    #[test]
    fn tunnel_conserves_bytes_under_any_write_completion_order(
        steps in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 1..64), 0usize..200, 0usize..200), 1..60)
    ) {
        let mut sim = tunnel(Config { buffer_size: 256, ..Config::default() });
        sim.set_auto_ack(false);
        let (mut sent_up, mut sent_down) = (Vec::new(), Vec::new());
        for (from_client, data, ack_up, ack_down) in steps {
            let side = if from_client { Side::Client } else { Side::Upstream };
            if sim.session().wants_read(side) {
                sim.client_or_upstream_sends(side, &data);
                if from_client { sent_up.extend_from_slice(&data) } else { sent_down.extend_from_slice(&data) }
            }
            sim.ack(Side::Upstream, ack_up);
            sim.ack(Side::Client, ack_down);
            // Flow control: never more than buffer_size + one read in flight.
            prop_assert!(sim.unacked(Side::Upstream) < 256 + 64);
            prop_assert!(sim.unacked(Side::Client) < 256 + 64);
        }
        prop_assert_eq!(sim.upstream_received(), &sent_up[..]);
        prop_assert_eq!(sim.client_received(), &sent_down[..]);
    }

    /// Every session terminates: whatever it was fed, with time running on it closes,
    /// asks for no more wake-ups and emits nothing after `Close`.
    #[test]
    fn every_session_terminates(
        events in prop::collection::vec((0u8..8, prop::collection::vec(any::<u8>(), 0..80), 0u64..100_000), 0..30)
    ) {
        let mut sim = Sim::new(Config::default());
        let mut deadlines_ok = true;
        for (kind, data, millis) in events {
            match kind {
                0 => sim.client_sends(&data),
                1 => sim.upstream_sends(&data),
                2 => if sim.has_pending_connect() { sim.expect_connect(); sim.upstream_connected(); },
                3 => if sim.has_pending_connect() { sim.expect_connect(); sim.upstream_fails(); },
                4 => sim.eof(if data.len() % 2 == 0 { Side::Client } else { Side::Upstream }),
                5 => sim.client_sends(&websocket_request()),
                6 => sim.upstream_sends(&websocket_101()),
                _ => sim.advance(Duration::from_millis(millis)),
            }
            if let Some(deadline) = sim.session().poll_timeout() {
                // After handle_timeout has run at `now`, nothing due is left pending.
                deadlines_ok &= deadline > sim.now() || sim.is_closed();
            }
        }
        sim.advance(Duration::from_secs(24 * 3600));
        prop_assert!(deadlines_ok);
        prop_assert!(sim.is_closed());
        prop_assert_eq!(sim.session().poll_timeout(), None);
        prop_assert_eq!(sim.outputs_after_close(), 0);
    }

    /// forward(parse(x)) is stable: forwarding a forwarded head changes nothing but the
    /// hops it appends (X-Forwarded-For and Via, turned off here).
    #[test]
    fn forward_of_parse_round_trips(request in request()) {
        let mut config = Config::default();
        config.forwarded.x_forwarded_for = false;
        config.forwarded.via = false;
        let config = config;
        let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = bytes::Bytes::copy_from_slice(&request[..end]);
        let client = ClientInfo::default();
        let once = RequestHead::parse(head, &config).expect("valid by construction").forward(&config, &client, b"upstream");
        let twice = RequestHead::parse(once.clone(), &config).expect("our output parses").forward(&config, &client, b"upstream");
        prop_assert_eq!(once, twice);
    }
}

/// Convenience for the properties above.
trait SendFrom {
    fn client_or_upstream_sends(&mut self, side: Side, data: &[u8]);
}

impl SendFrom for Sim {
    fn client_or_upstream_sends(&mut self, side: Side, data: &[u8]) {
        self.input(Input::Data(side, bytes::Bytes::copy_from_slice(data)));
    }
}

/// A message as frames: (fin, opcode, payload); fragmented messages may carry control
/// frames between their fragments.
fn ws_message() -> impl Strategy<Value = Vec<(bool, u8, Vec<u8>)>> {
    let payload = prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (prop_oneof![Just(1u8), Just(2u8)], payload.clone())
            .prop_map(|(op, p)| vec![(true, op, p)]),
        (
            payload.clone(),
            payload.clone(),
            prop::collection::vec(any::<u8>(), 0..7)
        )
            .prop_map(|(a, b, ping)| vec![(false, 2, a), (true, 9, ping), (true, 0, b)]),
        prop::collection::vec(any::<u8>(), 9..100).prop_map(|p| vec![(true, 10, p)]),
    ]
}

proptest! {
    /// With pings injected, each side receives exactly the other's frames, in order,
    /// plus only well-formed control frames from the proxy.
    #[test]
    fn websocket_frames_pass_through_exactly_with_pings_injected(
        steps in prop::collection::vec((any::<bool>(), ws_message(), prop::collection::vec(any::<usize>(), 0..4), 0u64..3000), 1..25)
    ) {
        let mut config = Config::default();
        config.websocket.ping_interval = Some(Duration::from_secs(1));
        config.websocket.pong_timeout = Duration::from_secs(3600);
        config.timeouts.tunnel_idle = Duration::from_secs(3600);
        let mut sim = websocket_tunnel(config);
        let (mut from_client, mut from_upstream) = (Vec::new(), Vec::new());
        for (client_sends, message, points, millis) in steps {
            let masked = client_sends;
            let mut bytes = Vec::new();
            for (fin, opcode, payload) in message {
                let frame = Frame { fin, opcode, masked, payload: payload.clone() };
                bytes.extend(encode_frame(fin, opcode, masked, &payload));
                if client_sends { from_client.push(frame) } else { from_upstream.push(frame) }
            }
            let side = if client_sends { Side::Client } else { Side::Upstream };
            for piece in cut(&bytes, &points) {
                sim.client_or_upstream_sends(side, piece);
                sim.advance(Duration::from_millis(millis / 4));
            }
        }
        let is_proxy_ping = |f: &Frame| f.opcode == 9 && f.payload.len() == 8;
        let at_upstream = decode_frames(sim.upstream_received());
        let at_client = decode_frames(sim.client_received());
        for frame in at_upstream.iter().chain(&at_client).filter(|f| is_proxy_ping(f)) {
            prop_assert!(frame.fin);
        }
        prop_assert!(at_upstream.iter().filter(|f| is_proxy_ping(f)).all(|f| f.masked));
        prop_assert!(at_client.iter().filter(|f| is_proxy_ping(f)).all(|f| !f.masked));
        let relayed_up: Vec<Frame> = at_upstream.into_iter().filter(|f| !is_proxy_ping(f)).collect();
        let relayed_down: Vec<Frame> = at_client.into_iter().filter(|f| !is_proxy_ping(f)).collect();
        prop_assert_eq!(relayed_up, from_client);
        prop_assert_eq!(relayed_down, from_upstream);
    }
}
