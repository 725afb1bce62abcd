//! Listening sockets with a backlog fit for bursts of connections.
//!
//! `TcpListener::bind` (tokio, through mio, like the standard library) asks for a
//! backlog of 128: a burst of more new connections than that, faster than the accept
//! loop takes them (a load test starting 1,000 clients at once), overflows the queue,
//! and the kernel drops their SYNs; each such client waits a second for its retry.
//! nginx asks for 511, HAProxy for its `maxconn`.

use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// The accept queue asked for; the kernel caps it at `net.core.somaxconn` (4,096 on
/// current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `address` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// [`LISTEN_BACKLOG`].
pub fn bind_listener(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 290 clients connect at once to a listener nobody accepts on: all complete their
    /// handshake at once (the queue holds them). With a backlog of 128, those past it
    /// would wait a second for the SYN retry and miss the 500 ms given. (A kernel whose
    /// `somaxconn` is lower caps the burst tried.)
    #[tokio::test]
    async fn a_burst_larger_than_128_connects_without_waiting() {
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let burst = somaxconn.min(300) - 10;
        let listener = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let connects: Vec<_> = (0..burst)
            .map(|_| tokio::spawn(tokio::net::TcpStream::connect(address)))
            .collect();
        let mut held = Vec::new();
        for (i, connect) in connects.into_iter().enumerate() {
            let stream = tokio::time::timeout(Duration::from_millis(500), connect)
                .await
                .unwrap_or_else(|_| panic!("connection {i} waited past 500 ms"))
                .unwrap()
                .unwrap();
            held.push(stream);
        }
        assert_eq!(held.len(), burst);
        drop(listener);
    }
}
