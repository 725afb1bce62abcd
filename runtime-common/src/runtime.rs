//! The glue a runtime provides, and nothing more: a clock and a timer, dialling, a
//! way to spawn ([`Runtime`]), its byte streams ([`Transport`]) and its listeners
//! ([`Listener`]). The drive loop, the write queues, the pool, the drain and the
//! accept loop are written once over these.
//!
//! `Transport` and `Listener` take the runtime as a type parameter, and the timer's
//! methods live on `Runtime`, so that an adapter can implement them for its runtime's
//! own types (`impl Transport<Tokio> for tokio::net::TcpStream`), which the orphan
//! rule would forbid otherwise.

use bytes::Bytes;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// An async runtime as the drive loop sees it. Cheap to clone (a unit struct, or a
/// handle to an executor).
pub trait Runtime: Clone + Send + Sync + Sized + 'static {
    /// A dialled upstream connection.
    type Tcp: Transport<Self> + 'static;
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
    /// The address `tcp` is connected to, for log lines.
    fn peer_addr(tcp: &Self::Tcp) -> Option<SocketAddr>;
    /// Whether the peer of an idle connection has neither closed it nor sent anything
    /// (a non-blocking one-byte peek would block): the pool's liveness check.
    fn is_quiet(tcp: &Self::Tcp) -> bool;
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
    /// Reads at most `max` bytes into a buffer taken for this read only, once bytes
    /// are there: an idle stream holds no read buffer. An empty result is EOF.
    fn poll_read(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>>;
    /// Writes a prefix of `bufs`; returns how many bytes the stream took.
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
    /// Pushes out anything the stream buffered itself (a TLS record, say).
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write half down (TCP FIN; TLS close_notify).
    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Where client connections come from.
pub trait Listener<R>: Send + 'static {
    /// An accepted connection.
    type Stream: Transport<R> + 'static;
    /// The next connection and its peer's address (with `TCP_NODELAY` on).
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

/// Sleeps for `duration` on `runtime`'s timer.
pub async fn sleep<R: Runtime>(runtime: &R, duration: std::time::Duration) {
    let mut timer = std::pin::pin!(runtime.timer(runtime.now() + duration));
    std::future::poll_fn(|cx| R::poll_timer(timer.as_mut(), cx)).await;
}
