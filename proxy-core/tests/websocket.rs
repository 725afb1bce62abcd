//! WebSocket-aware tunnels: proxy pings, real close codes, graceful drain (RFC 6455).

mod common;
use common::*;
use proxy_core::timer::Timer;
use proxy_core::{Config, Event, Input, Side, TunnelEnd};
use std::time::Duration;

const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const CLOSE: u8 = 0x8;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn with_pings() -> Config {
    let mut config = Config::default();
    config.websocket.ping_interval = Some(secs(20));
    config.websocket.pong_timeout = secs(5);
    config
}

fn tunnel_end(sim: &proxy_core::sim::Sim) -> Option<TunnelEnd> {
    sim.events().iter().find_map(|e| match e {
        Event::Tunnel(t) => Some(t.end),
        _ => None,
    })
}

#[test]
fn pings_go_to_a_silent_peer_masked_towards_the_upstream_only() {
    let mut sim = websocket_tunnel(with_pings());
    sim.advance(secs(20));
    let to_client = decode_frames(sim.client_received());
    let to_upstream = decode_frames(sim.upstream_received());
    assert_eq!(to_client.len(), 1);
    assert_eq!((to_client[0].opcode, to_client[0].masked), (PING, false));
    assert_eq!(to_upstream.len(), 1);
    assert_eq!((to_upstream[0].opcode, to_upstream[0].masked), (PING, true));
}

fn without_pings() -> Config {
    let mut config = Config::default();
    config.websocket.ping_interval = None;
    config
}

#[test]
fn by_default_a_peer_silent_for_30s_is_pinged() {
    let mut sim = websocket_tunnel(Config::default());
    sim.advance(secs(29));
    assert!(sim.client_received().is_empty() && sim.upstream_received().is_empty());
    sim.advance(secs(1));
    for frames in [sim.client_received(), sim.upstream_received()] {
        let frames = decode_frames(frames);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].opcode, PING);
    }
}

#[test]
fn no_pings_when_switched_off() {
    let mut sim = websocket_tunnel(without_pings());
    sim.advance(secs(59));
    assert!(sim.client_received().is_empty() && sim.upstream_received().is_empty());
}

#[test]
fn the_pong_answering_the_proxys_ping_is_consumed() {
    let mut sim = websocket_tunnel(with_pings());
    sim.advance(secs(20));
    let ping = decode_frames(&sim.take_client_received()).remove(0);
    sim.take_upstream_received();
    sim.client_sends(&encode_frame(true, PONG, true, &ping.payload));
    assert!(
        sim.upstream_received().is_empty(),
        "the proxy's own Pong is not forwarded"
    );
}

#[test]
fn an_unsolicited_pong_is_forwarded() {
    let mut sim = websocket_tunnel(with_pings());
    let pong = encode_frame(true, PONG, true, b"mine");
    sim.client_sends(&pong);
    assert_eq!(sim.upstream_received(), &pong[..]);
}

#[test]
fn a_peer_ping_and_its_pong_pass_through() {
    let mut sim = websocket_tunnel(Config::default());
    let ping = encode_frame(true, PING, true, b"p");
    sim.client_sends(&ping);
    assert_eq!(sim.upstream_received(), &ping[..]);
    let pong = encode_frame(true, PONG, false, b"p");
    sim.upstream_sends(&pong);
    assert_eq!(sim.client_received(), &pong[..]);
}

#[test]
fn a_ping_waits_for_the_frame_boundary_of_a_large_fragmented_message() {
    let mut sim = websocket_tunnel(with_pings());
    // The upstream starts a fragmented message, and stalls inside its second frame.
    let first = encode_frame(false, 0x2, false, &[1; 1000]);
    let second = encode_frame(false, 0x0, false, &[2; 70_000]);
    let last = encode_frame(true, 0x0, false, &[3; 10]);
    sim.upstream_sends(&first);
    sim.upstream_sends(&second[..30_000]);
    sim.advance(secs(20)); // the client has been silent: it is due a Ping
    assert_eq!(
        sim.client_received().len(),
        first.len() + 30_000,
        "nothing inserted inside a frame"
    );
    sim.advance(secs(2));
    sim.upstream_sends(&second[30_000..]);
    sim.upstream_sends(&last);
    let frames = decode_frames(sim.client_received());
    let opcodes: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(
        opcodes,
        [0x2, 0x0, PING, 0x0],
        "the ping waited for the end of the frame in flight"
    );
    assert_eq!(frames[1].payload.len(), 70_000);
}

#[test]
fn a_ping_is_held_while_a_frame_is_in_flight_and_sent_at_its_end() {
    let mut sim = websocket_tunnel(with_pings());
    let big = encode_frame(true, 0x2, false, &[9; 50_000]);
    sim.upstream_sends(&big[..100]);
    sim.advance(secs(20));
    assert_eq!(sim.client_received(), &big[..100]);
    sim.upstream_sends(&big[100..]);
    let frames = decode_frames(sim.client_received());
    assert_eq!(
        frames.iter().map(|f| f.opcode).collect::<Vec<_>>(),
        [0x2, PING]
    );
    assert_eq!(frames[0].payload.len(), 50_000);
}

#[test]
fn an_upstream_that_never_pongs_is_dead_and_the_client_gets_1011() {
    let mut sim = websocket_tunnel(with_pings());
    sim.advance(secs(20));
    let ping = decode_frames(&sim.take_client_received()).remove(0);
    sim.client_sends(&encode_frame(true, PONG, true, &ping.payload)); // the client is alive
    sim.advance(secs(5));
    let frames = decode_frames(sim.client_received());
    assert_eq!(frames.last().and_then(Frame::close_code), Some(1011));
    assert_eq!(sim.session().next_timer().map(|(_, t)| t), Some(Timer::Fin));
    sim.client_sends(&encode_frame(true, CLOSE, true, &1011u16.to_be_bytes()));
    assert!(sim.is_closed(), "closed once the client answered the Close");
    assert_eq!(
        tunnel_end(&sim),
        Some(TunnelEnd::PingTimeout(Side::Upstream))
    );
}

#[test]
fn a_client_that_never_pongs_is_gone_and_the_upstream_gets_1001() {
    let mut sim = websocket_tunnel(with_pings());
    sim.advance(secs(20));
    let ping = decode_frames(&sim.take_upstream_received()).remove(0);
    sim.upstream_sends(&encode_frame(true, PONG, false, &ping.payload));
    sim.advance(secs(5));
    let frames = decode_frames(sim.upstream_received());
    let close = frames.last().unwrap();
    assert_eq!((close.close_code(), close.masked), (Some(1001), true));
    assert_eq!(&close.payload[2..], b"client not responding");
    assert!(
        !decode_frames(sim.client_received())
            .iter()
            .any(|f| f.opcode == CLOSE),
        "the dead side gets nothing"
    );
    sim.advance(secs(30));
    assert!(sim.is_closed(), "closed at fin_timeout without an answer");
}

#[test]
fn pings_keep_a_silent_connection_alive_past_the_idle_timeout() {
    for (config, step) in [(with_pings(), 20), (Config::default(), 10)] {
        keeps_alive_answering_pings(config, step);
    }
}

/// Answers every Ping for 10 steps of `step` seconds (200 s at least), with no
/// application data.
fn keeps_alive_answering_pings(config: Config, step: u64) {
    let mut sim = websocket_tunnel(config);
    for _ in 0..(200 / step).max(10) {
        sim.advance(secs(step));
        for (side, frames) in [
            (Side::Client, sim.take_client_received()),
            (Side::Upstream, sim.take_upstream_received()),
        ] {
            for ping in decode_frames(&frames)
                .into_iter()
                .filter(|f| f.opcode == PING)
            {
                let pong = encode_frame(true, PONG, side == Side::Client, &ping.payload);
                sim.input(Input::Data(side, pong.into()));
            }
        }
    }
    assert!(
        !sim.is_closed(),
        "200 s with no application data, idle timeout 60 s"
    );
}

#[test]
fn idle_timeout_sends_close_1001_idle_timeout_to_both_sides() {
    let mut sim = websocket_tunnel(without_pings());
    sim.advance(secs(60));
    let to_client = decode_frames(sim.client_received());
    let to_upstream = decode_frames(sim.upstream_received());
    assert_eq!(to_client.last().and_then(Frame::close_code), Some(1001));
    assert_eq!(&to_client.last().unwrap().payload[2..], b"idle timeout");
    assert_eq!(to_upstream.last().and_then(Frame::close_code), Some(1001));
    assert!(!sim.is_closed(), "waits for the Close replies");
    sim.client_sends(&encode_frame(true, CLOSE, true, &1001u16.to_be_bytes()));
    sim.upstream_sends(&encode_frame(true, CLOSE, false, &1001u16.to_be_bytes()));
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::IdleTimeout));
    assert!(
        decode_frames(sim.client_received())
            .iter()
            .filter(|f| f.opcode == CLOSE)
            .count()
            == 1,
        "replies not relayed"
    );
}

#[test]
fn drain_sends_close_1001_going_away() {
    let mut sim = websocket_tunnel(Config::default());
    let deadline = sim.now() + secs(30);
    sim.input(Input::Drain { deadline });
    let close = decode_frames(sim.client_received()).pop().unwrap();
    assert_eq!(close.close_code(), Some(1001));
    assert_eq!(&close.payload[2..], b"going away");
    sim.advance(secs(30));
    assert!(sim.is_closed(), "the deadline holds even without replies");
}

#[test]
fn upstream_vanishing_without_a_close_gives_the_client_1014() {
    let mut sim = websocket_tunnel(Config::default());
    sim.upstream_sends(&server_frame(b"last words"));
    sim.eof(Side::Upstream);
    let frames = decode_frames(sim.client_received());
    assert_eq!(frames[0].payload, b"last words");
    assert_eq!(frames.last().and_then(Frame::close_code), Some(1014));
    sim.client_sends(&encode_frame(true, CLOSE, true, &1014u16.to_be_bytes()));
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::PeerGone(Side::Upstream)));
}

#[test]
fn upstream_reset_gives_the_client_1014() {
    let mut sim = websocket_tunnel(Config::default());
    sim.reset(Side::Upstream);
    assert_eq!(
        decode_frames(sim.client_received())
            .last()
            .and_then(Frame::close_code),
        Some(1014)
    );
}

#[test]
fn a_peer_close_is_forwarded_untouched_and_the_handshake_passes_through() {
    let mut sim = websocket_tunnel(Config::default());
    let close = encode_frame(
        true,
        CLOSE,
        true,
        &[&4000u16.to_be_bytes()[..], b"bye"].concat(),
    );
    sim.client_sends(&close);
    assert_eq!(sim.upstream_received(), &close[..]);
    let reply = encode_frame(
        true,
        CLOSE,
        false,
        &[&4000u16.to_be_bytes()[..], b"bye"].concat(),
    );
    sim.upstream_sends(&reply);
    assert_eq!(sim.client_received(), &reply[..]);
    assert_eq!(sim.shutdowns(), &[Side::Client]);
    assert!(
        !sim.is_closed(),
        "the upstream, as the server, closes first"
    );
    sim.eof(Side::Upstream);
    // Both Closes passed, the client's FIN is queued and the upstream has closed: the
    // session ends without waiting for the client's FIN (the kernel takes it).
    assert!(sim.is_closed());
    assert_eq!(
        sim.shutdowns(),
        &[Side::Client],
        "the upstream's FIN was not echoed"
    );
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::Closed));
}

fn close_frame(masked: bool) -> Vec<u8> {
    encode_frame(true, CLOSE, masked, &1000u16.to_be_bytes())
}

#[test]
fn the_client_is_shut_right_after_the_close_reply_not_at_the_upstreams_eof() {
    let mut sim = websocket_tunnel(Config::default());
    sim.client_sends(&close_frame(true));
    assert!(sim.shutdowns().is_empty(), "the handshake is not over yet");
    sim.upstream_sends(&close_frame(false));
    assert_eq!(sim.client_received(), &close_frame(false)[..]);
    assert_eq!(
        sim.shutdowns(),
        &[Side::Client],
        "the proxy is the client's server: it closes TCP first (RFC 6455 §7.1.1)"
    );
    // The upstream never closes: the client's FIN is passed on and the tunnel ends.
    sim.eof(Side::Client);
    assert_eq!(sim.shutdowns(), &[Side::Client, Side::Upstream]);
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::Closed));
}

#[test]
fn an_upstream_initiated_close_shuts_the_client_once_its_reply_is_forwarded() {
    let mut sim = websocket_tunnel(Config::default());
    sim.upstream_sends(&close_frame(false));
    assert!(sim.shutdowns().is_empty());
    sim.client_sends(&close_frame(true));
    assert_eq!(sim.upstream_received(), &close_frame(true)[..]);
    assert_eq!(sim.shutdowns(), &[Side::Client]);
    assert!(!sim.is_closed());
    sim.eof(Side::Upstream);
    assert_eq!(sim.shutdowns(), &[Side::Client], "shut once");
    assert!(
        sim.is_closed(),
        "nothing can flow once the upstream closed too"
    );
}

#[test]
fn a_drain_after_a_peers_close_sends_no_second_close_into_that_stream() {
    let mut sim = websocket_tunnel(Config::default());
    sim.client_sends(&close_frame(true));
    sim.eof(Side::Client);
    assert_eq!(
        sim.shutdowns(),
        &[Side::Upstream],
        "a proper EOF passes through"
    );
    let deadline = sim.now() + secs(10);
    sim.input(Input::Drain { deadline });
    sim.advance(secs(10));
    assert_eq!(
        sim.upstream_received(),
        &close_frame(true)[..],
        "nothing after the client's Close and FIN"
    );
    assert!(sim.is_closed());
}

#[test]
fn a_drain_answers_a_client_close_the_upstream_has_not_answered() {
    let mut sim = websocket_tunnel(Config::default());
    sim.client_sends(&close_frame(true));
    let deadline = sim.now() + secs(10);
    sim.input(Input::Drain { deadline });
    let frames = decode_frames(sim.client_received());
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(
        frames[0].close_code(),
        Some(1001),
        "the reply the client waits for"
    );
    assert_eq!(
        sim.upstream_received(),
        &close_frame(true)[..],
        "no second Close"
    );
    assert!(sim.is_closed(), "no reply is awaited from anyone");
}

#[test]
fn an_upstream_vanishing_before_answering_the_clients_close_answers_it_with_1014() {
    let mut sim = websocket_tunnel(Config::default());
    sim.client_sends(&close_frame(true));
    sim.eof(Side::Upstream);
    let frames = decode_frames(sim.client_received());
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].close_code(), Some(1014));
    assert!(sim.is_closed());
}

#[test]
fn no_pings_once_a_peer_has_sent_close() {
    let mut sim = websocket_tunnel(with_pings());
    sim.client_sends(&close_frame(true));
    sim.advance(secs(25));
    assert_eq!(sim.client_received(), b"", "no Ping to the client");
    assert_eq!(sim.upstream_received(), &close_frame(true)[..]);
    sim.upstream_sends(&close_frame(false));
    assert_eq!(sim.shutdowns(), &[Side::Client]);
    sim.advance(secs(25));
    assert_eq!(
        sim.client_received(),
        &close_frame(false)[..],
        "nothing after the FIN"
    );
    assert_eq!(sim.upstream_received(), &close_frame(true)[..]);
}

#[test]
fn a_client_that_never_closes_after_the_handshake_is_closed_at_fin() {
    let mut config = Config::default();
    config.timeouts.fin = secs(5);
    let mut sim = websocket_tunnel(config);
    sim.client_sends(&close_frame(true));
    sim.upstream_sends(&close_frame(false));
    sim.advance(secs(4));
    assert!(!sim.is_closed());
    sim.advance(secs(1));
    assert!(sim.is_closed());
}

#[test]
fn what_a_peer_sends_after_its_close_is_dropped() {
    let mut sim = websocket_tunnel(Config::default());
    let late = server_frame(b"after my Close");
    sim.upstream_sends(&[close_frame(false), late.clone()].concat());
    assert_eq!(sim.client_received(), &close_frame(false)[..]);
    let large = encode_frame(true, 0x2, false, &vec![7u8; 100_000]);
    assert_eq!(
        sim.sends_passing_through(Side::Upstream, &large),
        0,
        "no byte after a Close may pass unseen either"
    );
    assert_eq!(sim.client_received(), &close_frame(false)[..]);
    // The client's own Close still reaches the upstream, and ends the handshake.
    sim.client_sends(&close_frame(true));
    assert_eq!(sim.upstream_received(), &close_frame(true)[..]);
    assert_eq!(sim.shutdowns(), &[Side::Client]);
}

#[test]
fn a_client_breaking_rfc6455_is_failed_after_what_the_upstream_sent_before_its_close() {
    let mut sim = websocket_tunnel(Config::default());
    let valid = encode_frame(true, 0x1, true, b"hello");
    let bad = encode_frame(true, 0x1, false, b"unmasked from a client");
    sim.client_sends(&[valid.clone(), bad].concat());
    let to_upstream = decode_frames(sim.upstream_received());
    assert_eq!(
        to_upstream.len(),
        2,
        "the valid frame, then the proxy's Close"
    );
    assert_eq!(to_upstream[0].payload, b"hello");
    assert_eq!(to_upstream[1].close_code(), Some(1001));
    assert!(sim.client_received().is_empty(), "the client's Close waits");
    // What the client sends now is not read as frames, a Close included.
    sim.client_sends(&close_frame(true));
    assert_eq!(decode_frames(sim.upstream_received()).len(), 2);
    // The upstream's echo of the valid message still reaches the client (as it would
    // with no proxy between them); its Close reply is the proxy's, not forwarded.
    let echo = server_frame(b"hello");
    sim.upstream_sends(&[echo.clone(), close_frame(false)].concat());
    let to_client = decode_frames(sim.client_received());
    assert_eq!(to_client.len(), 2);
    assert_eq!(to_client[0].payload, b"hello");
    assert_eq!(to_client[1].close_code(), Some(1002));
    assert_eq!(
        sim.shutdowns(),
        &[Side::Client],
        "failing the connection (RFC 6455 §7.1.7): the FIN follows the Close at once"
    );
    assert!(!sim.is_closed(), "the client's EOF is still to come");
    sim.eof(Side::Client);
    assert!(sim.is_closed(), "closed at the client's EOF, not at `fin`");
    assert_eq!(
        tunnel_end(&sim),
        Some(TunnelEnd::ProtocolError(Side::Client))
    );
}

#[test]
fn a_failed_client_is_failed_at_once_when_the_upstream_has_closed_already() {
    // The upstream's forwarded Close ended its stream: the client is failed at once.
    let mut sim = websocket_tunnel(Config::default());
    sim.upstream_sends(&close_frame(false));
    sim.client_sends(&encode_frame(true, 0x3, true, b"reserved opcode"));
    assert_eq!(
        decode_frames(sim.client_received()).len(),
        1,
        "no Close after the upstream's forwarded one (nothing may follow it)"
    );
    assert_eq!(sim.shutdowns(), &[Side::Client]);
    // The upstream's own Close answers the proxy's: only the client's EOF is awaited.
    sim.eof(Side::Client);
    assert!(sim.is_closed());
}

#[test]
fn a_failed_client_gets_its_close_when_the_upstream_vanishes_instead_of_replying() {
    let mut sim = websocket_tunnel(Config::default());
    sim.client_sends(&encode_frame(true, 0x3, true, b"reserved opcode"));
    assert!(sim.client_received().is_empty());
    sim.eof(Side::Upstream);
    let to_client = decode_frames(sim.client_received());
    assert_eq!(to_client.len(), 1);
    assert_eq!(to_client[0].close_code(), Some(1002));
    assert_eq!(sim.shutdowns(), &[Side::Client]);
    sim.eof(Side::Client);
    assert!(sim.is_closed());
}

#[test]
fn a_failed_client_that_never_closes_is_closed_at_fin() {
    let mut config = Config::default();
    config.timeouts.fin = secs(5);
    let mut sim = websocket_tunnel(config);
    sim.client_sends(&encode_frame(true, 0x3, true, b"reserved opcode"));
    sim.upstream_sends(&close_frame(false));
    sim.advance(secs(4));
    assert!(!sim.is_closed());
    sim.advance(secs(1));
    assert!(sim.is_closed());
}

#[test]
fn an_upstream_breaking_rfc6455_is_failed_and_the_client_gets_1014() {
    let mut sim = websocket_tunnel(Config::default());
    sim.upstream_sends(&encode_frame(true, 0x1, true, b"masked from a server"));
    let to_client = decode_frames(sim.client_received());
    assert_eq!(to_client.len(), 1, "the bad frame was not forwarded");
    assert_eq!(to_client[0].close_code(), Some(1014), "bad gateway");
    assert!(sim.upstream_received().is_empty());
    sim.client_sends(&close_frame(true));
    let to_upstream = decode_frames(sim.upstream_received());
    assert_eq!(to_upstream.len(), 1, "the client's reply is the proxy's");
    assert_eq!(to_upstream[0].close_code(), Some(1002));
    assert!(to_upstream[0].masked, "the proxy is the upstream's client");
    assert_eq!(sim.shutdowns(), &[Side::Upstream]);
    sim.eof(Side::Upstream);
    assert!(sim.is_closed());
    assert_eq!(
        tunnel_end(&sim),
        Some(TunnelEnd::ProtocolError(Side::Upstream))
    );
}

#[test]
fn a_close_no_peer_may_send_fails_the_connection_instead_of_being_forwarded() {
    let code = |code: u16, reason: &[u8]| [&code.to_be_bytes()[..], reason].concat();
    let cases: [(Vec<u8>, u16); 5] = [
        (vec![0x03], 1002),
        (code(1005, b""), 1002),
        (code(999, b""), 1002),
        (code(2000, b"reserved"), 1002),
        (code(1000, &[0xce, 0xba, 0xed, 0xa0, 0x80]), 1007),
    ];
    for (payload, expected) in cases {
        let mut sim = websocket_tunnel(Config::default());
        sim.client_sends(&encode_frame(true, CLOSE, true, &payload));
        let to_upstream = decode_frames(sim.upstream_received());
        assert_eq!(to_upstream.len(), 1, "{payload:?}");
        assert_eq!(to_upstream[0].close_code(), Some(1001), "{payload:?}");
        sim.upstream_sends(&close_frame(false));
        let to_client = decode_frames(sim.client_received());
        assert_eq!(to_client.len(), 1, "{payload:?}");
        assert_eq!(to_client[0].close_code(), Some(expected), "{payload:?}");
        assert_eq!(sim.shutdowns(), &[Side::Client], "{payload:?}");
    }
    // From the upstream too: the client is told the upstream failed.
    let mut sim = websocket_tunnel(Config::default());
    sim.upstream_sends(&encode_frame(true, CLOSE, false, &code(1006, b"")));
    let to_client = decode_frames(sim.client_received());
    assert_eq!(to_client.len(), 1);
    assert_eq!(to_client[0].close_code(), Some(1014));
    sim.client_sends(&close_frame(true));
    assert_eq!(sim.shutdowns(), &[Side::Upstream]);
}

#[test]
fn a_valid_close_with_an_application_code_and_utf8_reason_passes_untouched() {
    let mut sim = websocket_tunnel(Config::default());
    let payload = [&4999u16.to_be_bytes()[..], "κόσμε".as_bytes()].concat();
    let close = encode_frame(true, CLOSE, true, &payload);
    sim.client_sends(&close);
    assert_eq!(sim.upstream_received(), &close[..]);
    assert!(sim.client_received().is_empty());
    assert!(sim.shutdowns().is_empty());
}

#[test]
fn frame_headers_split_at_every_byte_pass_through_unchanged() {
    let mut stream = encode_frame(false, 0x1, true, b"hello ");
    stream.extend(encode_frame(true, PING, true, b"?"));
    stream.extend(encode_frame(true, 0x0, true, &[b'w'; 300]));
    stream.extend(encode_frame(true, 0x2, true, &[0; 70_000]));
    for at in (0..200).chain(stream.len() - 20..stream.len()) {
        let mut sim = websocket_tunnel(Config::default());
        sim.client_sends(&stream[..at]);
        sim.client_sends(&stream[at..]);
        assert_eq!(sim.upstream_received(), &stream[..], "split at {at}");
    }
    let mut sim = websocket_tunnel(Config::default());
    sim.client_sends_in_pieces(&stream[..400], 1);
    assert_eq!(sim.upstream_received(), &stream[..400]);
}

#[test]
fn a_queued_ping_is_dropped_when_the_tunnel_starts_closing() {
    let mut sim = websocket_tunnel(with_pings());
    let frame = encode_frame(true, 0x2, false, &[5; 54]);
    sim.upstream_sends(&frame[..10]);
    sim.advance(secs(20)); // a Ping for the client waits for the frame's end
    sim.client_sends(&encode_frame(true, 0x1, false, b"unmasked")); // 1002: closing
    sim.upstream_sends(&frame[10..]);
    // The client is failed once the upstream's stream ends; until then the frame in
    // flight is relayed, and the Ping is not inserted anywhere.
    let sent = sim.client_received();
    assert_eq!(sent, &frame[..], "the frame whole, no Ping");
}

#[test]
fn the_pong_timeout_counts_from_when_the_ping_was_sent() {
    let mut sim = websocket_tunnel(with_pings());
    let big = encode_frame(true, 0x2, false, &[1; 100_000]);
    sim.upstream_sends(&big[..1000]);
    sim.advance(secs(20)); // Pings due: the client's waits behind the frame in flight
    let upstream_ping = decode_frames(&sim.take_upstream_received()).remove(0);
    sim.advance(secs(4));
    sim.upstream_sends(&big[1000..]); // the frame ends: the client's Ping goes out now (t = 24)
    sim.upstream_sends(&encode_frame(true, PONG, false, &upstream_ping.payload));
    assert_eq!(
        decode_frames(sim.client_received())
            .last()
            .map(|f| f.opcode),
        Some(PING)
    );
    sim.advance(secs(4)); // t = 28: 8 s after queueing, 4 s after sending
    assert!(!decode_frames(sim.upstream_received())
        .iter()
        .any(|f| f.opcode == CLOSE));
    sim.advance(secs(1)); // t = 29: 5 s after sending
    let close = decode_frames(sim.upstream_received()).pop().unwrap();
    assert_eq!(close.close_code(), Some(1001));
}

#[test]
fn retire_sends_close_1001_at_its_deadline_not_before() {
    let mut sim = websocket_tunnel(Config::default());
    let deadline = sim.now() + secs(20);
    sim.input(Input::Retire { deadline });
    sim.advance(secs(19));
    assert!(sim.client_received().is_empty());
    sim.advance(secs(1));
    let close = decode_frames(sim.client_received()).pop().unwrap();
    assert_eq!(close.close_code(), Some(1001));
    assert_eq!(&close.payload[2..], b"going away");
}

#[test]
fn rsv_bits_pass_only_when_the_101_negotiated_an_extension() {
    // permessage-deflate sets RSV1 on compressed frames (RFC 7692).
    let compressed = encode_frame(true, 0x1, true, b"\xf2\x48\xcd\xc9\xc9\x07\x00");
    let mut compressed_rsv1 = compressed.clone();
    compressed_rsv1[0] |= 0x40;
    // A tunnel whose client offered permessage-deflate and whose 101 says `chosen`.
    let tunnel_choosing = |chosen: &str| {
        let mut sim = proxy_core::sim::Sim::new(Config::default());
        let offer = String::from_utf8(websocket_request()).unwrap().replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        sim.client_sends(offer.as_bytes());
        sim.expect_connect();
        sim.upstream_connected();
        let response = String::from_utf8(websocket_101())
            .unwrap()
            .replace("\r\n\r\n", &format!("\r\n{chosen}\r\n\r\n"));
        sim.upstream_sends(response.as_bytes());
        assert!(sim.releases().is_empty(), "{chosen}: the 101 is accepted");
        sim.take_client_received();
        sim.take_upstream_received();
        sim
    };
    let mut sim = tunnel_choosing("Sec-WebSocket-Extensions: permessage-deflate");
    sim.client_sends(&compressed_rsv1);
    assert_eq!(
        sim.upstream_received(),
        &compressed_rsv1[..],
        "passed untouched"
    );
    assert!(sim.client_received().is_empty());

    // No extension negotiated: none chosen, or an empty field that names none.
    for mut sim in [
        websocket_tunnel(Config::default()),
        tunnel_choosing("Sec-WebSocket-Extensions: "),
    ] {
        sim.client_sends(&compressed_rsv1);
        let to_upstream = decode_frames(sim.upstream_received());
        assert_eq!(to_upstream.len(), 1, "not forwarded without an extension");
        assert_eq!(to_upstream[0].close_code(), Some(1001));
        sim.upstream_sends(&close_frame(false));
        assert_eq!(
            decode_frames(sim.client_received())[0].close_code(),
            Some(1002)
        );
    }
}

fn with_max_message(bytes: u64) -> Config {
    let mut config = Config::default();
    config.websocket.max_message_size = bytes;
    config
}

#[test]
fn a_client_message_over_max_message_size_gets_1009_after_the_upstreams_close() {
    let mut sim = websocket_tunnel(with_max_message(1000));
    let exactly = encode_frame(true, 0x2, true, &[1; 1000]);
    sim.client_sends(&exactly);
    assert_eq!(
        sim.take_upstream_received(),
        exactly,
        "at the limit: relayed"
    );
    // Fragments count together: 600 + 400 is the limit, one byte more is over.
    let first = encode_frame(false, 0x1, true, &[b'a'; 600]);
    let ping = encode_frame(true, PING, true, b"between fragments");
    let second = encode_frame(false, 0x0, true, &[b'b'; 400]);
    let third = encode_frame(true, 0x0, true, b"c");
    sim.client_sends(&[first.clone(), ping.clone(), second.clone(), third].concat());
    let to_upstream = decode_frames(sim.upstream_received());
    assert_eq!(
        to_upstream.len(),
        4,
        "three frames before the one over, a Close"
    );
    assert_eq!(
        sim.upstream_received()[..first.len() + ping.len() + second.len()],
        [first, ping, second].concat()
    );
    let close = &to_upstream[3];
    assert_eq!(close.close_code(), Some(1001), "the client is going away");
    assert_eq!(&close.payload[2..], b"client message too big");
    assert!(close.masked, "the proxy is the upstream's client");
    assert!(sim.client_received().is_empty(), "the client's Close waits");
    // The upstream's messages still reach the client until its Close reply.
    let news = server_frame(b"still relayed");
    sim.upstream_sends(&[news.clone(), close_frame(false)].concat());
    let to_client = decode_frames(sim.client_received());
    assert_eq!(to_client.len(), 2);
    assert_eq!(to_client[0].payload, b"still relayed");
    assert_eq!(to_client[1].close_code(), Some(1009));
    assert_eq!(&to_client[1].payload[2..], b"message too big");
    assert_eq!(sim.shutdowns(), &[Side::Client], "failed: the FIN follows");
    sim.eof(Side::Client);
    assert!(sim.is_closed());
    assert_eq!(
        tunnel_end(&sim),
        Some(TunnelEnd::MessageTooBig(Side::Client))
    );
}

#[test]
fn a_too_big_frame_passes_no_byte_unseen() {
    // The header announces 100,000 bytes against a limit of 65,536: not one payload
    // byte may go past unread (spliced), and the header itself is not forwarded.
    let mut sim = websocket_tunnel(with_max_message(65_536));
    let large = encode_frame(true, 0x2, true, &vec![7u8; 100_000]);
    assert_eq!(sim.sends_passing_through(Side::Client, &large), 0);
    let to_upstream = decode_frames(sim.upstream_received());
    assert_eq!(to_upstream.len(), 1);
    assert_eq!(to_upstream[0].close_code(), Some(1001));
    // Under the limit, a large frame passes unseen as before.
    let mut sim = websocket_tunnel(with_max_message(100_000));
    let passed = sim.sends_passing_through(Side::Client, &large);
    assert!(passed > 0, "the payload passes unseen");
    assert_eq!(sim.upstream_received(), &large[..]);
}

#[test]
fn max_message_size_holds_clients_only_and_is_off_by_default() {
    let mut sim = websocket_tunnel(with_max_message(1000));
    let from_upstream = encode_frame(true, 0x2, false, &[3; 5000]);
    sim.upstream_sends(&from_upstream);
    assert_eq!(sim.client_received(), &from_upstream[..]);
    let mut sim = websocket_tunnel(Config::default());
    let large = encode_frame(true, 0x2, true, &vec![9u8; 3 << 20]);
    sim.client_sends(&large);
    assert_eq!(sim.upstream_received().len(), large.len());
    assert!(sim.client_received().is_empty());
}
