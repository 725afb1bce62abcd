//! `limits.max_request_body`: a request body over it gets `413 Content Too Large`, and
//! the upstream never receives a byte past it. A `Content-Length` over it is refused
//! at the head; a chunked body when the chunk that would cross it begins.

mod common;
use common::*;
use proptest::prelude::*;
use proxy_core::sim::Sim;
use proxy_core::{Config, Event, Route};

fn limited(max: u64, request_buffering: bool) -> Sim {
    let mut config = Config {
        request_buffering,
        ..Config::default()
    };
    config.limits.max_request_body = max;
    Sim::new(config)
}

/// Checks the client got a closing `413` and the request was logged with it.
fn assert_413(sim: &Sim) {
    let response = sim.client_received_str();
    assert!(
        response.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{response}"
    );
    assert!(response.contains("Connection: close\r\n"), "{response}");
    assert!(response.ends_with("request body too large\n"), "{response}");
    let logged = sim.events().iter().find_map(|e| match e {
        Event::Request(r) => Some(r.status),
        _ => None,
    });
    assert_eq!(logged, Some(413));
}

fn post_with_length(n: usize) -> Vec<u8> {
    let mut request =
        format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    request.extend(std::iter::repeat_n(b'x', n));
    request
}

const CHUNKED_HEAD: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn a_content_length_over_the_limit_is_413_before_anything_is_dialled() {
    let mut sim = limited(10, true);
    sim.client_sends(&post_with_length(11));
    assert_413(&sim);
    assert_eq!(sim.upstream_connections(), 0);
    assert!(!sim.has_pending_connect());
    // Without buffering the head alone is refused the same way.
    let mut sim = limited(10, false);
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000\r\n\r\n");
    assert_413(&sim);
    assert!(!sim.has_pending_connect());
}

#[test]
fn a_body_of_exactly_the_limit_goes_through_whole() {
    let mut sim = limited(10, true);
    sim.client_sends(&post_with_length(10));
    sim.expect_connect();
    sim.upstream_connected();
    assert!(sim.upstream_received_str().ends_with("\r\n\r\nxxxxxxxxxx"));
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn expect_100_continue_over_the_limit_gets_413_instead_of_100() {
    let mut sim = limited(1024, false);
    sim.client_sends(
        b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_413(&sim);
    assert!(!sim.client_received_str().contains("100 Continue"));
    assert!(!sim.has_pending_connect());
}

#[test]
fn no_limit_by_default() {
    assert_eq!(Config::default().limits.max_request_body, 0);
    let mut sim = limited(0, false);
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000\r\n\r\n");
    sim.expect_connect();
}

#[test]
fn a_route_s_own_limit_takes_the_place_of_the_global_one() {
    let mut config = Config::default();
    config.limits.max_request_body = 10;
    config.routes = vec![
        Route::default(),
        Route {
            path_prefix: "/upload".into(),
            max_request_body: Some(100),
            ..Route::default()
        },
        Route {
            path_prefix: "/bulk".into(),
            max_request_body: Some(0), // no limit
            ..Route::default()
        },
    ];
    let post = |path: &str, n: usize| {
        let mut sim = Sim::new(config.clone());
        let mut request =
            format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n").into_bytes();
        request.extend(std::iter::repeat_n(b'x', n));
        sim.client_sends(&request);
        let status = sim.client_received_str().get(9..12).map(str::to_owned);
        (status, sim.has_pending_connect())
    };
    assert_eq!(post("/api", 50), (Some("413".into()), false));
    assert_eq!(post("/upload/a", 50), (None, true));
    assert_eq!(post("/upload/a", 101), (Some("413".into()), false));
    assert_eq!(post("/bulk", 100_000), (None, true));
}

#[test]
fn a_chunked_body_within_the_limit_goes_through() {
    let mut sim = limited(10, true);
    sim.client_sends(CHUNKED_HEAD);
    sim.client_sends(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    assert!(sim
        .upstream_received_str()
        .ends_with("\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"));
}

#[test]
fn a_chunked_body_crossing_the_limit_while_gathered_never_reaches_an_upstream() {
    let mut sim = limited(10, true);
    sim.client_sends(CHUNKED_HEAD);
    sim.client_sends(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n");
    assert_413(&sim);
    assert_eq!(sim.upstream_connections(), 0);
}

#[test]
fn a_chunked_body_crossing_the_limit_while_streamed_stops_before_the_crossing_chunk() {
    let mut sim = limited(10, false);
    sim.client_sends(CHUNKED_HEAD);
    sim.expect_connect();
    sim.upstream_connected();
    sim.client_sends(b"5\r\nhello\r\n");
    assert!(sim
        .upstream_received_str()
        .ends_with("\r\n\r\n5\r\nhello\r\n"));
    sim.take_upstream_received();
    sim.client_sends(b"6\r\nworld!\r\n0\r\n\r\n");
    assert!(
        sim.upstream_received().is_empty(),
        "the upstream got {:?}",
        sim.upstream_received_str()
    );
    assert_413(&sim);
    assert_eq!(
        sim.releases(),
        [false],
        "a cut-off request's connection is not reused"
    );
}

proptest! {
    /// Whatever the chunk sizes and read splits: the client gets `413` exactly when the
    /// body is over the limit, and the upstream never receives more payload than it.
    #[test]
    fn the_upstream_never_receives_more_than_the_limit(
        sizes in prop::collection::vec(1usize..40, 0..8),
        max in 1u64..120,
        piece in 1usize..64,
        buffering: bool,
    ) {
        let mut sim = limited(max, buffering);
        sim.set_auto_connect(true);
        let mut request = CHUNKED_HEAD.to_vec();
        for (i, &size) in sizes.iter().enumerate() {
            request.extend(format!("{size:x}\r\n").bytes());
            request.extend(std::iter::repeat_n(b'A' + (i % 26) as u8, size));
            request.extend(b"\r\n");
        }
        request.extend(b"0\r\n\r\n");
        sim.client_sends_in_pieces(&request, piece);
        sim.upstream_sends(OK);
        let total: usize = sizes.iter().sum();
        let upstream = sim.upstream_received_str();
        let forwarded_payload = upstream
            .split_once("\r\n\r\n")
            .map_or(0, |(_, body)| body.bytes().filter(u8::is_ascii_uppercase).count());
        prop_assert!(forwarded_payload as u64 <= max, "{forwarded_payload} > {max}");
        let status = sim.client_received_str().get(9..12).map(str::to_owned);
        if total as u64 > max {
            prop_assert_eq!(status.as_deref(), Some("413"));
        } else {
            prop_assert_eq!(status.as_deref(), Some("200"));
            prop_assert_eq!(forwarded_payload, total);
        }
    }
}
