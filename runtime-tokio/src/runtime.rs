//! The tokio glue behind the shared drive loop: clock, timer, dial, spawn, listener.
//! Sockets are in `transport.rs`.

use runtime_common::{Listener, Runtime};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tracing::debug;

/// Tokio as [`runtime_common`] sees it: tokio's clock (so paused-time tests drive
/// sessions too), `tokio::time::Sleep`, `tokio::net`, `tokio::spawn`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Tcp = TcpStream;
    type Timer = Sleep;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn timer(&self, deadline: Instant) -> Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn reset_timer(timer: Pin<&mut Sleep>, deadline: Instant) {
        timer.reset(deadline.into());
    }

    fn poll_timer(timer: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Poll<()> {
        timer.poll(cx)
    }

    async fn resolve(&self, address: String) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host(address).await?.collect())
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn peer_addr(tcp: &TcpStream) -> Option<SocketAddr> {
        tcp.peer_addr().ok()
    }

    fn is_quiet(tcp: &TcpStream) -> bool {
        let mut probe = [MaybeUninit::uninit(); 1];
        match socket2::SockRef::from(tcp).peek(&mut probe) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false, // EOF (0) or unsolicited bytes
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }
}

impl Listener<Tokio> for TcpListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = TcpListener::accept(self).await?;
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay on client connection");
        }
        Ok((stream, addr))
    }
}
