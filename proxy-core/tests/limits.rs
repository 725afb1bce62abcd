//! Connection, rate and tunnel limits: the excess gets 503, and what a session
//! counted is given back when it ends, however it ends.

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::{Config, Proxy, Side};
use std::sync::Arc;
use std::time::Duration;

fn proxy(configure: impl FnOnce(&mut Config)) -> Proxy {
    let mut config = Config::default();
    configure(&mut config);
    Proxy::new(Arc::new(config))
}

fn status_of(sim: &Sim) -> String {
    sim.client_received_str().chars().take(12).collect()
}

#[test]
fn connections_over_max_connections_get_503() {
    let proxy = proxy(|c| c.limits.max_connections = 2);
    let first = Sim::with_proxy(&proxy);
    let _second = Sim::with_proxy(&proxy);
    let mut third = Sim::with_proxy(&proxy);
    third.client_sends(GET);
    assert_eq!(status_of(&third), "HTTP/1.1 503");
    assert!(!third.has_pending_connect());
    drop(first);
    let mut fourth = Sim::with_proxy(&proxy);
    fourth.client_sends(GET);
    assert!(
        fourth.has_pending_connect(),
        "a slot was given back when a session ended"
    );
}

#[test]
fn connections_over_the_per_ip_limit_get_503() {
    let proxy = proxy(|c| c.limits.max_connections_per_ip = 1);
    let _first = Sim::with_proxy(&proxy);
    let mut second = Sim::with_proxy(&proxy);
    second.client_sends(GET);
    assert_eq!(status_of(&second), "HTTP/1.1 503");
    assert_eq!(proxy.status(second.now()).connections, 1);
}

#[test]
fn new_connections_over_the_rate_get_503_until_tokens_refill() {
    let proxy = proxy(|c| c.limits.new_connections_per_ip_per_second = 2);
    let start = Sim::new(Config::default()).now(); // a clock origin, from another proxy
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut sim = Sim::with_proxy_at(&proxy, start);
        sim.client_sends(GET);
        statuses.push(sim.has_pending_connect());
    }
    assert_eq!(statuses, [true, true, false], "a burst of 2, then refused");
    let mut later = Sim::with_proxy_at(&proxy, start + Duration::from_millis(500));
    later.client_sends(GET);
    assert!(
        later.has_pending_connect(),
        "one token back after half a second"
    );
}

#[test]
fn upgrades_over_max_tunnels_get_503_and_slots_come_back() {
    let proxy = proxy(|c| c.limits.max_tunnels = 1);
    let mut first = Sim::with_proxy(&proxy);
    first.client_sends(&websocket_request());
    first.expect_connect();
    first.upstream_connected();
    first.upstream_sends(&websocket_101());
    assert_eq!(proxy.status(first.now()).tunnels, 1);
    let mut second = Sim::with_proxy(&proxy);
    second.client_sends(&websocket_request());
    assert_eq!(status_of(&second), "HTTP/1.1 503");
    let mut plain = Sim::with_proxy(&proxy);
    plain.client_sends(GET);
    assert!(
        plain.has_pending_connect(),
        "plain requests are not tunnels"
    );
    first.eof(Side::Client);
    first.reset(Side::Upstream);
    assert_eq!(proxy.status(first.now()).tunnels, 0);
}

#[test]
fn a_refused_upgrade_gives_its_tunnel_slot_back() {
    let proxy = proxy(|c| c.limits.max_tunnels = 1);
    let mut sim = Sim::with_proxy(&proxy);
    sim.client_sends(&websocket_request());
    sim.expect_connect();
    sim.upstream_connected();
    assert_eq!(
        proxy.status(sim.now()).tunnels,
        1,
        "reserved while the upgrade is in flight"
    );
    sim.upstream_sends(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(proxy.status(sim.now()).tunnels, 0);
}

#[test]
fn shared_counts_return_to_zero_however_sessions_end() {
    let proxy = proxy(|_| {});
    let mut sims: Vec<Sim> = Vec::new();
    let mut tunnel = Sim::with_proxy(&proxy);
    tunnel.client_sends(&websocket_request());
    tunnel.expect_connect();
    tunnel.upstream_connected();
    tunnel.upstream_sends(&websocket_101());
    sims.push(tunnel);
    let mut in_flight = Sim::with_proxy(&proxy);
    in_flight.client_sends(GET);
    in_flight.expect_connect();
    sims.push(in_flight);
    let mut done = Sim::with_proxy(&proxy);
    done.client_sends(GET);
    done.expect_connect();
    done.upstream_connected();
    done.upstream_sends(OK);
    sims.push(done);
    let now = sims[0].now();
    let status = proxy.status(now);
    assert_eq!((status.connections, status.tunnels), (3, 1));
    assert_eq!(
        status.servers[0].active, 2,
        "the tunnel and the request in flight"
    );
    drop(sims);
    let status = proxy.status(now);
    assert_eq!(
        (status.connections, status.tunnels, status.servers[0].active),
        (0, 0, 0)
    );
}

#[test]
fn tcp_sessions_count_as_tunnels_and_are_refused_over_the_limit() {
    let mut config = Config::default();
    config.limits.max_tunnels = 1;
    config.upstreams.insert(
        "tls".into(),
        proxy_core::UpstreamGroup {
            servers: vec!["backend:443".into()],
            ..Default::default()
        },
    );
    let proxy = Proxy::new(Arc::new(config));
    let mut first = Sim::tcp(&proxy, "tls");
    first.expect_connect();
    first.upstream_connected();
    assert_eq!(proxy.status(first.now()).tunnels, 1);
    let second = Sim::tcp(&proxy, "tls");
    assert!(second.is_closed());
    let refused = second.events().iter().any(|e| {
        matches!(e, proxy_core::Event::Tunnel(t) if t.end == proxy_core::TunnelEnd::Refused(proxy_core::ProxyError::TooManyTunnels))
    });
    assert!(refused, "the refusal says why");
}
