//! Listening sockets with a backlog fit for bursts of connections.
//!
//! `TcpListener::bind` (the standard library's, and tokio's and smol's through it or
//! mio) asks for a backlog of 128: a burst of more new connections than that, faster
//! than the accept loop takes them (a load test starting 1,000 clients at once),
//! overflows the queue, and the kernel drops their SYNs; each such client waits a
//! second for its retry. nginx asks for 511, HAProxy for its `maxconn`.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// The accept queue asked for; the kernel caps it at `net.core.somaxconn` (4,096 on
/// current Linux).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds `address` (with `SO_REUSEADDR` on Unix, as `TcpListener::bind` does) and
/// listens with [`LISTEN_BACKLOG`]. Accepted connections acknowledge a request with
/// the response (`acks.rs`). The listener is non-blocking, ready for a
/// runtime's `from_std`.
pub fn bind_listener(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    crate::acks::defer_acks(&socket);
    socket.set_nonblocking(true)?;
    Ok(socket.into())
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

    /// A connection accepted from the listener is out of quick-ACK mode before its
    /// first byte, so the ACK of a request rides on the response. (Set before
    /// `listen(2)`, the setting is reset and the connection starts in quick-ACK mode.)
    #[cfg(target_os = "linux")]
    #[test]
    fn accepted_connections_acknowledge_with_the_answer() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(!socket2::SockRef::from(&accepted).tcp_quickack().unwrap());

        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(plain.local_addr().unwrap()).unwrap();
        let (accepted, _) = plain.accept().unwrap();
        assert!(socket2::SockRef::from(&accepted).tcp_quickack().unwrap());
    }
}
