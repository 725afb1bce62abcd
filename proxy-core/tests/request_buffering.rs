//! `request_buffering` (on by default): a request's body, up to `buffer_size` of it, is
//! gathered before the upstream is dialled, so that a client sending it slowly holds
//! only its own connection, and a body the proxy refuses never reaches the upstream.

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::timer::Timer;
use proxy_core::{Config, Event, Side};
use std::time::Duration;

const HEAD: &[u8] = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";

fn no_buffering() -> Config {
    Config {
        request_buffering: false,
        ..Config::default()
    }
}

#[test]
fn the_upstream_is_dialled_once_the_body_is_whole_and_gets_it_all_behind_the_head() {
    let mut sim = sim();
    sim.client_sends(HEAD);
    sim.client_sends(b"hello");
    assert!(!sim.has_pending_connect(), "dialled before the body came");
    assert_eq!(
        sim.session().next_timer().map(|(_, t)| t),
        Some(Timer::RequestBodyRead)
    );
    sim.advance(Duration::from_secs(50));
    sim.client_sends(b" world");
    sim.expect_connect();
    sim.upstream_connected();
    let upstream = sim.upstream_received_str();
    assert!(
        upstream.starts_with("POST /form HTTP/1.1\r\n"),
        "{upstream}"
    );
    assert!(upstream.ends_with("\r\n\r\nhello world"), "{upstream}");
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 200 OK"));
    // The connection is kept alive and the next request dials as usual.
    sim.client_sends(GET);
    sim.expect_connect();
}

#[test]
fn a_chunked_body_is_gathered_to_its_last_chunk() {
    let mut sim = sim();
    sim.client_sends(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    assert!(!sim.has_pending_connect());
    sim.client_sends(b"0\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    assert!(sim
        .upstream_received_str()
        .ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
}

#[test]
fn a_refused_body_never_reaches_the_upstream() {
    // Bad chunk framing: 400, and no upstream was asked for.
    let mut sim = sim();
    sim.client_sends(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    sim.client_sends(b"zz\r\n");
    assert!(sim.client_received_str().starts_with("HTTP/1.1 400 "));
    assert!(!sim.has_pending_connect());
    assert_eq!(sim.upstream_connections(), 0);
    assert!(sim.releases().is_empty());
    // The client gives up part way: closed, the upstream never dialled.
    let mut sim = common::sim();
    sim.client_sends(HEAD);
    sim.client_sends(b"hel");
    sim.eof(Side::Client);
    assert!(sim.is_closed());
    assert!(!sim.has_pending_connect());
    assert!(sim.releases().is_empty());
    assert!(sim
        .events()
        .iter()
        .all(|e| !matches!(e, Event::UpstreamConnectTimeout)));
}

#[test]
fn a_slow_body_holds_no_upstream_connection_until_its_first_buffer_size() {
    let config = Config {
        buffer_size: 2048,
        ..Config::default()
    };
    let mut sim = Sim::new(config);
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    // One byte every 50 s: within body_read, and never dialled.
    for _ in 0..100 {
        sim.advance(Duration::from_secs(50));
        sim.client_sends(b"x");
        assert!(!sim.is_closed());
    }
    assert!(!sim.has_pending_connect());
    sim.client_sends(&[b'y'; 2048 - 100]);
    sim.expect_connect();
    assert!(
        !sim.session().wants_read(Side::Client),
        "full until dialled"
    );
    sim.upstream_connected();
    assert!(sim.session().wants_read(Side::Client));
}

#[test]
fn expect_100_continue_dials_at_the_head_since_its_client_waits_for_the_upstream() {
    let mut sim = sim();
    sim.client_sends(
        b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(sim.client_received_str(), "HTTP/1.1 100 Continue\r\n\r\n");
    sim.client_sends(b"data");
    assert!(sim.upstream_received_str().ends_with("\r\n\r\ndata"));
}

#[test]
fn with_request_buffering_off_the_upstream_is_dialled_at_the_head() {
    let mut sim = Sim::new(no_buffering());
    sim.client_sends(HEAD);
    sim.expect_connect();
    sim.upstream_connected();
    sim.client_sends(b"hello");
    assert!(sim.upstream_received_str().ends_with("\r\n\r\nhello"));
    // An early answer reaches the client while the body still comes.
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(sim.client_received_str().ends_with("ok"));
}

#[test]
fn requests_without_a_body_or_whose_body_came_with_the_head_dial_at_once() {
    for request in [
        GET,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        let mut sim = sim();
        sim.client_sends(request);
        sim.expect_connect();
    }
}

#[test]
fn a_client_that_half_closes_after_its_body_still_gets_the_answer() {
    let mut sim = sim();
    sim.client_sends(HEAD);
    sim.client_sends(b"hello world");
    sim.eof(Side::Client);
    sim.expect_connect();
    sim.upstream_connected();
    assert!(sim.upstream_received_str().ends_with("\r\n\r\nhello world"));
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 200 OK"));
    assert!(sim.client_received_str().ends_with("hello"));
}
