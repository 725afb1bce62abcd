//! Zero-copy passthrough: which tunnel bytes a runtime may move from one socket to the
//! other without showing them to the session (`Session::passthrough_room`,
//! `Input::Passed`), and that moving them changes nothing the peers see.

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::{Config, Event, Input, Side, TunnelLog};
use std::time::Duration;

const PING: u8 = 0x9;
const BINARY: u8 = 0x2;

/// A binary frame from the client (masked), of any length.
fn client_binary(payload: &[u8]) -> Vec<u8> {
    encode_frame(true, BINARY, true, payload)
}

fn tunnel_log(sim: &Sim) -> Option<TunnelLog> {
    sim.events().iter().find_map(|e| match e {
        Event::Tunnel(t) => Some((**t).clone()),
        _ => None,
    })
}

fn small_buffers() -> Config {
    Config {
        buffer_size: 4096,
        ..Config::default()
    }
}

#[test]
fn nothing_passes_before_a_tunnel() {
    let mut sim = Sim::new(Config::default());
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 0);
}

#[test]
fn only_the_payload_of_a_websocket_data_frame_passes_and_the_stream_is_unchanged() {
    let mut sim = websocket_tunnel(small_buffers());
    // Headers are always read: nothing passes until one has been seen.
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let frame = client_binary(&payload);
    let passed = sim.sends_passing_through(Side::Client, &frame);
    // The first read (4096 bytes) carried the header; the rest of the payload passed.
    assert_eq!(passed, frame.len() - 4096);
    assert_eq!(sim.upstream_received(), &frame[..]);
    // At the next header, nothing passes again.
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    let next = client_frame(b"after");
    assert_eq!(sim.sends_passing_through(Side::Client, &next), 0);
    assert_eq!(&sim.upstream_received()[frame.len()..], &next[..]);
    let server = encode_frame(true, BINARY, false, &payload);
    sim.sends_passing_through(Side::Upstream, &server);
    assert_eq!(sim.client_received(), &server[..]);
}

#[test]
fn passed_bytes_count_as_sent_so_nothing_overtakes_them_and_flow_control_holds() {
    let mut sim = websocket_tunnel(small_buffers());
    sim.set_auto_ack(false);
    let frame = client_binary(&vec![7u8; 100_000]);
    sim.client_sends(&frame[..100]);
    sim.ack(Side::Upstream, 100);
    let room = sim.session().passthrough_room(Side::Client);
    assert_eq!(room, 64 * 1024, "capped by pipe_size, not buffer_size");
    sim.input(Input::Passed(Side::Client, 1000));
    // Unwritten bytes towards the upstream: no more may pass, and reads are cut.
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    assert_eq!(sim.session().read_room(Side::Client), 4096 - 1000);
    // A Passed beyond what was allowed is a runtime's bug and changes nothing.
    sim.input(Input::Passed(Side::Client, 1));
    assert_eq!(sim.session().read_room(Side::Client), 4096 - 1000);
    sim.input(Input::Written(Side::Upstream, 1000));
    assert_eq!(sim.session().passthrough_room(Side::Client), 64 * 1024);
}

#[test]
fn a_pipe_full_of_passed_bytes_stops_reads_until_written_below_buffer_size() {
    let mut sim = websocket_tunnel(Config {
        pipe_size: 10_000,
        ..small_buffers()
    });
    sim.set_auto_ack(false);
    let frame = client_binary(&vec![7u8; 30_000]);
    sim.client_sends(&frame[..8]); // the header (2 + 2 + mask)
    sim.ack(Side::Upstream, 8);
    assert_eq!(sim.session().passthrough_room(Side::Client), 10_000);
    // More than `pipe_size` is a runtime's bug and ignored.
    sim.input(Input::Passed(Side::Client, 10_001));
    assert_eq!(sim.session().read_room(Side::Client), 4096);
    sim.input(Input::Passed(Side::Client, 10_000));
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    assert_eq!(sim.session().read_room(Side::Client), 0, "10,000 in flight");
    sim.input(Input::Written(Side::Upstream, 7_000));
    assert_eq!(sim.session().read_room(Side::Client), 4096 - 3_000);
    assert_eq!(
        sim.session().passthrough_room(Side::Client),
        0,
        "3,000 unwritten"
    );
    sim.input(Input::Written(Side::Upstream, 3_000));
    assert_eq!(sim.session().passthrough_room(Side::Client), 10_000);
}

#[test]
fn a_pipe_size_of_0_passes_nothing_and_every_byte_is_read() {
    let mut sim = websocket_tunnel(Config {
        pipe_size: 0,
        ..small_buffers()
    });
    let frame = client_binary(&vec![7u8; 30_000]);
    assert_eq!(sim.sends_passing_through(Side::Client, &frame), 0);
    assert_eq!(sim.upstream_received(), &frame[..]);
    // After a large frame, reads stay whole: no payload will pass behind a header.
    assert_eq!(sim.session().read_room_when_passing(Side::Client), 4096);
    let sim = tunnel(Config {
        pipe_size: 0,
        ..small_buffers()
    });
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 0);
}

#[test]
fn a_ping_queued_behind_a_passing_frame_goes_out_when_the_frame_ends() {
    let mut config = small_buffers();
    config.websocket.ping_interval = Some(Duration::from_secs(20));
    let mut sim = websocket_tunnel(config);
    let frame = client_binary(&vec![1u8; 3000]);
    sim.client_sends(&frame[..10]);
    sim.advance(Duration::from_secs(20));
    // The stream towards the upstream is mid-frame: the Ping waits.
    assert_eq!(sim.upstream_received(), &frame[..10]);
    sim.sends_passing_through(Side::Client, &frame[10..]);
    let frames = decode_frames(sim.upstream_received());
    assert_eq!(frames.len(), 2);
    assert_eq!((frames[0].opcode, frames[0].payload.len()), (BINARY, 3000));
    assert_eq!((frames[1].opcode, frames[1].masked), (PING, true));
}

#[test]
fn passed_bytes_keep_the_tunnel_alive_and_are_logged() {
    let mut config = small_buffers();
    config.timeouts.tunnel_idle = Duration::from_secs(60);
    // The upstream stays silent throughout: no Pings, whose unanswered timeout would
    // end the tunnel first.
    config.websocket.ping_interval = None;
    let mut sim = websocket_tunnel(config);
    let payload = vec![3u8; 50_000];
    let frame = client_binary(&payload);
    let mut offset = 0;
    // One chunk every 40 s: passed bytes are activity, so the idle timeout never hits.
    for chunk in frame.chunks(5000) {
        sim.advance(Duration::from_secs(40));
        sim.sends_passing_through(Side::Client, chunk);
        offset += chunk.len();
        assert!(!sim.is_closed(), "closed after {offset} bytes");
    }
    assert_eq!(sim.upstream_received(), &frame[..]);
    sim.client_sends(&encode_frame(true, 0x8, true, &1000u16.to_be_bytes()));
    sim.upstream_sends(&encode_frame(true, 0x8, false, &1000u16.to_be_bytes()));
    sim.eof(Side::Upstream);
    sim.eof(Side::Client);
    let log = tunnel_log(&sim).expect("a tunnel log line");
    assert_eq!(log.client_to_upstream, frame.len() as u64 + 8);
}

#[test]
fn a_tunnel_that_is_not_websocket_passes_everything_within_pipe_size() {
    let mut sim = tunnel(small_buffers());
    assert_eq!(sim.session().passthrough_room(Side::Client), 64 * 1024);
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 64 * 1024);
    let bytes: Vec<u8> = (0..90_000u32).map(|i| i as u8).collect();
    assert_eq!(sim.sends_passing_through(Side::Upstream, &bytes), 90_000);
    assert_eq!(sim.client_received(), &bytes[..]);
    // After an EOF from a side, nothing more passes from it.
    sim.eof(Side::Client);
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
}

#[test]
fn nothing_passes_while_the_proxy_closes_a_websocket_tunnel() {
    let mut sim = websocket_tunnel(small_buffers());
    let frame = client_binary(&vec![9u8; 3000]);
    sim.client_sends(&frame[..10]);
    assert!(sim.session().passthrough_room(Side::Client) > 0);
    let deadline = sim.now() + Duration::from_secs(5);
    sim.input(Input::Drain { deadline });
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
}

#[test]
fn after_a_large_frame_a_passing_runtime_reads_only_a_header_so_the_next_payload_passes() {
    let mut sim = websocket_tunnel(Config::default());
    let large = client_binary(&vec![5u8; 40_000]);
    assert_eq!(sim.session().read_room_when_passing(Side::Client), 16_384);
    let first = sim.sends_passing_through(Side::Client, &large);
    assert_eq!(
        first,
        large.len() - 16_384,
        "the first frame's head read took 16 KiB"
    );
    assert_eq!(sim.session().read_room_when_passing(Side::Client), 14);
    assert_eq!(sim.session().read_room(Side::Client), 16_384);
    // Now only the header is read, and the whole payload of the next frame passes.
    let second = sim.sends_passing_through(Side::Client, &large);
    assert_eq!(second, 40_000 - (14 - 8));
    // A small frame ends it: reads are whole again after it.
    let small = client_binary(b"small");
    sim.sends_passing_through(Side::Client, &small);
    assert_eq!(sim.session().read_room_when_passing(Side::Client), 16_384);
    let mut expected = large.clone();
    expected.extend_from_slice(&large);
    expected.extend_from_slice(&small);
    assert_eq!(sim.upstream_received(), &expected[..]);
}

#[test]
fn a_frame_header_unwritten_stops_its_payload_passing_but_says_the_payload_passes_next() {
    let mut sim = websocket_tunnel(small_buffers());
    sim.set_auto_ack(false);
    assert!(
        !sim.session().passes_once_sent(Side::Client),
        "no header seen yet"
    );
    let frame = client_binary(&vec![5u8; 3000]);
    sim.client_sends(&frame[..8]); // the header (2 + 2 + mask)
    assert_eq!(
        sim.session().passthrough_room(Side::Client),
        0,
        "header unwritten"
    );
    assert!(sim.session().passes_once_sent(Side::Client));
    assert!(!sim.session().passes_once_sent(Side::Upstream));
    sim.ack(Side::Upstream, 8);
    assert_eq!(sim.session().passthrough_room(Side::Client), 3000);
    assert!(sim.session().passes_once_sent(Side::Client));
    sim.input(Input::Passed(Side::Client, 3000));
    assert!(
        !sim.session().passes_once_sent(Side::Client),
        "the frame ended: the next header must be read"
    );
}

#[test]
fn nothing_passes_once_sent_from_a_side_that_ended() {
    let mut sim = websocket_tunnel(small_buffers());
    let frame = client_binary(&vec![5u8; 3000]);
    sim.client_sends(&frame[..8]);
    assert!(sim.session().passes_once_sent(Side::Client));
    sim.eof(Side::Client);
    assert!(!sim.session().passes_once_sent(Side::Client));
}
