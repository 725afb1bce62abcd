//! Listening sockets with a backlog fit for bursts of connections.
//!
//! `TcpListener::bind` (the standard library's, and tokio's and smol's through it or
//! mio) asks for a backlog of 128: a burst of more new connections than that, faster
//! than the accept loop takes them (a load test starting 1,000 clients at once),
//! overflows the queue, and the kernel drops their SYNs; each such client waits a
//! second for its retry. nginx asks for 511, HAProxy for its `maxconn`.

use crate::setup::ListenMode;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// The accept queue asked for; the kernel caps it at `net.core.somaxconn` (4,096 on
/// current Linux).
pub const LISTEN_BACKLOG: i32 = 4096;

/// [`bind_listener`] for a listener in `mode`. An HTTP listener's connections
/// acknowledge a request with its response (`acks.rs`). A layer-4 listener keeps
/// Linux's default, as HAProxy's TCP mode does: there the proxy cannot tell when a
/// client waits for an acknowledgement before it sends more.
pub fn bind_listener_for(address: SocketAddr, mode: &ListenMode) -> io::Result<TcpListener> {
    let listener = bind_listener(address)?;
    if mode.is_http() {
        crate::acks::defer_acks(&listener);
    }
    Ok(listener)
}

/// `count` listeners on `address` for `mode`, one per worker thread, in one
/// `SO_REUSEPORT` group: the kernel spreads new connections over them by a hash of
/// each connection's addresses, so every thread gets its share whichever is busy (a
/// listener shared by all threads goes to whichever wakes first, in bursts: the one
/// that accepted the last connection). One listener (`count` 1) is a plain one.
///
/// Binding `address` without `SO_REUSEPORT` first keeps a second proxy started on
/// the same address failing with "address in use" rather than quietly taking a share
/// of the connections: a group admits only sockets that ask to join it.
pub fn bind_listeners_for(
    address: SocketAddr,
    mode: &ListenMode,
    count: usize,
) -> io::Result<Vec<TcpListener>> {
    if count <= 1 {
        return bind_listener_for(address, mode).map(|listener| vec![listener]);
    }
    if address.port() != 0 {
        // Bound, never listening: it takes no connection.
        socket_for(address)?.bind(&address.into())?;
    }
    let first = bind(address, true)?;
    let address = first.local_addr()?; // the port picked, if asked for port 0
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind(address, true)?);
    }
    if mode.is_http() {
        listeners.iter().for_each(crate::acks::defer_acks);
    }
    Ok(listeners)
}

/// Binds `address` (with `SO_REUSEADDR` on Unix, as `TcpListener::bind` does) and
/// listens with [`LISTEN_BACKLOG`]. The listener is non-blocking, ready for a
/// runtime's `from_std`.
pub fn bind_listener(address: SocketAddr) -> io::Result<TcpListener> {
    bind(address, false)
}

/// [`bind_listener`], joining `address`'s `SO_REUSEPORT` group if `reuse_port`.
fn bind(address: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = socket_for(address)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A TCP socket for `address`, with `SO_REUSEADDR` on Unix (as `TcpListener::bind`).
fn socket_for(address: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Duration;

    /// 290 clients connect one after another to a listener nobody accepts on: each
    /// completes its handshake at once (the queue holds them). With a backlog of 128,
    /// the ones past it would wait a second for the SYN retry and miss the 500 ms
    /// given. (A kernel whose `somaxconn` is lower caps the burst tried.)
    #[test]
    fn a_burst_larger_than_128_connects_without_waiting() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let burst = somaxconn.min(300) - 10;
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let held: Vec<TcpStream> = (0..burst)
            .map(|i| {
                TcpStream::connect_timeout(&address, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i}: {e}"))
            })
            .collect();
        assert_eq!(held.len(), burst);
    }

    /// Three listeners in one group share a port: 60 connections each land on one of
    /// them, and every listener gets some (by hash: one left out has odds of about
    /// 3 × (2/3)^60, 10^-10). A second group or a plain listener there is refused.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_listener_group_spreads_connections_and_keeps_its_address() {
        let group =
            bind_listeners_for("127.0.0.1:0".parse().unwrap(), &ListenMode::Http, 3).unwrap();
        let address = group[0].local_addr().unwrap();
        assert!(group.iter().all(|l| l.local_addr().unwrap() == address));
        let clients: Vec<TcpStream> = (0..60)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        let mut accepted = [0; 3];
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while accepted.iter().sum::<usize>() < clients.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "accepted {accepted:?}"
            );
            for (listener, count) in group.iter().zip(&mut accepted) {
                while listener.accept().is_ok() {
                    *count += 1;
                }
            }
        }
        assert!(accepted.iter().all(|&n| n > 0), "accepted {accepted:?}");
        let in_use = |e: io::Error| e.kind() == io::ErrorKind::AddrInUse;
        assert!(bind_listeners_for(address, &ListenMode::Http, 2).is_err_and(in_use));
        assert!(bind_listeners_for(address, &ListenMode::Http, 1).is_err_and(in_use));
        assert!(bind_listener(address).is_err_and(in_use));
    }

    /// Whether a connection accepted from `listener` starts in quick-ACK mode.
    #[cfg(target_os = "linux")]
    fn accepted_in_quick_ack_mode(listener: TcpListener) -> bool {
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        socket2::SockRef::from(&accepted).tcp_quickack().unwrap()
    }

    /// A connection accepted from an HTTP listener is out of quick-ACK mode before
    /// its first byte, so the ACK of a request rides on the response. (Set before
    /// `listen(2)`, the setting is reset and the connection starts in quick-ACK mode.)
    /// A layer-4 listener's, and a plain one's, keep Linux's default.
    #[cfg(target_os = "linux")]
    #[test]
    fn http_connections_acknowledge_with_the_answer_and_layer_4_ones_at_once() {
        let address = "127.0.0.1:0".parse().unwrap();
        let http = bind_listener_for(address, &ListenMode::Http).unwrap();
        assert!(!accepted_in_quick_ack_mode(http));
        let layer_4 = ListenMode::Tcp {
            upstream: "default".into(),
            send_proxy: None,
        };
        assert!(accepted_in_quick_ack_mode(
            bind_listener_for(address, &layer_4).unwrap()
        ));
        assert!(accepted_in_quick_ack_mode(bind_listener(address).unwrap()));
    }
}
