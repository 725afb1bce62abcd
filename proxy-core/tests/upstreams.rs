//! Routing and upstream groups: which server a request reaches, retries on the next
//! server before anything was sent, passive health, layer-4 sessions.

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::{Balance, Config, ConnectError, Input, Proxy, Route, Side, UpstreamGroup};
use std::sync::Arc;
use std::time::Duration;

fn group(servers: &[&str]) -> UpstreamGroup {
    UpstreamGroup {
        servers: servers.iter().map(|s| s.to_string()).collect(),
        max_fails: 1,
        fail_timeout: Duration::from_secs(30),
        ..UpstreamGroup::default()
    }
}

fn routed_config() -> Config {
    let mut config = Config::default();
    config.upstreams.insert("web".into(), group(&["web1:80"]));
    config
        .upstreams
        .insert("api".into(), group(&["api1:80", "api2:80"]));
    config.routes = vec![
        Route {
            path_prefix: "/".into(),
            upstream: "web".into(),
            ..Route::default()
        },
        Route {
            path_prefix: "/api".into(),
            upstream: "api".into(),
            strip_prefix: true,
            ..Route::default()
        },
        Route {
            host: Some("*.ws.example".into()),
            path_prefix: "/".into(),
            upstream: "api".into(),
            ..Route::default()
        },
    ];
    config.validate().unwrap();
    config
}

#[test]
fn requests_are_routed_by_host_and_longest_prefix() {
    let proxy = Proxy::new(Arc::new(routed_config()));
    let mut sim = Sim::with_proxy(&proxy);
    sim.client_sends(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(&*sim.expect_connect().address, "web1:80");
    let mut sim = Sim::with_proxy(&proxy);
    sim.client_sends(b"GET /api/users?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(&*sim.expect_connect().address, "api1:80");
    sim.upstream_connected();
    assert!(
        sim.upstream_received_str()
            .starts_with("GET /users?x=1 HTTP/1.1\r\n"),
        "prefix stripped"
    );
    let mut sim = Sim::with_proxy(&proxy);
    sim.client_sends(b"GET /chat HTTP/1.1\r\nHost: live.ws.example\r\n\r\n");
    assert!(sim.expect_connect().address.starts_with("api"));
}

#[test]
fn no_matching_route_is_404() {
    let mut config = Config::default();
    config.upstreams.insert("web".into(), group(&["web1:80"]));
    config.routes = vec![Route {
        host: Some("example.com".into()),
        upstream: "web".into(),
        ..Route::default()
    }];
    let mut sim = Sim::new(config.clone());
    sim.client_sends(b"GET /a?b HTTP/1.1\r\nHost: other.org\r\n\r\n");
    assert!(sim.client_received_str().starts_with("HTTP/1.1 404 "));
    assert!(!sim.has_pending_connect());
    // The log names the request refused.
    let log = sim.events().iter().find_map(|e| match e {
        proxy_core::Event::Request(log) => Some(log.clone()),
        _ => None,
    });
    let log = log.expect("a request log");
    assert_eq!(
        (&log.method[..], &log.target[..], log.status),
        (&b"GET"[..], &b"/a?b"[..], 404)
    );
    // A HEAD gets the same status and head, and no body (RFC 9110 §9.3.2).
    let mut sim = Sim::new(config);
    sim.client_sends(b"HEAD / HTTP/1.1\r\nHost: other.org\r\n\r\n");
    let response = sim.client_received_str();
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    assert!(
        response.ends_with("\r\n\r\n"),
        "no body after the head: {response:?}"
    );
}

#[test]
fn a_dot_segment_is_400_where_routes_decide_by_path() {
    // `/api/../admin` would be routed by `/api` (or `/`) and served by the backend as
    // `/admin`: past the rule that picked the route.
    let proxy = Proxy::new(Arc::new(routed_config()));
    for target in ["/api/../admin", "/api/%2e%2E/admin", "/./api/x", "/web/."] {
        let mut sim = Sim::with_proxy(&proxy);
        let head = format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n");
        sim.client_sends(head.as_bytes());
        let client = sim.client_received_str();
        assert!(client.starts_with("HTTP/1.1 400 "), "{target}: {client}");
        assert!(client.contains("dot-segment"), "{target}: {client}");
        assert!(!sim.has_pending_connect(), "{target}: nothing dialled");
    }
    // Dots inside a segment, or in the query, are ordinary.
    let mut sim = Sim::with_proxy(&proxy);
    sim.client_sends(b"GET /api/v1.2/..x?next=/../ HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(&*sim.expect_connect().address, "api1:80");
    // Without routes nothing is decided by path, and the target goes on as sent.
    let mut sim = Sim::new(Config::default());
    sim.client_sends(b"GET /a/../b HTTP/1.1\r\nHost: example.com\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    assert!(sim
        .upstream_received_str()
        .starts_with("GET /a/../b HTTP/1.1\r\n"));
}

#[test]
fn round_robin_spreads_requests_across_sessions() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1", "c:1"]));
    let proxy = Proxy::new(Arc::new(config));
    let picks: Vec<String> = (0..6)
        .map(|_| {
            let mut sim = Sim::with_proxy(&proxy);
            sim.client_sends(GET);
            sim.expect_connect().address.to_string()
        })
        .collect();
    assert_eq!(picks, ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]);
}

#[test]
fn least_connections_avoids_the_busy_server() {
    let mut config = Config::default();
    config.upstreams.insert(
        "default".into(),
        UpstreamGroup {
            balance: Balance::LeastConnections,
            ..group(&["a:1", "b:1"])
        },
    );
    let proxy = Proxy::new(Arc::new(config));
    let mut busy = Sim::with_proxy(&proxy);
    busy.client_sends(GET);
    let busy_server = busy.expect_connect().address;
    busy.upstream_connected(); // held: a request in flight
    for _ in 0..3 {
        let mut sim = Sim::with_proxy(&proxy);
        sim.client_sends(GET);
        assert_ne!(sim.expect_connect().address, busy_server);
    }
}

#[test]
fn a_failed_connect_is_retried_on_the_next_server() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1"]));
    let mut sim = Sim::new(config);
    sim.client_sends(GET);
    assert_eq!(&*sim.expect_connect().address, "a:1");
    sim.upstream_fails();
    assert_eq!(&*sim.expect_connect().address, "b:1");
    sim.upstream_connected();
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().ends_with("hello"));
}

#[test]
fn a_connect_timeout_is_retried_on_the_next_server() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1"]));
    let mut sim = Sim::new(config);
    sim.client_sends(GET);
    sim.expect_connect();
    sim.advance(Duration::from_secs(60));
    assert_eq!(sim.releases(), &[false], "the stuck dial is cancelled");
    assert_eq!(&*sim.expect_connect().address, "b:1");
}

#[test]
fn when_every_server_fails_the_client_gets_502() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1"]));
    let mut sim = Sim::new(config);
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_fails();
    sim.expect_connect();
    sim.upstream_fails();
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
    assert!(!sim.has_pending_connect());
}

#[test]
fn an_upgrade_is_never_retried_on_another_server() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1"]));
    let mut sim = Sim::new(config);
    sim.client_sends(&websocket_request());
    sim.expect_connect();
    sim.upstream_fails();
    assert!(!sim.has_pending_connect());
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
}

#[test]
fn a_failing_server_is_skipped_for_fail_timeout_then_tried_again() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1"]));
    let proxy = Proxy::new(Arc::new(config));
    let mut first = Sim::with_proxy(&proxy);
    first.client_sends(GET);
    assert_eq!(&*first.expect_connect().address, "a:1");
    first.upstream_fails(); // a:1 is down for 30 s (max_fails = 1)
    assert_eq!(&*first.expect_connect().address, "b:1");
    let start = first.now();
    for _ in 0..3 {
        let mut sim = Sim::with_proxy_at(&proxy, start + Duration::from_secs(10));
        sim.client_sends(GET);
        assert_eq!(&*sim.expect_connect().address, "b:1");
    }
    let picks: Vec<String> = (0..2)
        .map(|_| {
            let mut sim = Sim::with_proxy_at(&proxy, start + Duration::from_secs(31));
            sim.client_sends(GET);
            sim.expect_connect().address.to_string()
        })
        .collect();
    assert!(picks.contains(&"a:1".to_string()), "{picks:?}");
}

#[test]
fn a_tcp_session_dials_at_once_and_relays_bytes_untouched() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("tls".into(), group(&["backend:443"]));
    let proxy = Proxy::new(Arc::new(config));
    let mut sim = Sim::tcp(&proxy, "tls");
    let target = sim.expect_connect();
    assert_eq!(&*target.address, "backend:443");
    assert!(
        !target.allow_pooled,
        "pooled HTTP connections are never handed to a TCP tunnel"
    );
    sim.client_sends(b"\x16\x03\x01 client hello");
    assert!(sim.upstream_received().is_empty(), "held until connected");
    sim.upstream_connected();
    assert_eq!(sim.upstream_received(), b"\x16\x03\x01 client hello");
    sim.upstream_sends(b"\x16\x03\x03 server hello");
    assert_eq!(sim.client_received(), b"\x16\x03\x03 server hello");
    sim.eof(Side::Client);
    assert_eq!(sim.shutdowns(), &[Side::Upstream]);
    sim.eof(Side::Upstream);
    assert!(sim.is_closed());
}

#[test]
fn a_tcp_session_with_no_reachable_server_closes() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("tls".into(), group(&["backend:443"]));
    let proxy = Proxy::new(Arc::new(config));
    let mut sim = Sim::tcp(&proxy, "tls");
    sim.expect_connect();
    sim.upstream_fails();
    assert!(sim.is_closed());
    assert!(sim.client_received().is_empty());
}

#[test]
fn config_validation_names_the_broken_key() {
    let config = Config {
        routes: vec![Route {
            upstream: "nope".into(),
            ..Route::default()
        }],
        ..Config::default()
    };
    assert!(config
        .validate()
        .unwrap_err()
        .starts_with("routes[0].upstream"));
    let mut config = Config::default();
    config
        .upstreams
        .insert("empty".into(), UpstreamGroup::default());
    assert!(config
        .validate()
        .unwrap_err()
        .starts_with("upstreams.empty.servers"));
}

#[test]
fn a_local_dial_failure_is_503_and_does_not_mark_the_server_down() {
    let mut config = Config::default();
    config
        .upstreams
        .insert("default".into(), group(&["a:1", "b:1"]));
    let proxy = Proxy::new(Arc::new(config));
    let mut failed = Vec::new();
    for _ in 0..2 {
        let mut sim = Sim::with_proxy(&proxy);
        sim.client_sends(GET);
        failed.push(sim.expect_connect().address.to_string());
        sim.input(Input::UpstreamFailed(ConnectError::Local(
            "Too many open files".into(),
        )));
        assert!(
            sim.client_received_str().starts_with("HTTP/1.1 503 "),
            "out of fds is the proxy's own trouble: {}",
            sim.client_received_str()
        );
        assert!(!sim.has_pending_connect(), "no other server is tried");
    }
    failed.sort();
    assert_eq!(failed, ["a:1", "b:1"]);
    // With max_fails = 1, a failure blamed on a server would take it out for 30 s:
    // both are still picked.
    let mut picked = Vec::new();
    for _ in 0..2 {
        let mut sim = Sim::with_proxy(&proxy);
        sim.client_sends(GET);
        picked.push(sim.expect_connect().address.to_string());
    }
    picked.sort();
    assert_eq!(picked, ["a:1", "b:1"]);
}
