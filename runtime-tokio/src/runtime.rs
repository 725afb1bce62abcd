//! The tokio glue behind the shared drive loop: clock, timer, dial, spawn, listener.
//! Sockets are in `transport.rs`.

use crate::transport::Shared;
use runtime_common::rustls::pki_types::ServerName;
use runtime_common::rustls::{ClientConfig, HandshakeKind, ServerConfig};
use runtime_common::{Listener, Runtime};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};
use tracing::debug;

/// A TLS server connection (tokio-rustls), shareable by a pending read and write.
pub type TlsServer = Shared<server::TlsStream<TcpStream>>;
/// A TLS client connection (tokio-rustls), shareable by a pending read and write.
pub type TlsClient = Shared<client::TlsStream<TcpStream>>;

/// Tokio as [`runtime_common`] sees it: tokio's clock (so paused-time tests drive
/// sessions too), `tokio::time::Sleep`, `tokio::net`, `tokio::spawn`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Tcp = TcpStream;
    type TlsServer = TlsServer;
    type TlsClient = TlsClient;
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

    async fn tls_accept(&self, tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsServer> {
        let stream = TlsAcceptor::from(config).accept(tcp).await?;
        Ok(Shared::acknowledging(stream, |tls| {
            runtime_common::acknowledge_now(tls.get_ref().0)
        }))
    }

    async fn tls_connect(
        &self,
        tcp: TcpStream,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsClient> {
        let stream = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(Shared::new(stream))
    }

    fn tls_resumed(tls: &TlsServer) -> bool {
        tls.with(|stream| stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed))
    }

    fn local_addr(tcp: &TcpStream) -> Option<SocketAddr> {
        tcp.local_addr().ok()
    }

    fn peer_addr(tcp: &TcpStream) -> Option<SocketAddr> {
        tcp.peer_addr().ok()
    }

    fn is_quiet_tls(tls: &TlsClient) -> bool {
        tls.with(|stream| {
            let (tcp, connection) = stream.get_mut();
            let decrypted = connection.process_new_packets();
            decrypted.is_ok_and(|state| state.plaintext_bytes_to_read() == 0)
                && Tokio::is_quiet(tcp)
        })
    }

    async fn peek(tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        tcp.peek(buf).await
    }

    fn tls_peer_addr(tls: &TlsClient) -> Option<SocketAddr> {
        tls.with(|stream| stream.get_ref().0.peer_addr().ok())
    }

    /// No system call for the usual case: the reactor's readiness says whether
    /// anything (bytes or a FIN) arrived since the last read cleared it. Only when it
    /// is readable does a one-byte peek tell EOF or unsolicited bytes from a stale
    /// readiness (the peek's EAGAIN then clears it, inside `try_io`). The no-op waker
    /// registers nothing anyone waits for: a pooled connection has no reader.
    fn is_quiet(tcp: &TcpStream) -> bool {
        match tcp.poll_read_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => return true,
            Poll::Ready(Err(_)) => return false,
            Poll::Ready(Ok(())) => {}
        }
        let mut probe = [MaybeUninit::uninit(); 1];
        match tcp.try_io(Interest::READABLE, || {
            socket2::SockRef::from(tcp).peek(&mut probe)
        }) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false, // EOF (0) or unsolicited bytes
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }
}

impl Listener<Tokio> for TcpListener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = TcpListener::accept(self).await?;
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay on client connection");
        }
        Ok((stream, addr))
    }
}
