//! Zero-copy passthrough: which bytes a runtime may move from one socket to the other
//! without showing them to the session (`Session::passthrough_room`, `Input::Passed`):
//! tunnel bytes, and HTTP bodies that go on as they came; and that moving them changes
//! nothing the peers see.

mod common;
use common::*;
use proptest::prelude::*;
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
fn nothing_passes_in_a_head_or_a_request_without_a_body() {
    let mut sim = Sim::new(Config::default());
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 0);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n");
    assert_eq!(
        sim.session().passthrough_room(Side::Upstream),
        0,
        "half a head"
    );
}

fn response_log(sim: &Sim) -> Vec<(u16, u64, u64)> {
    (sim.events().iter())
        .filter_map(|e| match e {
            Event::Request(r) => Some((r.status, r.request_body_bytes, r.response_body_bytes)),
            _ => None,
        })
        .collect()
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_response_body_passes_after_its_head_and_the_upstream_connection_is_kept() {
    let mut sim = connected(GET);
    let content = body(100_000);
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    let head_len = response.len();
    response.extend_from_slice(&content);
    let passed = sim.sends_passing_through(Side::Upstream, &response);
    // The first read (16 KiB) carried the head and the start of the body.
    assert_eq!(passed, response.len() - 16 * 1024);
    let received = sim.take_client_received();
    let split = received.len() - content.len();
    assert!(received.starts_with(b"HTTP/1.1 200 OK\r\n") && split >= head_len - 2);
    assert_eq!(&received[split..], &content[..]);
    assert_eq!(
        sim.releases(),
        &[true],
        "the upstream connection goes back to the pool"
    );
    assert_eq!(response_log(&sim), [(200, 0, 100_000)]);
    // The connection serves the next request as usual.
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected_pooled();
    sim.upstream_sends(OK);
    assert!(sim.take_client_received().ends_with(b"hello"));
}

#[test]
fn a_body_never_passes_beyond_its_end_so_what_follows_is_read() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 30000\r\n\r\n0123456789");
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 30_000 - 10);
    sim.input(Input::Passed(Side::Upstream, 30_000 - 10));
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 0);
    assert_eq!(response_log(&sim), [(200, 0, 30_000)]);
    // A pipelined request's body stops at its length: the next head is read.
    let mut sim = streaming(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n");
    assert_eq!(sim.session().passthrough_room(Side::Client), 5000);
    sim.input(Input::Passed(Side::Client, 5000));
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
}

#[test]
fn a_chunked_body_never_passes() {
    let mut sim = streaming(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    let chunked_request = b"5\r\nhello\r\n0\r\n\r\n";
    assert_eq!(sim.sends_passing_through(Side::Client, chunked_request), 0);
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    response.extend_from_slice(b"8000\r\n");
    response.extend_from_slice(&body(0x8000));
    response.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(sim.sends_passing_through(Side::Upstream, &response), 0);
    assert_eq!(response_log(&sim), [(200, 5, 0x8000)]);
}

#[test]
fn a_close_delimited_body_passes_until_the_upstream_closes() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\n\r\nstart");
    assert_eq!(sim.session().passthrough_room(Side::Upstream), 64 * 1024);
    let rest = body(200_000);
    assert_eq!(sim.sends_passing_through(Side::Upstream, &rest), 200_000);
    assert!(sim.client_received().ends_with(&rest));
    assert!(!sim.is_closed());
    sim.eof(Side::Upstream);
    assert_eq!(response_log(&sim), [(200, 0, 200_005)]);
    assert_eq!(
        sim.releases(),
        &[false],
        "a close-delimited body's connection is spent"
    );
}

#[test]
fn a_request_body_passes_only_once_the_upstream_is_connected() {
    let mut sim = Sim::new(Config {
        request_buffering: false,
        ..small_buffers()
    });
    let content = body(50_000);
    sim.client_sends(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 50000\r\n\r\nabc");
    sim.expect_connect();
    // Dialling: what comes waits in memory (within buffer_size), nothing passes.
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    sim.upstream_connected();
    // The held bytes went first; the rest may pass.
    assert_eq!(sim.session().passthrough_room(Side::Client), 50_000 - 3);
    assert_eq!(
        sim.sends_passing_through(Side::Client, &content[3..]),
        50_000 - 3
    );
    let upstream = sim.take_upstream_received();
    assert!(upstream.ends_with(&content[3..]));
    sim.upstream_sends(OK);
    assert_eq!(response_log(&sim), [(200, 50_000, 5)]);
}

#[test]
fn a_request_body_gathered_before_dialling_passes_once_connected() {
    let mut sim = Sim::new(small_buffers());
    let content = body(50_000);
    sim.client_sends(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 50000\r\n\r\n");
    // The first `buffer_size` of the body is read and kept before dialling.
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    sim.client_sends(&content[..4000]);
    assert!(!sim.has_pending_connect());
    assert_eq!(sim.session().read_room(Side::Client), 96);
    sim.client_sends(&content[4000..4096]);
    sim.expect_connect();
    assert_eq!(
        sim.session().read_room(Side::Client),
        0,
        "full until dialled"
    );
    assert_eq!(sim.session().passthrough_room(Side::Client), 0);
    assert!(sim.upstream_received().is_empty());
    sim.upstream_connected();
    assert!(sim.upstream_received().ends_with(&content[..4096]));
    assert_eq!(
        sim.sends_passing_through(Side::Client, &content[4096..]),
        50_000 - 4096
    );
    assert!(sim.take_upstream_received().ends_with(&content));
    sim.upstream_sends(OK);
    assert_eq!(response_log(&sim), [(200, 50_000, 5)]);
}

#[test]
fn passed_body_bytes_are_progress_for_the_body_read_timeout() {
    let mut config = Config::default();
    config.timeouts.body_read = Duration::from_secs(10);
    let mut sim = Sim::new(config);
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 90000\r\n\r\n");
    for _ in 0..3 {
        sim.advance(Duration::from_secs(8));
        let passed = sim.sends_passing_through(Side::Upstream, &body(30_000));
        assert_eq!(passed, 30_000, "every byte passed unseen");
        assert!(!sim.is_closed());
    }
    assert_eq!(response_log(&sim), [(200, 0, 90_000)]);
    // And the timeout still holds while nothing passes.
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected_pooled();
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 90000\r\n\r\n");
    sim.sends_passing_through(Side::Upstream, &body(30_000));
    sim.advance(Duration::from_secs(11));
    assert!(
        sim.is_closed(),
        "the body stalled for longer than body_read"
    );
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

/// How a generated message frames its body.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length,
    Chunked,
    /// Responses only: until the upstream closes.
    UntilClose,
}

/// One exchange with generated bodies, read in `piece`-byte reads (`passing`:
/// whatever the session allows passes unseen instead): what each peer received, the
/// pool releases, the request log, whether the session closed, and how many bytes
/// passed.
#[allow(clippy::type_complexity)]
fn exchange(
    config: &Config,
    request: (Framing, usize),
    response: (Framing, usize),
    piece: usize,
    passing: bool,
) -> (
    Vec<u8>,
    Vec<u8>,
    Vec<bool>,
    Vec<(u16, u64, u64)>,
    bool,
    usize,
) {
    let frame = |framing: Framing, len: usize| -> (String, Vec<u8>) {
        let content = body(len);
        match framing {
            Framing::Length => (format!("Content-Length: {len}\r\n"), content),
            Framing::Chunked => {
                let mut out = Vec::new();
                for chunk in content.chunks(3000) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                ("Transfer-Encoding: chunked\r\n".into(), out)
            }
            Framing::UntilClose => (String::new(), content),
        }
    };
    let mut sim = Sim::new(config.clone());
    let (field, mut request_body) = frame(request.0, request.1);
    // A pipelined request follows the body: it must be held, not passed with it.
    request_body.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    // Dialled at the head, or once the body fills `buffer_size` or ends.
    sim.set_auto_connect(true);
    sim.client_sends(format!("POST /p HTTP/1.1\r\nHost: a\r\n{field}\r\n").as_bytes());
    let (field, response_body) = frame(response.0, response.1);
    let mut response_bytes = format!("HTTP/1.1 200 OK\r\n{field}\r\n").into_bytes();
    response_bytes.extend_from_slice(&response_body);
    let mut passed = 0;
    for (from, bytes) in [
        (Side::Client, request_body),
        (Side::Upstream, response_bytes),
    ] {
        match passing {
            true => passed += sim.sends_passing_through(from, &bytes),
            false => bytes.chunks(piece).for_each(|part| match from {
                Side::Client => sim.client_sends(part),
                Side::Upstream => sim.upstream_sends(part),
            }),
        }
    }
    if matches!(response.0, Framing::UntilClose) {
        sim.eof(Side::Upstream);
    }
    (
        sim.take_client_received(),
        sim.take_upstream_received(),
        sim.releases().to_vec(),
        response_log(&sim),
        sim.is_closed(),
        passed,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A runtime that lets through unseen every body byte the session allows
    /// delivers the same bytes to both peers, keeps or drops the upstream connection
    /// alike and logs the same as one that reads every byte.
    #[test]
    fn passing_bodies_changes_nothing_the_peers_or_the_log_see(
        request in (prop_oneof![Just(Framing::Length), Just(Framing::Chunked)], 0usize..40_000),
        response in (
            prop_oneof![Just(Framing::Length), Just(Framing::Chunked), Just(Framing::UntilClose)],
            0usize..150_000,
        ),
        piece in 1usize..20_000,
        buffer_size in 1024usize..20_000,
        pipe_size in prop_oneof![Just(0usize), 1usize..100_000],
        request_buffering in any::<bool>(),
    ) {
        let config = Config { buffer_size, pipe_size, request_buffering, ..Config::default() };
        let read = exchange(&config, request, response, piece.min(buffer_size), false);
        let passed = exchange(&config, request, response, piece, true);
        prop_assert_eq!(&read.0, &passed.0, "what the client received");
        prop_assert_eq!(&read.1, &passed.1, "what the upstream received");
        prop_assert_eq!(&read.2, &passed.2, "pool releases");
        prop_assert_eq!(&read.3, &passed.3, "request log");
        prop_assert_eq!(read.4, passed.4, "closed");
        prop_assert_eq!(read.3.len(), 1, "one response, complete");
        prop_assert!(!read.1.ends_with(b"/next HTTP/1.1\r\nHost: a\r\n\r\n"), "held");
        // Past the first read, a plain body passes when a pipe is there to pass it.
        let verbatim = !matches!(response.0, Framing::Chunked);
        if verbatim && pipe_size > 0 && response.1 > buffer_size {
            prop_assert!(passed.5 > 0, "nothing passed");
        }
    }
}
