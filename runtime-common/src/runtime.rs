//! The glue a runtime provides, and nothing more: a clock and a timer, dialling, a
//! way to spawn ([`Runtime`]), its byte streams ([`Transport`]) and its listeners
//! ([`Listener`]). The drive loop, the write queues, the pool, the drain and the
//! accept loop are written once over these.
//!
//! `Transport` and `Listener` take the runtime as a type parameter, and the timer's
//! methods live on `Runtime`, so that an adapter can implement them for its runtime's
//! own types (`impl Transport<Tokio> for tokio::net::TcpStream`), which the orphan
//! rule would forbid otherwise.

pub use crate::pipe::Pipe;
use bytes::Bytes;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// An async runtime as the drive loop sees it. Cheap to clone (a unit struct, or a
/// handle to an executor).
pub trait Runtime: Clone + Send + Sync + Sized + 'static {
    /// A TCP connection: dialled to an upstream, or accepted by a [`Listener`].
    type Tcp: Transport<Self> + 'static;
    /// A TLS server connection over an accepted [`Runtime::Tcp`] (rustls).
    type TlsServer: Transport<Self> + 'static;
    /// A TLS client connection over a dialled [`Runtime::Tcp`] (rustls).
    type TlsClient: Transport<Self> + 'static;
    /// A one-shot timer that can be moved to another deadline.
    type Timer: Send;

    /// The current time, from the clock the runtime's timers use.
    fn now(&self) -> Instant;
    /// A timer that expires at `deadline`.
    fn timer(&self, deadline: Instant) -> Self::Timer;
    /// Moves `timer`'s deadline (earlier or later).
    fn reset_timer(timer: Pin<&mut Self::Timer>, deadline: Instant);
    /// Ready once `timer`'s deadline has passed, and on every poll after that until
    /// it is reset.
    fn poll_timer(timer: Pin<&mut Self::Timer>, cx: &mut Context<'_>) -> Poll<()>;
    /// The addresses a `host:port` names.
    fn resolve(&self, address: String) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send;
    /// Dials `addr` (with `TCP_NODELAY` on).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Tcp>> + Send;
    /// Runs the server side of a TLS handshake on `tcp`. The caller bounds its time.
    fn tls_accept(
        &self,
        tcp: Self::Tcp,
        config: Arc<ServerConfig>,
    ) -> impl Future<Output = io::Result<Self::TlsServer>> + Send;
    /// Whether a client's finished handshake resumed an earlier session.
    fn tls_resumed(tls: &Self::TlsServer) -> bool;
    /// Runs the client side of a TLS handshake on `tcp`, for server `name`. The
    /// caller bounds its time.
    fn tls_connect(
        &self,
        tcp: Self::Tcp,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> impl Future<Output = io::Result<Self::TlsClient>> + Send;
    /// Copies what `tcp` has received into `buf` without consuming it, waiting until
    /// there is something (or EOF, 0). For the PROXY protocol header, which must be
    /// read without taking a byte past it.
    fn peek<'a>(
        tcp: &'a Self::Tcp,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
    /// The address `tcp` is connected to, for log lines.
    fn peer_addr(tcp: &Self::Tcp) -> Option<SocketAddr>;
    /// The proxy's own address of `tcp` (an accepted connection's destination).
    fn local_addr(tcp: &Self::Tcp) -> Option<SocketAddr>;
    /// Whether the peer of an idle connection has neither closed it nor sent anything
    /// (a non-blocking one-byte peek would block): the pool's liveness check.
    fn is_quiet(tcp: &Self::Tcp) -> bool;
    /// [`Runtime::is_quiet`] for a TLS client connection (its TCP socket, and no
    /// decrypted bytes waiting).
    fn is_quiet_tls(tls: &Self::TlsClient) -> bool;
    /// The address a TLS client connection's socket is connected to, for log lines.
    fn tls_peer_addr(tls: &Self::TlsClient) -> Option<SocketAddr>;
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);
}

/// A byte stream the drive loop can read and write at the same time.
///
/// Poll-style on purpose, and every method takes `&self`: the loop polls a read and a
/// write of the same stream in one wait, and a wait over both sides of a session is
/// then a closure of a few references, so an idle session's task stays small.
pub trait Transport<R>: Send {
    /// Whether written bytes may sit in the stream until `poll_flush` (TLS does that).
    const BUFFERS_WRITES: bool;
    /// [`Transport::BUFFERS_WRITES`] for this stream (an enum of streams answers per
    /// variant).
    fn buffers_writes(&self) -> bool {
        Self::BUFFERS_WRITES
    }
    /// Reads at most `max` bytes into a buffer taken for this read only, once bytes
    /// are there: an idle stream holds no read buffer. An empty result is EOF.
    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>>;
    /// Writes a prefix of `bufs`; returns how many bytes the stream took.
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
    /// [`poll_write`](Self::poll_write) for the last bytes before
    /// [`poll_shutdown`](Self::poll_shutdown), which follows at once: a TCP socket may
    /// hold them to send with its FIN ([`send_before_fin`](crate::send_before_fin)).
    fn poll_write_before_shutdown(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write(cx, bufs)
    }
    /// Pushes out anything the stream buffered itself (a TLS record, say).
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write half down (TCP FIN; TLS close_notify).
    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Sends at once the acknowledgement the kernel holds back for an answer to
    /// carry, and acknowledges as it does by default from then on: a TCP socket does
    /// that with [`acknowledge_now`](crate::acknowledge_now). Others need not.
    fn acknowledge_now(&self) {}

    /// Whether this stream can move bytes to and from a [`Pipe`] (a plain socket on
    /// Linux whose runtime implements the two `splice` methods). TLS cannot.
    fn can_splice(&self) -> bool {
        false
    }
    /// Once the stream is readable, moves at most `max` bytes of it into the empty
    /// `pipe` (see [`Pipe::fill_from`]); 0 is EOF. Called only if `can_splice`.
    fn poll_splice_in(&self, _: &mut Context<'_>, _: &Pipe, _: usize) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
    /// Once the stream is writable, moves at most `len` bytes from `pipe` into it
    /// (see [`Pipe::drain_into`]). Called only if `can_splice`.
    fn poll_splice_out(&self, _: &mut Context<'_>, _: &Pipe, _: usize) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// Where client connections come from.
pub trait Listener<R: Runtime>: Send + 'static {
    /// The next connection and its peer's address (with `TCP_NODELAY` on).
    fn accept(&self) -> impl Future<Output = io::Result<(R::Tcp, SocketAddr)>> + Send;
    /// The address it listens on: how its [`ListenerSetup`](crate::ListenerSetup)
    /// (mode, TLS) is found.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A connection that is plain TCP or TLS over it: what the drive loop reads and
/// writes on either side.
#[derive(Debug)]
pub enum Conn<T, S> {
    /// Plain TCP (or any other stream).
    Plain(T),
    /// TLS.
    Tls(S),
}

/// An upstream connection: dialled TCP, or TLS over it (boxed: a TLS stream is large,
/// and every session's task holds an upstream slot).
pub type Upstream<R> = Conn<<R as Runtime>::Tcp, Box<<R as Runtime>::TlsClient>>;

impl<R, T: Transport<R>> Transport<R> for Box<T> {
    const BUFFERS_WRITES: bool = T::BUFFERS_WRITES;

    fn buffers_writes(&self) -> bool {
        (**self).buffers_writes()
    }

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        (**self).poll_read(cx, max)
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        (**self).poll_write(cx, bufs)
    }

    fn poll_write_before_shutdown(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        (**self).poll_write_before_shutdown(cx, bufs)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_flush(cx)
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_shutdown(cx)
    }

    fn acknowledge_now(&self) {
        (**self).acknowledge_now()
    }

    fn can_splice(&self) -> bool {
        (**self).can_splice()
    }

    fn poll_splice_in(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        (**self).poll_splice_in(cx, pipe, max)
    }

    fn poll_splice_out(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        (**self).poll_splice_out(cx, pipe, len)
    }
}

impl<R, T: Transport<R>, S: Transport<R>> Transport<R> for Conn<T, S> {
    const BUFFERS_WRITES: bool = T::BUFFERS_WRITES || S::BUFFERS_WRITES;

    fn buffers_writes(&self) -> bool {
        match self {
            Conn::Plain(io) => io.buffers_writes(),
            Conn::Tls(io) => io.buffers_writes(),
        }
    }

    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        match self {
            Conn::Plain(io) => io.poll_read(cx, max),
            Conn::Tls(io) => io.poll_read(cx, max),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self {
            Conn::Plain(io) => io.poll_write(cx, bufs),
            Conn::Tls(io) => io.poll_write(cx, bufs),
        }
    }

    fn poll_write_before_shutdown(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Conn::Plain(io) => io.poll_write_before_shutdown(cx, bufs),
            Conn::Tls(io) => io.poll_write_before_shutdown(cx, bufs),
        }
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Conn::Plain(io) => io.poll_flush(cx),
            Conn::Tls(io) => io.poll_flush(cx),
        }
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Conn::Plain(io) => io.poll_shutdown(cx),
            Conn::Tls(io) => io.poll_shutdown(cx),
        }
    }

    fn acknowledge_now(&self) {
        match self {
            Conn::Plain(io) => io.acknowledge_now(),
            Conn::Tls(io) => io.acknowledge_now(),
        }
    }

    fn can_splice(&self) -> bool {
        match self {
            Conn::Plain(io) => io.can_splice(),
            Conn::Tls(io) => io.can_splice(),
        }
    }

    fn poll_splice_in(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        match self {
            Conn::Plain(io) => io.poll_splice_in(cx, pipe, max),
            Conn::Tls(io) => io.poll_splice_in(cx, pipe, max),
        }
    }

    fn poll_splice_out(
        &self,
        cx: &mut Context<'_>,
        pipe: &Pipe,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        match self {
            Conn::Plain(io) => io.poll_splice_out(cx, pipe, len),
            Conn::Tls(io) => io.poll_splice_out(cx, pipe, len),
        }
    }
}

/// Sleeps for `duration` on `runtime`'s timer.
pub async fn sleep<R: Runtime>(runtime: &R, duration: std::time::Duration) {
    let mut timer = std::pin::pin!(runtime.timer(runtime.now() + duration));
    std::future::poll_fn(|cx| R::poll_timer(timer.as_mut(), cx)).await;
}

/// `future`'s output, or `None` if `deadline` (on `runtime`'s timer) comes first.
pub async fn timeout<R: Runtime, F: Future>(
    runtime: &R,
    deadline: Instant,
    future: F,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(runtime.timer(deadline));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        R::poll_timer(timer.as_mut(), cx).map(|()| None)
    })
    .await
}
