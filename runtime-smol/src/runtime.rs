//! The smol glue behind the shared drive loop: clock, timer, dial, spawn, listener.
//! Sockets are in `transport.rs`.

use crate::transport::{Shared, TcpIo};
use futures_rustls::{client, server, TlsAcceptor, TlsConnector};
use runtime_common::rustls::pki_types::ServerName;
use runtime_common::rustls::{ClientConfig, HandshakeKind, ServerConfig};
use runtime_common::{Listener, Runtime};
use smol::{Async, Executor};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::debug;

/// A TLS server connection (futures-rustls), shareable by a pending read and write.
pub type TlsServer = Shared<server::TlsStream<TcpIo>>;
/// A TLS client connection (futures-rustls), shareable by a pending read and write.
pub type TlsClient = Shared<client::TlsStream<TcpIo>>;

/// A spawned task, as a [`Smol::with_spawner`] function receives it.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A TCP connection as this crate drives it: async-io's `Async<TcpStream>`, shared so
/// a read and a write can be pending at once (`&Async<TcpStream>` reads and writes).
pub type Tcp = Arc<Async<TcpStream>>;

/// smol (async-io's reactor and timers) as `runtime_common` sees it, with the
/// executor tasks are spawned on: smol's global one, an [`Executor`] of yours, or any
/// spawn function (async-std's, say).
#[derive(Clone, Default)]
pub struct Smol {
    spawner: Spawner,
}

#[derive(Clone, Default)]
enum Spawner {
    #[default]
    Global,
    Executor(Arc<Executor<'static>>),
    Function(Arc<dyn Fn(Task) + Send + Sync>),
}

impl Smol {
    /// Tasks go to smol's global executor (`smol::spawn`; `SMOL_THREADS` threads).
    pub fn global() -> Smol {
        Smol::default()
    }

    /// Tasks go to `executor`; run it on as many threads as you like.
    pub fn on(executor: Arc<Executor<'static>>) -> Smol {
        Smol {
            spawner: Spawner::Executor(executor),
        }
    }

    /// Tasks go to `spawn`, e.g. `|task| { async_std::task::spawn(task); }`.
    pub fn with_spawner(spawn: impl Fn(Task) + Send + Sync + 'static) -> Smol {
        Smol {
            spawner: Spawner::Function(Arc::new(spawn)),
        }
    }
}

impl fmt::Debug for Smol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spawner = match self.spawner {
            Spawner::Global => "global",
            Spawner::Executor(_) => "executor",
            Spawner::Function(_) => "function",
        };
        f.debug_struct("Smol").field("spawner", &spawner).finish()
    }
}

/// An async-io timer that stays expired until it is reset (async-io's fires once).
#[derive(Debug)]
pub struct SmolTimer {
    timer: smol::Timer,
    deadline: Instant,
}

impl Runtime for Smol {
    type Tcp = Tcp;
    type TlsServer = TlsServer;
    type TlsClient = TlsClient;
    type Timer = SmolTimer;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn timer(&self, deadline: Instant) -> SmolTimer {
        SmolTimer {
            timer: smol::Timer::at(deadline),
            deadline,
        }
    }

    fn reset_timer(mut timer: Pin<&mut SmolTimer>, deadline: Instant) {
        timer.deadline = deadline;
        timer.timer.set_at(deadline);
    }

    fn poll_timer(mut timer: Pin<&mut SmolTimer>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= timer.deadline {
            return Poll::Ready(());
        }
        Pin::new(&mut timer.timer).poll(cx).map(drop)
    }

    async fn resolve(&self, address: String) -> io::Result<Vec<SocketAddr>> {
        smol::net::resolve(address).await
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Tcp> {
        let stream = Async::<TcpStream>::connect(addr).await?;
        let _ = stream.get_ref().set_nodelay(true);
        Ok(Arc::new(stream))
    }

    async fn tls_accept(&self, tcp: Tcp, config: Arc<ServerConfig>) -> io::Result<TlsServer> {
        let stream = TlsAcceptor::from(config).accept(TcpIo(tcp)).await?;
        Ok(Shared::acknowledging(stream, |tls| {
            runtime_common::acknowledge_now(tls.get_ref().0 .0.get_ref())
        }))
    }

    async fn tls_connect(
        &self,
        tcp: Tcp,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsClient> {
        let stream = TlsConnector::from(config).connect(name, TcpIo(tcp)).await?;
        Ok(Shared::new(stream))
    }

    fn tls_resumed(tls: &TlsServer) -> bool {
        tls.with(|stream| stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed))
    }

    fn local_addr(tcp: &Tcp) -> Option<SocketAddr> {
        tcp.get_ref().local_addr().ok()
    }

    fn peer_addr(tcp: &Tcp) -> Option<SocketAddr> {
        tcp.get_ref().peer_addr().ok()
    }

    fn is_quiet_tls(tls: &TlsClient) -> bool {
        tls.with(|stream| {
            let (tcp, connection) = stream.get_mut();
            let decrypted = connection.process_new_packets();
            decrypted.is_ok_and(|state| state.plaintext_bytes_to_read() == 0)
                && Smol::is_quiet(&tcp.0)
        })
    }

    async fn peek(tcp: &Tcp, buf: &mut [u8]) -> io::Result<usize> {
        tcp.peek(buf).await
    }

    fn tls_peer_addr(tls: &TlsClient) -> Option<SocketAddr> {
        tls.with(|stream| Smol::peer_addr(&stream.get_ref().0 .0))
    }

    fn is_quiet(tcp: &Tcp) -> bool {
        match tcp.get_ref().peek(&mut [0; 1]) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock, // the socket is non-blocking
            Ok(_) => false,                                  // EOF (0) or unsolicited bytes
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        match &self.spawner {
            Spawner::Global => smol::spawn(task).detach(),
            Spawner::Executor(executor) => executor.spawn(task).detach(),
            Spawner::Function(spawn) => spawn(Box::pin(task)),
        }
    }
}

impl Listener<Smol> for smol::net::TcpListener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        smol::net::TcpListener::local_addr(self)
    }

    async fn accept(&self) -> io::Result<(Tcp, SocketAddr)> {
        let (stream, addr) = smol::net::TcpListener::accept(self).await?;
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay on client connection");
        }
        Ok((stream.into(), addr))
    }
}
