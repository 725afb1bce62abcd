//! The drive loop: one task per client connection. It carries out what the
//! [`Session`] asks, in order, then waits for the first thing that happens on the
//! sockets, the timer or the drain signal, and feeds exactly that back in. Every
//! protocol decision stays in the session; this file only moves bytes and time.

use crate::access_log;
use crate::peer::{Peer, State, Wrote};
use crate::pool::Pool;
use crate::serve::Context;
use crate::transport::Transport;
use bytes::Bytes;
use proxy_core::{ClientInfo, ConnectError, Input, Output, Session, Side, Target};
use std::future::{pending, poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::{pin, Pin};
use std::task::{self, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Sleep};
use tracing::{debug, warn};

/// After `Output::Close`, how long queued bytes may take to go out.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);
/// Largest single read; the session's flow control bounds the total.
const MAX_READ: usize = 64 * 1024;

/// The current time, from tokio's clock (so paused-time tests drive sessions too).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs one session over `client` until it closes.
pub(crate) async fn drive<C: Transport>(client: C, info: ClientInfo, ctx: &Context) {
    let client_addr = info.addr;
    let mut session = Session::new(ctx.config().clone(), info, now());
    let mut io = Sockets::new(client, client_addr, ctx);
    let mut timer = pin!(sleep_until(tokio::time::Instant::now()));
    'session: loop {
        while let Some(output) = session.poll_output() {
            if io.carry_out(output).is_break() {
                break 'session;
            }
        }
        if session.is_closed() {
            break;
        }
        match io.wait(&session, timer.as_mut()).await {
            Wake::Input(input) => session.handle_input(now(), input),
            Wake::Deadline => session.handle_timeout(now()),
            Wake::Nothing => {}
            Wake::Stuck => {
                warn!("session waits for nothing (no read, write, timer or connect); closing");
                break;
            }
        }
    }
    io.close(timer).await;
}

/// What ended a wait.
enum Wake {
    /// Something to feed the session.
    Input(Input),
    /// The session's deadline passed.
    Deadline,
    /// Socket work the session need not hear about (a flush, a finished shutdown).
    Nothing,
    /// Nothing could ever wake the session again.
    Stuck,
}

/// The sockets of one session and what is in flight on them.
struct Sockets<'a, C> {
    ctx: &'a Context,
    client: Peer<C>,
    upstream: Option<Upstream>,
    connecting: Option<Connecting<'a>>,
    /// Until the drain deadline has been delivered.
    drain: Option<watch::Receiver<Option<std::time::Instant>>>,
    /// For log lines.
    client_addr: Option<SocketAddr>,
    upstream_addr: Option<SocketAddr>,
    read_size: usize,
}

struct Upstream {
    peer: Peer<TcpStream>,
    /// The `Target::address` it was dialled for: its key in the pool.
    address: String,
}

type Connecting<'a> =
    Pin<Box<dyn Future<Output = (String, Result<(TcpStream, bool), ConnectError>)> + Send + 'a>>;

impl<'a, C: Transport> Sockets<'a, C> {
    fn new(client: C, client_addr: Option<SocketAddr>, ctx: &'a Context) -> Self {
        Sockets {
            ctx,
            client: Peer::new(client),
            upstream: None,
            connecting: None,
            drain: Some(ctx.drain_signal()),
            client_addr,
            upstream_addr: None,
            read_size: ctx.config().buffer_size.clamp(1, MAX_READ),
        }
    }

    /// Carries out one output; `Break` on `Close`.
    fn carry_out(&mut self, output: Output) -> ControlFlow<()> {
        match output {
            Output::Send(side, bytes) => match self.state(side) {
                Some(state) => state.send(bytes),
                None => warn!(
                    ?side,
                    len = bytes.len(),
                    "session sent to a side with no connection"
                ),
            },
            Output::ShutdownWrite(side) => {
                if let Some(state) = self.state(side) {
                    state.shutdown_after_queue();
                }
            }
            Output::Connect(target) => {
                self.upstream = None;
                self.connecting = Some(Box::pin(connect(self.ctx.pool(), target)));
            }
            Output::ReleaseUpstream { reusable } => {
                self.connecting = None;
                if let Some(upstream) = self.upstream.take() {
                    if reusable && upstream.peer.state.reusable() {
                        self.ctx.pool().put(&upstream.address, upstream.peer.io);
                    }
                }
            }
            Output::Event(event) => access_log::event(&event, self.client_addr, self.upstream_addr),
            Output::Close => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Waits for the first thing the session should hear about.
    async fn wait(&mut self, session: &Session, mut timer: Pin<&mut Sleep>) -> Wake {
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        if let Some(deadline) = deadline.filter(|&d| d != timer.deadline()) {
            timer.as_mut().reset(deadline);
        }
        let (client, n) = (&self.client, self.read_size);
        let upstream = self.upstream.as_ref().map(|u| &u.peer);
        let read_client = client.state.readable() && session.wants_read(Side::Client);
        let read_upstream =
            upstream.is_some_and(|u| u.state.readable()) && session.wants_read(Side::Upstream);
        let write_upstream = upstream.is_some_and(|u| u.state.busy());
        tokio::select! {
            r = poll_fn(|cx| client.io.poll_read(cx, n)), if read_client => self.read(Side::Client, r),
            r = poll_some(upstream, |u, cx| u.io.poll_read(cx, n)), if read_upstream => self.read(Side::Upstream, r),
            r = poll_fn(|cx| client.poll_write_step(cx)), if client.state.busy() => self.wrote(Side::Client, r),
            r = poll_some(upstream, |u, cx| u.poll_write_step(cx)), if write_upstream => self.wrote(Side::Upstream, r),
            r = poll_some(self.connecting.as_mut(), |c, cx| c.as_mut().poll(cx)), if self.connecting.is_some() => self.connected(r),
            () = timer, if deadline.is_some() => Wake::Deadline,
            deadline = drain_requested(self.drain.as_mut()), if self.drain.is_some() => {
                self.drain = None;
                Wake::Input(Input::Drain { deadline })
            }
            else => Wake::Stuck,
        }
    }

    fn read(&mut self, side: Side, result: io::Result<Bytes>) -> Wake {
        let Some(state) = self.state(side) else {
            return Wake::Nothing;
        };
        Wake::Input(match result {
            Ok(bytes) if bytes.is_empty() => {
                state.eof = true;
                Input::Eof(side)
            }
            Ok(bytes) => Input::Data(side, bytes),
            Err(e) => {
                debug!(?side, error = %e, "read failed");
                state.fail();
                Input::Reset(side)
            }
        })
    }

    fn wrote(&mut self, side: Side, result: io::Result<Wrote>) -> Wake {
        let Some(state) = self.state(side) else {
            return Wake::Nothing;
        };
        match result {
            Ok(wrote) => {
                state.wrote(&wrote);
                match wrote {
                    Wrote::Bytes(n) => Wake::Input(Input::Written(side, n)),
                    Wrote::Nothing => Wake::Nothing,
                }
            }
            Err(e) => {
                debug!(?side, error = %e, "write failed");
                state.fail();
                Wake::Input(Input::Reset(side))
            }
        }
    }

    fn connected(
        &mut self,
        (address, result): (String, Result<(TcpStream, bool), ConnectError>),
    ) -> Wake {
        self.connecting = None;
        Wake::Input(match result {
            Ok((stream, reused)) => {
                self.upstream_addr = stream.peer_addr().ok();
                debug!(upstream = ?self.upstream_addr, reused, "upstream connected");
                self.upstream = Some(Upstream {
                    peer: Peer::new(stream),
                    address,
                });
                Input::UpstreamConnected { reused }
            }
            Err(e) => {
                debug!(%address, error = ?e, "upstream connect failed");
                Input::UpstreamFailed(e)
            }
        })
    }

    fn state(&mut self, side: Side) -> Option<&mut State> {
        match side {
            Side::Client => Some(&mut self.client.state),
            Side::Upstream => self.upstream.as_mut().map(|u| &mut u.peer.state),
        }
    }

    /// Shuts both sides down after what is queued, waiting at most [`CLOSE_FLUSH`]
    /// (on `timer`). The sockets close when `self` drops.
    async fn close(&mut self, mut timer: Pin<&mut Sleep>) {
        self.connecting = None;
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + CLOSE_FLUSH);
        let client = &mut self.client;
        let upstream = self.upstream.as_mut().map(|u| &mut u.peer);
        let flush_upstream = async {
            if let Some(peer) = upstream {
                peer.state.shutdown_after_queue();
                peer.flush_all().await;
            }
        };
        client.state.shutdown_after_queue();
        tokio::select! {
            _ = async { tokio::join!(client.flush_all(), flush_upstream) } => {}
            () = timer => debug!("close: the peers did not take the last bytes in time"),
        }
    }
}

/// Takes a pooled connection to `target` or dials a new one.
async fn connect(pool: &Pool, target: Target) -> (String, Result<(TcpStream, bool), ConnectError>) {
    if target.allow_pooled {
        if let Some(stream) = pool.take(&target.address) {
            return (target.address, Ok((stream, true)));
        }
    }
    let result = dial(&target.address).await.map(|stream| (stream, false));
    (target.address, result)
}

async fn dial(address: &str) -> Result<TcpStream, ConnectError> {
    let addrs = tokio::net::lookup_host(address)
        .await
        .map_err(|_| ConnectError::Unreachable)?;
    let mut last = ConnectError::Unreachable; // no address at all
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = connect_error(e),
        }
    }
    Err(last)
}

fn connect_error(e: io::Error) -> ConnectError {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => ConnectError::Refused,
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => ConnectError::Unreachable,
        _ => ConnectError::Other(e.to_string()),
    }
}

/// Polls `f` on `value` if there is one; otherwise never completes (for disabled
/// `select!` arms, whose futures are still built).
fn poll_some<T, R>(
    mut value: Option<T>,
    mut f: impl FnMut(&mut T, &mut task::Context<'_>) -> Poll<R>,
) -> impl Future<Output = R> {
    poll_fn(move |cx| match value.as_mut() {
        Some(value) => f(value, cx),
        None => Poll::Pending,
    })
}

/// The drain deadline, as soon as there is one (at once if draining already began).
async fn drain_requested(
    drain: Option<&mut watch::Receiver<Option<std::time::Instant>>>,
) -> std::time::Instant {
    if let Some(drain) = drain {
        if let Ok(deadline) = drain.wait_for(Option::is_some).await {
            if let Some(deadline) = *deadline {
                return deadline;
            }
        }
    }
    pending().await // no drain will come (the context is going away with us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The whole per-connection task (session, sockets, timer, the futures it waits
    /// on) is what an idle connection costs besides the kernel's socket buffers.
    #[tokio::test]
    async fn an_idle_session_task_stays_under_one_and_a_half_kib() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let ctx = Context::new(Arc::new(proxy_core::Config::default()));
        let task = drive(client, ClientInfo::default(), &ctx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1536, "the drive future is {size} bytes");
    }
}
