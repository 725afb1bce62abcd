//! The drive loop: one task per client connection, the same on every runtime. It
//! carries out what the [`Session`] asks, in order, then waits for the first thing
//! that happens on the sockets, the timer, the dial or the drain signal, and feeds
//! exactly that back in. Every protocol decision stays in the session; this file only
//! moves bytes and time, and the runtime glue behind [`Runtime`] only touches sockets.

use crate::access_log;
use crate::context::Context;
use crate::peer::{Peer, State, Wrote};
use crate::runtime::{Runtime, Transport};
use bytes::Bytes;
use event_listener::EventListener;
use proxy_core::{ClientInfo, ConnectError, Input, Output, Session, Side, Target};
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::{pin, Pin};
use std::task::{Context as Cx, Poll};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// After `Output::Close`, how long queued bytes may take to go out.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);
/// Largest single read; the session's flow control bounds the total.
pub const MAX_READ: usize = 64 * 1024;

/// Runs one session over `client` until it closes.
pub(crate) async fn drive<R: Runtime, C: Transport<R>>(
    client: C,
    info: ClientInfo,
    ctx: &Context<R>,
) {
    let rt = ctx.runtime();
    let mut io = Sockets::new(client, info.addr, ctx);
    let mut session = Session::new(ctx.config().clone(), info, rt.now());
    let mut timer = pin!(rt.timer(rt.now()));
    'session: loop {
        while let Some(output) = session.poll_output() {
            if io.carry_out(output).is_break() {
                break 'session;
            }
        }
        if session.is_closed() {
            break;
        }
        match poll_fn(|cx| io.poll_wait(&session, timer.as_mut(), cx)).await {
            Wake::Input(input) => session.handle_input(rt.now(), input),
            Wake::Deadline => session.handle_timeout(rt.now()),
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
struct Sockets<'a, R: Runtime, C> {
    ctx: &'a Context<R>,
    client: Peer<C>,
    upstream: Option<Upstream<R::Tcp>>,
    connecting: Option<Connecting<'a, R>>,
    /// The registration for the drain signal, while waiting for it.
    drain: Option<EventListener>,
    /// The drain deadline was delivered: no need to wait for it any more.
    drained: bool,
    /// The deadline the timer is set to.
    armed: Option<Instant>,
    /// Which side is polled first this time, so neither starves the other.
    upstream_first: bool,
    /// For log lines.
    client_addr: Option<SocketAddr>,
    upstream_addr: Option<SocketAddr>,
    read_size: usize,
}

struct Upstream<T> {
    peer: Peer<T>,
    /// The `Target::address` it was dialled for: its key in the pool.
    address: String,
}

type Connected<T> = (String, Result<(T, bool), ConnectError>);
type Connecting<'a, R> = Pin<Box<dyn Future<Output = Connected<<R as Runtime>::Tcp>> + Send + 'a>>;

impl<'a, R: Runtime, C: Transport<R>> Sockets<'a, R, C> {
    fn new(client: C, client_addr: Option<SocketAddr>, ctx: &'a Context<R>) -> Self {
        Sockets {
            ctx,
            client: Peer::new(client),
            upstream: None,
            connecting: None,
            drain: None,
            drained: false,
            armed: None,
            upstream_first: false,
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
                self.connecting = Some(Box::pin(connect(self.ctx, target)));
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

    /// Polls, in this order, the drain signal, the session's deadline, the dial,
    /// write work on either side and a read on each side the session wants, and is
    /// ready with the first that has something to tell. `Stuck` if none is there.
    fn poll_wait(
        &mut self,
        session: &Session,
        mut timer: Pin<&mut R::Timer>,
        cx: &mut Cx<'_>,
    ) -> Poll<Wake> {
        if !self.drained {
            if let Poll::Ready(deadline) = self.ctx.poll_drain(&mut self.drain, cx) {
                self.drained = true;
                return Poll::Ready(Wake::Input(Input::Drain { deadline }));
            }
        }
        let deadline = session.poll_timeout();
        if let Some(deadline) = deadline {
            if self.armed != Some(deadline) {
                R::reset_timer(timer.as_mut(), deadline);
                self.armed = Some(deadline);
            }
            if R::poll_timer(timer.as_mut(), cx).is_ready() {
                return Poll::Ready(Wake::Deadline);
            }
        }
        if let Some(connecting) = &mut self.connecting {
            if let Poll::Ready(connected) = connecting.as_mut().poll(cx) {
                return Poll::Ready(self.connected(connected));
            }
        }
        let mut waiting = !self.drained || deadline.is_some() || self.connecting.is_some();
        self.upstream_first = !self.upstream_first;
        let sides = match self.upstream_first {
            true => [Side::Upstream, Side::Client],
            false => [Side::Client, Side::Upstream],
        };
        // Writes first: they free what flow control counts.
        for side in sides {
            if let Some(poll) = self.poll_write(side, cx) {
                waiting = true;
                if let Poll::Ready(result) = poll {
                    return Poll::Ready(self.wrote(side, result));
                }
            }
        }
        for side in sides.into_iter().filter(|&side| session.wants_read(side)) {
            if let Some(poll) = self.poll_read(side, cx) {
                waiting = true;
                if let Poll::Ready(result) = poll {
                    return Poll::Ready(self.read(side, result));
                }
            }
        }
        match waiting {
            true => Poll::Pending,
            false => Poll::Ready(Wake::Stuck),
        }
    }

    /// Polls the write work of `side`; `None` if it has none.
    fn poll_write(&self, side: Side, cx: &mut Cx<'_>) -> Option<Poll<io::Result<Wrote>>> {
        match side {
            Side::Client => (self.client.state.busy()).then(|| self.client.poll_write_step(cx)),
            Side::Upstream => (self.upstream.as_ref())
                .filter(|u| u.peer.state.busy())
                .map(|u| u.peer.poll_write_step(cx)),
        }
    }

    /// Polls a read of `side`; `None` if it cannot be read.
    fn poll_read(&self, side: Side, cx: &mut Cx<'_>) -> Option<Poll<io::Result<Bytes>>> {
        let n = self.read_size;
        match side {
            Side::Client => (self.client.state.readable()).then(|| self.client.io.poll_read(cx, n)),
            Side::Upstream => (self.upstream.as_ref())
                .filter(|u| u.peer.state.readable())
                .map(|u| u.peer.io.poll_read(cx, n)),
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

    fn connected(&mut self, (address, result): Connected<R::Tcp>) -> Wake {
        self.connecting = None;
        Wake::Input(match result {
            Ok((stream, reused)) => {
                self.upstream_addr = R::peer_addr(&stream);
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
    async fn close(&mut self, mut timer: Pin<&mut R::Timer>) {
        self.connecting = None;
        R::reset_timer(timer.as_mut(), self.ctx.runtime().now() + CLOSE_FLUSH);
        self.client.state.shutdown_after_queue();
        if let Some(upstream) = &mut self.upstream {
            upstream.peer.state.shutdown_after_queue();
        }
        poll_fn(|cx| {
            let client = self.client.poll_flush_all(cx).is_ready();
            let upstream =
                (self.upstream.as_mut()).is_none_or(|u| u.peer.poll_flush_all(cx).is_ready());
            if client && upstream {
                return Poll::Ready(());
            }
            if R::poll_timer(timer.as_mut(), cx).is_ready() {
                debug!("close: the peers did not take the last bytes in time");
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    }
}

/// Takes a pooled connection to `target` or dials a new one.
async fn connect<R: Runtime>(ctx: &Context<R>, target: Target) -> Connected<R::Tcp> {
    if target.allow_pooled {
        if let Some(stream) = ctx.pool().take(&target.address) {
            return (target.address, Ok((stream, true)));
        }
    }
    let result = dial(ctx.runtime(), &target.address).await;
    (target.address, result.map(|stream| (stream, false)))
}

/// Tries every address `address` resolves to, in order.
async fn dial<R: Runtime>(rt: &R, address: &str) -> Result<R::Tcp, ConnectError> {
    let addrs = (rt.resolve(address.to_owned()).await).map_err(|_| ConnectError::Unreachable)?;
    let mut last = ConnectError::Unreachable; // no address at all
    for addr in addrs {
        match rt.connect(addr).await {
            Ok(stream) => return Ok(stream),
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
