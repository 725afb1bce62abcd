//! Tunnels after an accepted upgrade: flow control, half-close, idle and fin timeouts.

mod common;
use common::*;
use proxy_core::timer::Timer;
use proxy_core::{Config, Event, Side, TunnelEnd};
use std::time::Duration;

fn tunnel_end(sim: &proxy_core::sim::Sim) -> Option<TunnelEnd> {
    sim.events().iter().find_map(|e| match e {
        Event::Tunnel(t) => Some(t.end),
        _ => None,
    })
}

#[test]
fn tunnel_bytes_arrive_complete_and_in_order_both_ways() {
    let mut sim = tunnel(Config::default());
    for i in 0..100u8 {
        sim.client_sends(&[i; 7]);
        sim.upstream_sends(&[i; 3]);
    }
    let up: Vec<u8> = (0..100u8).flat_map(|i| [i; 7]).collect();
    let down: Vec<u8> = (0..100u8).flat_map(|i| [i; 3]).collect();
    assert_eq!(sim.upstream_received(), &up[..]);
    assert_eq!(sim.client_received(), &down[..]);
}

#[test]
fn flow_control_stops_reading_at_buffer_size_until_writes_progress() {
    let mut sim = tunnel(Config {
        buffer_size: 1024,
        ..Config::default()
    });
    sim.set_auto_ack(false);
    assert!(sim.session().wants_read(Side::Client));
    sim.client_sends(&[1; 1000]);
    assert!(sim.session().wants_read(Side::Client), "1000 < 1024");
    sim.client_sends(&[2; 100]);
    assert!(
        !sim.session().wants_read(Side::Client),
        "1100 in flight >= 1024"
    );
    assert!(
        sim.session().wants_read(Side::Upstream),
        "the other direction is independent"
    );
    sim.ack(Side::Upstream, 500);
    assert!(
        sim.session().wants_read(Side::Client),
        "600 in flight < 1024"
    );
}

#[test]
fn read_room_is_what_keeps_the_bytes_in_flight_within_buffer_size() {
    let mut sim = tunnel(Config {
        buffer_size: 1024,
        ..Config::default()
    });
    sim.set_auto_ack(false);
    assert_eq!(sim.session().read_room(Side::Client), 1024);
    sim.client_sends(&[1; 1000]);
    assert_eq!(sim.session().read_room(Side::Client), 24);
    assert_eq!(sim.session().read_room(Side::Upstream), 1024, "independent");
    sim.client_sends(&[2; 24]);
    assert_eq!(sim.session().read_room(Side::Client), 0);
    sim.ack(Side::Upstream, 500);
    assert_eq!(sim.session().read_room(Side::Client), 500);
    sim.eof(Side::Client);
    assert_eq!(
        sim.session().read_room(Side::Client),
        0,
        "nothing after EOF"
    );
}

#[test]
fn client_half_close_shuts_upstream_write_and_keeps_the_other_direction() {
    let mut sim = tunnel(Config::default());
    sim.eof(Side::Client);
    assert_eq!(sim.shutdowns(), &[Side::Upstream]);
    assert!(!sim.is_closed());
    sim.upstream_sends(b"still flowing");
    assert_eq!(sim.client_received(), b"still flowing");
    sim.eof(Side::Upstream);
    assert_eq!(sim.shutdowns(), &[Side::Upstream, Side::Client]);
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::Closed));
}

#[test]
fn upstream_half_close_shuts_client_write_and_keeps_the_other_direction() {
    let mut sim = tunnel(Config::default());
    sim.eof(Side::Upstream);
    assert_eq!(sim.shutdowns(), &[Side::Client]);
    sim.client_sends(b"late");
    assert!(sim.upstream_received().ends_with(b"late"));
    sim.eof(Side::Client);
    assert!(sim.is_closed());
}

#[test]
fn fin_timeout_closes_a_half_closed_tunnel() {
    let mut sim = tunnel(Config::default());
    sim.eof(Side::Client);
    assert_eq!(sim.session().next_timer().map(|(_, t)| t), Some(Timer::Fin));
    sim.advance(Duration::from_secs(29));
    assert!(!sim.is_closed());
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::FinTimeout));
}

#[test]
fn tunnel_idle_timeout_closes_after_60s_of_silence() {
    let mut sim = tunnel(Config::default());
    sim.advance(Duration::from_secs(59));
    assert!(!sim.is_closed());
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::IdleTimeout));
}

#[test]
fn tunnel_traffic_in_either_direction_resets_the_idle_timeout() {
    let mut sim = tunnel(Config::default());
    for i in 0..10 {
        sim.advance(Duration::from_secs(50));
        if i % 2 == 0 {
            sim.client_sends(b"x");
        } else {
            sim.upstream_sends(b"y");
        }
    }
    assert!(!sim.is_closed(), "500 s of traffic every 50 s");
    sim.advance(Duration::from_secs(60));
    assert!(sim.is_closed());
}

#[test]
fn tunnel_idle_timeout_is_separate_from_the_upstream_read_timeout() {
    let mut config = Config::default();
    config.timeouts.tunnel_idle = Duration::from_secs(3600);
    config.timeouts.upstream_response_head = Duration::from_secs(1);
    config.timeouts.body_read = Duration::from_secs(1);
    let mut sim = tunnel(config);
    sim.advance(Duration::from_secs(600));
    assert!(!sim.is_closed());
}

#[test]
fn reset_of_either_side_ends_the_tunnel() {
    let mut sim = tunnel(Config::default());
    sim.reset(Side::Upstream);
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::Reset(Side::Upstream)));
}

#[test]
fn a_stuck_write_ends_the_tunnel_at_the_send_timeout() {
    let mut sim = tunnel(Config::default());
    sim.set_auto_ack(false);
    sim.upstream_sends(b"the client never reads this");
    sim.advance(Duration::from_secs(59));
    sim.upstream_sends(b"more");
    assert!(!sim.is_closed(), "idle timer reset by traffic");
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::SendTimeout));
}

#[test]
fn tunnel_log_counts_bytes_each_way() {
    let mut sim = tunnel(Config::default());
    sim.client_sends(b"12345");
    sim.upstream_sends(b"123");
    sim.eof(Side::Client);
    sim.eof(Side::Upstream);
    let log = sim.events().iter().find_map(|e| match e {
        Event::Tunnel(t) => Some(t.clone()),
        _ => None,
    });
    let log = log.expect("tunnel logged");
    assert_eq!((log.client_to_upstream, log.upstream_to_client), (5, 3));
}

#[test]
fn drain_closes_a_tunnel_at_the_deadline() {
    let mut sim = tunnel(Config::default());
    let deadline = sim.now() + Duration::from_secs(10);
    sim.input(proxy_core::Input::Drain { deadline });
    sim.advance(Duration::from_secs(9));
    assert!(!sim.is_closed());
    sim.advance(Duration::from_secs(1));
    assert!(sim.is_closed());
    assert_eq!(tunnel_end(&sim), Some(TunnelEnd::Drain));
}

#[test]
fn retire_lets_an_open_tunnel_run_until_its_deadline() {
    let mut sim = tunnel(Config::default());
    let deadline = sim.now() + Duration::from_secs(20);
    sim.input(proxy_core::Input::Retire { deadline });
    sim.advance(Duration::from_secs(19));
    sim.client_sends(b"still here");
    assert!(sim.upstream_received().ends_with(b"still here"));
    assert!(!sim.is_closed());
    sim.advance(Duration::from_secs(1));
    // Drained at the deadline; a raw tunnel is closed within fin.
    sim.advance(Duration::from_secs(30));
    assert!(sim.is_closed());
}
