//! Steady-state forwarding allocates nothing: tunnel chunks (raw and WebSocket) and
//! body chunks move as the `Bytes` that were read, through buffers that are reused.

mod common;
use bytes::Bytes;
use common::*;
use proxy_core::{ClientInfo, Config, Input, Output, Session, Side};
use std::sync::Arc;

/// Feeds `chunks` from `from` into an open session and reports every write done;
/// returns the allocations made while doing so.
fn allocations_forwarding(
    session: &mut Session,
    now: std::time::Instant,
    from: Side,
    chunks: Vec<Bytes>,
) -> u64 {
    let mut forwarded = 0;
    let info = allocation_counter::measure(|| {
        for chunk in chunks {
            session.handle_input(now, Input::Data(from, chunk));
            while let Some(output) = session.poll_output() {
                if let Output::Send(side, bytes) = output {
                    forwarded += bytes.len();
                    session.handle_input(now, Input::Written(side, bytes.len()));
                }
            }
        }
    });
    assert!(forwarded > 0);
    info.count_total
}

/// A buffer as a runtime hands it over: already shared (a `Bytes` made from a `Vec`
/// allocates its shared header on its first split, in the runtime's read, not here).
fn shared(bytes: Vec<u8>) -> Bytes {
    let bytes = Bytes::from(bytes);
    drop(bytes.clone());
    bytes
}

/// A session driven to an open tunnel by `request` and `response`.
fn open(request: &[u8], response: &[u8]) -> (Session, std::time::Instant) {
    let now = proxy_core::sim::Sim::new(Config::default()).now();
    let mut session = Session::new(Arc::new(Config::default()), ClientInfo::default(), now);
    session.handle_input(
        now,
        Input::Data(Side::Client, Bytes::copy_from_slice(request)),
    );
    session.handle_input(now, Input::UpstreamConnected { reused: false });
    session.handle_input(
        now,
        Input::Data(Side::Upstream, Bytes::copy_from_slice(response)),
    );
    while let Some(output) = session.poll_output() {
        if let Output::Send(side, bytes) = output {
            session.handle_input(now, Input::Written(side, bytes.len()));
        }
    }
    (session, now)
}

#[test]
fn raw_tunnel_chunks_are_forwarded_without_allocating() {
    let (mut session, now) = open(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\n",
    );
    // Warm up queues once, then measure.
    allocations_forwarding(
        &mut session,
        now,
        Side::Client,
        vec![Bytes::from(vec![1u8; 65536])],
    );
    let chunks = (0..100).map(|_| Bytes::from(vec![2u8; 65536])).collect();
    assert_eq!(
        allocations_forwarding(&mut session, now, Side::Client, chunks),
        0
    );
    let chunks = (0..100).map(|_| Bytes::from(vec![3u8; 65536])).collect();
    assert_eq!(
        allocations_forwarding(&mut session, now, Side::Upstream, chunks),
        0
    );
}

#[test]
fn websocket_tunnel_data_frames_are_forwarded_without_allocating() {
    let (mut session, now) = open(&websocket_request(), &websocket_101());
    let frame = |fill: u8| shared(encode_frame(true, 2, true, &vec![fill; 65536]));
    allocations_forwarding(&mut session, now, Side::Client, vec![frame(1)]);
    let chunks = (0..100).map(|i| frame(i as u8)).collect();
    assert_eq!(
        allocations_forwarding(&mut session, now, Side::Client, chunks),
        0
    );
    let server = |fill: u8| shared(encode_frame(true, 2, false, &vec![fill; 65536]));
    allocations_forwarding(&mut session, now, Side::Upstream, vec![server(1)]);
    let chunks = (0..100).map(|i| server(i as u8)).collect();
    assert_eq!(
        allocations_forwarding(&mut session, now, Side::Upstream, chunks),
        0
    );
}

#[test]
fn content_length_body_chunks_are_forwarded_without_allocating() {
    let now = proxy_core::sim::Sim::new(Config::default()).now();
    let mut session = Session::new(Arc::new(Config::default()), ClientInfo::default(), now);
    session.handle_input(
        now,
        Input::Data(
            Side::Client,
            Bytes::from_static(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n"),
        ),
    );
    // The first `buffer_size` of the body is gathered before the upstream is dialled.
    session.handle_input(
        now,
        Input::Data(Side::Client, Bytes::from(vec![0u8; 16384])),
    );
    session.handle_input(now, Input::UpstreamConnected { reused: false });
    allocations_forwarding(
        &mut session,
        now,
        Side::Client,
        vec![Bytes::from(vec![0u8; 16384])],
    );
    let chunks = (0..100).map(|_| Bytes::from(vec![1u8; 16384])).collect();
    assert_eq!(
        allocations_forwarding(&mut session, now, Side::Client, chunks),
        0
    );
}

#[test]
fn an_idle_websocket_tunnel_holds_about_a_kilobyte_of_heap() {
    // DESIGN.md: an idle tunnel holds as little as possible (the target for a whole
    // runtime task is 2 KiB). This is the core's share: the session and its tunnel.
    let proxy = proxy_core::Proxy::new(Arc::new(Config::default()));
    let now = proxy_core::sim::Sim::new(Config::default()).now();
    let (request, response) = (shared(websocket_request()), shared(websocket_101()));
    let frame = shared(encode_frame(true, 1, true, b"hi"));
    let mut kept = None;
    let info = allocation_counter::measure(|| {
        let client = ClientInfo {
            addr: Some(CLIENT),
            tls: false,
            redirect_to_https: None,
        };
        let mut session = Box::new(proxy.session(client, now));
        for input in [
            Input::Data(Side::Client, request),
            Input::UpstreamConnected { reused: false },
            Input::Data(Side::Upstream, response),
            Input::Data(Side::Client, frame),
        ] {
            session.handle_input(now, input);
            while let Some(output) = session.poll_output() {
                if let Output::Send(side, bytes) = output {
                    session.handle_input(now, Input::Written(side, bytes.len()));
                }
            }
        }
        kept = Some(session);
    });
    assert!(
        info.bytes_current <= 1152,
        "{} bytes in {} allocations",
        info.bytes_current,
        info.count_current
    );
    assert!(kept.is_some());
}

const CLIENT: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

#[test]
fn a_kept_alive_exchange_allocates_only_what_it_hands_out() {
    // What is left per exchange: the two forwarded heads (each a buffer and the
    // `Bytes` header sharing it), the exchange's state and the log event. Field
    // positions reuse the session's room, and the `Connect` target's address is the
    // configuration's, shared.
    let now = proxy_core::sim::Sim::new(Config::default()).now();
    let proxy = proxy_core::Proxy::new(Arc::new(Config::default()));
    let client = ClientInfo {
        addr: Some(CLIENT),
        tls: false,
        redirect_to_https: None,
    };
    let mut session = proxy.session(client, now);
    let mut exchange = || {
        allocation_counter::measure(|| {
            for input in [
                Input::Data(
                    Side::Client,
                    Bytes::from_static(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n"),
                ),
                Input::UpstreamConnected { reused: true },
                Input::Data(
                    Side::Upstream,
                    Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
                ),
            ] {
                session.handle_input(now, input);
                while let Some(output) = session.poll_output() {
                    if let Output::Send(side, bytes) = output {
                        session.handle_input(now, Input::Written(side, bytes.len()));
                    }
                }
            }
        })
        .count_total
    };
    exchange();
    assert_eq!(exchange(), 6);
}

/// Every tunnel holds one `Session` inline in its runtime task (tokio's task cell, in
/// allocator size classes of 128 bytes): 448 bytes, with the runtime's socket state
/// beside it, keep the cell at 896 and an idle WebSocket under 2 KiB (the zero-copy
/// pipes' state took the 24 bytes the shutdown deadlines gave up when they moved into a
/// box). A field that only HTTP exchanges need belongs in the boxed room a tunnel drops.
#[test]
fn a_session_stays_small_enough_for_an_idle_tunnel_under_2_kib() {
    let size = std::mem::size_of::<Session>();
    assert!(size <= 448, "Session is {size} bytes");
}
