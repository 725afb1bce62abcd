//! Every deadline of the session, on the virtual clock: it fires at its time, not
//! before, and the peer sees what the rule says.

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::timer::Timer;
use proxy_core::{Config, Event, Input, Side};
use std::time::Duration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn next_timer(sim: &proxy_core::sim::Sim) -> Option<Timer> {
    sim.session().next_timer().map(|(_, t)| t)
}

#[test]
fn upstream_connect_timeout_is_502_after_60s() {
    let mut sim = sim();
    sim.client_sends(GET);
    sim.expect_connect();
    assert_eq!(next_timer(&sim), Some(Timer::UpstreamConnect));
    sim.advance(secs(59));
    assert!(sim.client_received().is_empty());
    sim.advance(secs(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
    assert_eq!(sim.releases(), &[false], "the dial is abandoned");
}

#[test]
fn a_dial_given_up_at_upstream_connect_is_one_event() {
    // The runtime counts connect timeouts from this event, not by timing dials itself.
    let given_up = |sim: &proxy_core::sim::Sim| {
        let events = sim.events().iter();
        events
            .filter(|e| matches!(e, Event::UpstreamConnectTimeout))
            .count()
    };
    let mut sim = sim();
    sim.client_sends(GET);
    sim.expect_connect();
    sim.advance(secs(59));
    assert_eq!(given_up(&sim), 0);
    sim.advance(secs(1));
    assert_eq!(given_up(&sim), 1);
    // A failed dial (refused) is the runtime's to count, not a timeout.
    let mut sim = common::sim();
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_fails();
    assert_eq!(given_up(&sim), 0);
}

#[test]
fn upstream_connect_failure_is_502() {
    let mut sim = sim();
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_fails();
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
}

#[test]
fn client_head_timeout_on_a_new_silent_connection_closes_without_a_response() {
    let mut sim = sim();
    assert_eq!(next_timer(&sim), Some(Timer::ClientHead));
    sim.advance(secs(60));
    assert!(sim.is_closed());
    assert!(sim.client_received().is_empty());
}

#[test]
fn client_head_timeout_is_408_and_counts_from_the_first_byte_not_each_byte() {
    let mut sim = sim();
    sim.client_sends(b"G");
    for _ in 0..58 {
        sim.advance(secs(1));
        sim.client_sends(b"E");
    }
    assert!(sim.client_received().is_empty());
    sim.advance(secs(2));
    assert!(
        sim.client_received_str().starts_with("HTTP/1.1 408 "),
        "{}",
        sim.client_received_str()
    );
}

#[test]
fn keep_alive_idle_timeout_closes_after_75s() {
    let mut sim = connected(GET);
    sim.upstream_sends(OK);
    assert_eq!(next_timer(&sim), Some(Timer::KeepAliveIdle));
    sim.advance(secs(74));
    assert!(!sim.is_closed());
    sim.advance(secs(1));
    assert!(sim.is_closed());
}

#[test]
fn client_head_timeout_on_a_kept_alive_connection_starts_at_the_first_byte() {
    let mut sim = connected(GET);
    sim.upstream_sends(OK);
    sim.take_client_received();
    sim.advance(secs(70));
    sim.client_sends(b"GET / HT");
    assert_eq!(next_timer(&sim), Some(Timer::ClientHead));
    sim.advance(secs(59));
    assert!(sim.client_received().is_empty());
    sim.advance(secs(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 408 "));
}

#[test]
fn upstream_response_head_timeout_is_504_after_60s() {
    let mut sim = connected(GET);
    assert_eq!(next_timer(&sim), Some(Timer::UpstreamResponseHead));
    sim.advance(secs(59));
    assert!(sim.client_received().is_empty());
    sim.advance(secs(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 504 "));
    assert_eq!(sim.releases(), &[false]);
}

#[test]
fn interim_responses_restart_the_response_head_timeout() {
    let mut sim = connected(GET);
    sim.advance(secs(50));
    sim.upstream_sends(b"HTTP/1.1 102 Processing\r\n\r\n");
    sim.advance(secs(50));
    assert!(!sim.client_received_str().contains("504"));
    sim.advance(secs(10));
    assert!(sim.client_received_str().contains("HTTP/1.1 504 "));
}

#[test]
fn response_body_read_timeout_closes_the_client() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(next_timer(&sim), Some(Timer::ResponseBodyRead));
    sim.advance(secs(59));
    assert!(!sim.is_closed());
    sim.advance(secs(1));
    assert!(
        sim.is_closed(),
        "the head was sent: no status can follow, only a close"
    );
}

#[test]
fn request_body_read_timeout_is_408() {
    const REQUEST: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc";
    // The body is gathered before dialling: the upstream never hears of it.
    let mut sim = sim();
    sim.client_sends(REQUEST);
    assert_eq!(next_timer(&sim), Some(Timer::RequestBodyRead));
    sim.advance(secs(30));
    sim.client_sends(b"de");
    sim.advance(secs(59));
    assert!(
        sim.client_received().is_empty(),
        "counted from the last read"
    );
    sim.advance(secs(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 408 "));
    assert!(!sim.has_pending_connect());
    assert_eq!(sim.upstream_connections(), 0);
    assert!(sim.releases().is_empty(), "nothing to release");
    // Streamed to an upstream dialled at the head: its connection is dropped.
    let mut sim = streaming(REQUEST);
    assert_eq!(next_timer(&sim), Some(Timer::RequestBodyRead));
    sim.advance(secs(60));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 408 "));
    assert_eq!(sim.releases(), &[false]);
}

#[test]
fn send_timeout_closes_when_a_write_makes_no_progress() {
    let mut sim = connected(GET);
    sim.set_auto_ack(false);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    sim.upstream_sends(&[0; 20000]);
    assert!(
        !sim.session().wants_read(Side::Upstream),
        "flow control holds the upstream"
    );
    assert_eq!(next_timer(&sim), Some(Timer::SendClient));
    sim.advance(secs(30));
    sim.ack(Side::Client, 100);
    sim.advance(secs(59));
    assert!(!sim.is_closed(), "progress restarts the send timer");
    sim.advance(secs(1));
    assert!(sim.is_closed());
}

#[test]
fn lingering_ends_at_the_client_eof_or_the_linger_timeout() {
    let mut sim = connected(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    sim.upstream_sends(OK);
    assert!(!sim.is_closed());
    assert!(
        sim.session().wants_read(Side::Client),
        "drains the client while lingering"
    );
    sim.client_sends(b"ignored");
    assert_eq!(next_timer(&sim), Some(Timer::Linger));
    sim.advance(secs(5));
    assert!(sim.is_closed());
}

#[test]
fn configured_timeouts_are_used() {
    let mut config = Config::default();
    config.timeouts.upstream_response_head = Duration::from_millis(250);
    let mut sim = proxy_core::sim::Sim::new(config);
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    sim.advance(Duration::from_millis(249));
    assert!(sim.client_received().is_empty());
    sim.advance(Duration::from_millis(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 504 "));
}

#[test]
fn drain_closes_idle_keep_alive_connections_at_once() {
    let mut sim = connected(GET);
    sim.upstream_sends(OK);
    let deadline = sim.now() + secs(30);
    sim.input(Input::Drain { deadline });
    assert!(sim.is_closed());
}

#[test]
fn drain_lets_an_in_flight_exchange_finish_then_closes() {
    let mut sim = connected(GET);
    let deadline = sim.now() + secs(30);
    sim.input(Input::Drain { deadline });
    assert!(!sim.is_closed());
    sim.upstream_sends(OK);
    let client = sim.client_received_str();
    assert!(client.ends_with("hello"));
    assert!(client.contains("Connection: close"));
    assert_eq!(sim.shutdowns(), &[Side::Client]);
}

#[test]
fn drain_refuses_new_upgrades_with_503() {
    let mut sim = sim();
    let request = websocket_request();
    sim.client_sends(&request[..8]);
    let deadline = sim.now() + secs(30);
    sim.input(Input::Drain { deadline });
    sim.client_sends(&request[8..]);
    assert!(
        sim.client_received_str().starts_with("HTTP/1.1 503 "),
        "{}",
        sim.client_received_str()
    );
}

#[test]
fn drain_deadline_closes_whatever_is_left() {
    let mut sim = connected(GET);
    let deadline = sim.now() + secs(5);
    sim.input(Input::Drain { deadline });
    sim.advance(secs(5));
    assert!(sim.is_closed());
}

#[test]
fn every_session_ends_when_time_runs_on() {
    // Whatever state it was left in, a session with no more input closes by itself.
    let scenarios: Vec<Box<dyn Fn() -> proxy_core::sim::Sim>> = vec![
        Box::new(sim),
        Box::new(|| connected(GET)),
        Box::new(|| {
            let mut s = connected(GET);
            s.upstream_sends(OK);
            s
        }),
        Box::new(|| tunnel(Config::default())),
        Box::new(|| {
            let mut s = sim();
            s.client_sends(GET);
            s
        }),
    ];
    for make in scenarios {
        let mut sim = make();
        sim.advance(secs(3600));
        assert!(sim.is_closed());
        assert_eq!(sim.session().poll_timeout(), None);
        assert_eq!(sim.outputs_after_close(), 0);
    }
}

#[test]
fn retire_closes_idle_keep_alive_connections_at_once_and_ends_exchanges_with_close() {
    let mut idle = connected(GET);
    idle.upstream_sends(OK);
    let deadline = idle.now() + secs(30);
    idle.input(Input::Retire { deadline });
    assert!(idle.is_closed());
    let mut busy = connected(GET);
    busy.input(Input::Retire {
        deadline: busy.now() + secs(30),
    });
    busy.upstream_sends(OK);
    assert!(busy.client_received_str().contains("Connection: close"));
}

#[test]
fn drain_closes_a_new_connection_that_sent_nothing() {
    let mut sim = sim();
    let deadline = sim.now() + secs(30);
    sim.input(Input::Drain { deadline });
    assert!(sim.is_closed());
}

#[test]
fn retire_still_answers_the_first_request_of_a_new_connection() {
    let mut sim = sim();
    let deadline = sim.now() + secs(30);
    sim.input(Input::Retire { deadline });
    assert!(
        !sim.is_closed(),
        "a client that just connected may be sending its request"
    );
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(OK);
    let client = sim.client_received_str();
    assert!(
        client.ends_with("hello") && client.contains("Connection: close"),
        "{client}"
    );
}

/// `slow` drains what the proxy writes to it at 1,000 bytes every 30 s (progress within
/// the send timeout), after the proxy took 20,000 bytes of a body from the other side,
/// more than `buffer_size`: flow control then keeps the other side unread for longer
/// than `body_read` (60 s) at a time. That side is not at fault (the wait is flow
/// control's, not its silence): it sends again as soon as it may, and the body goes on.
fn drain_slowly(mut sim: proxy_core::sim::Sim, slow: Side) {
    let other = slow.peer();
    sim.set_auto_ack(false);
    let send = |sim: &mut proxy_core::sim::Sim, bytes: &[u8]| match other {
        Side::Client => sim.client_sends(bytes),
        Side::Upstream => sim.upstream_sends(bytes),
    };
    if other == Side::Upstream {
        sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
    }
    send(&mut sim, &[0; 20000]);
    assert!(!sim.session().wants_read(other));
    for step in 1..=8 {
        sim.advance(secs(30));
        sim.ack(slow, 1000);
        // A runtime asks for the deadline after every input.
        sim.advance(Duration::ZERO);
        assert!(
            !sim.is_closed(),
            "{other:?}'s body ended after {} s",
            step * 30
        );
        if sim.session().wants_read(other) {
            send(&mut sim, &[0; 1000]);
        }
    }
}

#[test]
fn a_slow_reader_s_response_outlives_body_read_while_its_writes_progress() {
    drain_slowly(connected(GET), Side::Client);
}

#[test]
fn an_upload_to_a_slow_upstream_outlives_body_read_while_its_writes_progress() {
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n";
    // Dialled once the body fills `buffer_size`.
    let mut gathering = sim();
    gathering.set_auto_connect(true);
    gathering.client_sends(request);
    drain_slowly(gathering, Side::Upstream);
    drain_slowly(streaming(request), Side::Upstream);
}

/// A configuration with `min_request_body_rate` and a `body_read` (its grace) of 10 s.
fn min_rate(bytes_per_second: u32) -> Config {
    let mut config = Config::default();
    config.limits.min_request_body_rate = bytes_per_second;
    config.timeouts.body_read = secs(10);
    config
}

#[test]
fn a_request_body_slower_than_min_request_body_rate_is_408() {
    // 100 B/s after 10 s of grace: the body is due 10 s + (bytes read) / 100 after it
    // began. 50 bytes every 5 s is 10 B/s, within `body_read` between reads.
    let mut sim = Sim::new(min_rate(100));
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    for _ in 0..2 {
        sim.advance(secs(5));
        sim.client_sends(&[b'x'; 50]);
    }
    // 100 bytes at 10 s: due at 11 s.
    assert_eq!(next_timer(&sim), Some(Timer::RequestBodyRate));
    sim.advance(Duration::from_millis(999));
    assert!(sim.client_received().is_empty());
    sim.advance(Duration::from_millis(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 408 "));
    assert_eq!(sim.upstream_connections(), 0, "gathered: never dialled");
    let logged = sim
        .events()
        .iter()
        .any(|e| matches!(e, Event::Request(log) if log.error == Some("request body too slow")));
    assert!(logged, "{:?}", sim.events());
}

#[test]
fn a_request_body_at_min_request_body_rate_goes_through() {
    let mut sim = Sim::new(min_rate(100));
    sim.set_auto_connect(true);
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n");
    // 120 B/s for 166 s, past `buffer_size` (dialled) and to the end.
    for _ in 0..166 {
        sim.advance(secs(1));
        sim.client_sends(&[b'x'; 120]);
        assert!(!sim.is_closed());
    }
    sim.client_sends(&[b'x'; 80]);
    assert!(!sim.session().awaits_client());
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn flow_control_s_wait_is_not_counted_against_min_request_body_rate() {
    // The client sends 1,000 bytes whenever the slow upstream makes room (every
    // 30 s): 33 B/s overall, but never slow while the proxy reads it.
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n";
    let mut config = Config::default();
    config.limits.min_request_body_rate = 500;
    let mut sim = Sim::new(config);
    sim.set_auto_connect(true);
    sim.client_sends(request);
    drain_slowly(sim, Side::Upstream);
}

/// Like [`drain_slowly`], in a tunnel: the upstream streams a large message to a client
/// that drains 1,000 bytes every 20 s, so the proxy does not read the upstream for
/// longer than `tunnel_idle` (60 s), `ping_interval` (30 s) and `pong_timeout` (10 s)
/// at a time. Both peers are alive and the bytes flow: the tunnel stays open.
fn stream_to_a_slow_client(mut sim: proxy_core::sim::Sim, first: &[u8]) {
    sim.set_auto_ack(false);
    sim.upstream_sends(first);
    sim.upstream_sends(&[0; 20000]);
    assert!(!sim.session().wants_read(Side::Upstream));
    for step in 1..=12 {
        sim.advance(secs(20));
        sim.ack(Side::Client, 1000);
        sim.advance(Duration::ZERO);
        assert!(!sim.is_closed(), "closed after {} s", step * 20);
        if sim.session().wants_read(Side::Upstream) {
            sim.upstream_sends(&[0; 1000]);
        }
    }
    assert!(
        !sim.client_received().windows(2).any(|w| w == [0x88, 0x02]),
        "a Close reached the client"
    );
}

#[test]
fn a_websocket_streaming_to_a_slow_client_stays_open() {
    // One binary frame of 1 MB, unmasked (server to client).
    let mut header = vec![0x82, 127];
    header.extend_from_slice(&1_000_000u64.to_be_bytes());
    stream_to_a_slow_client(common::websocket_tunnel(Config::default()), &header);
}

#[test]
fn a_raw_tunnel_streaming_to_a_slow_client_stays_open() {
    stream_to_a_slow_client(common::tunnel(Config::default()), b"");
}

#[test]
fn the_wait_for_a_response_head_starts_when_the_upstream_has_the_request() {
    // The upstream reads the body slowly (500 bytes every 30 s, within the send
    // timeout): it is still reading the request, not keeping its answer back.
    let mut sim = sim();
    sim.set_auto_ack(false);
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n");
    sim.client_sends(&[b'x'; 4000]);
    sim.expect_connect();
    sim.upstream_connected();
    while sim.unacked(Side::Upstream) > 0 {
        sim.advance(secs(30));
        let n = sim.unacked(Side::Upstream).min(500);
        sim.ack(Side::Upstream, n);
        sim.advance(Duration::ZERO);
        assert!(
            sim.client_received().is_empty(),
            "answered while the upstream read the body: {}",
            sim.client_received_str()
        );
    }
    // From the last byte written, the upstream has `upstream_response_head` (60 s).
    sim.advance(secs(59));
    assert!(sim.client_received().is_empty());
    sim.advance(secs(1));
    assert!(sim.client_received_str().starts_with("HTTP/1.1 504 "));
}

#[test]
fn a_pipelined_head_is_timed_from_when_it_is_read_not_from_when_it_came() {
    let mut sim = connected(GET);
    sim.client_sends(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    for _ in 0..3 {
        // The response comes slowly (each piece within body_read).
        sim.advance(secs(50));
        sim.upstream_sends(b"x");
    }
    assert!(sim.client_received_str().ends_with("xxx"));
    assert!(
        !sim.client_received_str().contains(" 408 "),
        "{}",
        sim.client_received_str()
    );
    // The second request goes on once the first is answered (on a pooled connection).
    assert_eq!(sim.releases(), &[true]);
    sim.expect_connect();
    sim.upstream_connected_pooled();
    assert_eq!(sim.upstream_received_str().matches("GET ").count(), 2);
}
