//! The drive loop: one task per client connection, the same on every runtime. It
//! carries out what the [`Session`] asks, in order, then waits for the first thing
//! that happens on the sockets, the timer, the dial or the drain signal, and feeds
//! exactly that back in. Every protocol decision stays in the session; this file only
//! moves bytes and time, and the runtime glue behind [`Runtime`] only touches sockets.

use crate::access_log;
use crate::context::{Context, Generation};
use crate::metrics::DialFailure;
use crate::peer::{Peer, State, Wrote};
use crate::runtime::{Conn, Runtime, Transport, Upstream as UpstreamConn};
use crate::setup::ListenMode;
use bytes::Bytes;
use event_listener::EventListener;
use proxy_core::{ClientInfo, ConnectError, Input, Output, Session, Side, Target};
use std::borrow::Cow;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context as Cx, Poll};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// After `Output::Close`, how long queued bytes may take to go out.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);
/// Largest single read; the session's flow control bounds the total.
pub const MAX_READ: usize = 64 * 1024;

/// Runs one session over `client` until it closes: an HTTP session, or a layer-4
/// one for a `Tcp` listener.
pub(crate) async fn drive<R: Runtime, C: Transport<R>>(
    client: C,
    info: ClientInfo,
    ctx: &Context<R>,
    generation: Arc<Generation<R>>,
    mode: &ListenMode,
) {
    let rt = ctx.runtime();
    let client_addr = info.addr;
    let mut session = match mode {
        ListenMode::Http => generation.proxy.session(info, rt.now()),
        ListenMode::Tcp { upstream } => generation.proxy.tcp_session(info, upstream, rt.now()),
    };
    let mut io = Sockets::new(client, client_addr, ctx, generation);
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
    /// The configuration the session started with.
    generation: Arc<Generation<R>>,
    client: Peer<C>,
    upstream: Option<Upstream<UpstreamConn<R>>>,
    connecting: Option<Pin<Box<Dialing<'a, R>>>>,
    /// The registration for the drain and retirement signals, while waiting for them.
    signal: Option<EventListener>,
    /// The drain deadline was delivered: no need to wait for it any more.
    drained: bool,
    /// The generation's retirement (a reload replaced it) was delivered.
    retired: bool,
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

/// A finished dial: the pool key, and the connection (with whether it was pooled and
/// its peer's address) or why there is none.
type Connected<T> = (String, Result<(T, bool, Option<SocketAddr>), ConnectError>);

/// A dial in progress, and when it began.
struct Dialing<'a, R: Runtime> {
    started: Instant,
    future: Pin<Box<dyn Future<Output = Connected<UpstreamConn<R>>> + Send + 'a>>,
}

impl<'a, R: Runtime, C: Transport<R>> Sockets<'a, R, C> {
    fn new(
        client: C,
        client_addr: Option<SocketAddr>,
        ctx: &'a Context<R>,
        generation: Arc<Generation<R>>,
    ) -> Self {
        Sockets {
            ctx,
            read_size: generation.setup.config.buffer_size.clamp(1, MAX_READ),
            generation,
            client: Peer::new(client),
            upstream: None,
            connecting: None,
            signal: None,
            drained: false,
            retired: false,
            armed: None,
            upstream_first: false,
            client_addr,
            upstream_addr: None,
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
                self.abandon_dial();
                let rt = self.ctx.runtime();
                self.connecting = Some(Box::pin(Dialing {
                    started: rt.now(),
                    future: Box::pin(connect(rt, self.generation.clone(), target)),
                }));
            }
            Output::ReleaseUpstream { reusable } => {
                self.abandon_dial();
                if let Some(upstream) = self.upstream.take() {
                    if reusable && upstream.peer.state.reusable() {
                        (self.generation.pool).put_with_peer(
                            &upstream.address,
                            upstream.peer.io,
                            self.upstream_addr,
                        );
                    }
                }
            }
            Output::Event(event) => {
                if self.generation.setup.access_log {
                    access_log::event(&event, self.client_addr, self.upstream_addr);
                }
                let now = self.ctx.runtime().now();
                self.ctx.metrics().event(&event, self.client_addr, now);
            }
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
        let wanted = (!self.drained, !self.retired);
        if wanted.0 || wanted.1 {
            let generation = &self.generation;
            let signals = self
                .ctx
                .poll_signals(generation, wanted, &mut self.signal, cx);
            if let Poll::Ready((drain, retire)) = signals {
                if let Some(deadline) = drain {
                    self.drained = true;
                    return Poll::Ready(Wake::Input(Input::Drain { deadline }));
                }
                if let Some(deadline) = retire {
                    // A reload replaced this session's configuration: the session
                    // decides what that means (tunnels run on until the deadline).
                    self.retired = true;
                    return Poll::Ready(Wake::Input(Input::Retire { deadline }));
                }
            }
        }
        let wake_at = session.poll_timeout();
        if let Some(wake_at) = wake_at {
            if self.armed != Some(wake_at) {
                R::reset_timer(timer.as_mut(), wake_at);
                self.armed = Some(wake_at);
            }
            if R::poll_timer(timer.as_mut(), cx).is_ready() {
                return Poll::Ready(Wake::Deadline);
            }
        }
        if let Some(connecting) = &mut self.connecting {
            if let Poll::Ready(connected) = connecting.future.as_mut().poll(cx) {
                return Poll::Ready(self.connected(connected));
            }
        }
        let mut waiting = !self.drained || wake_at.is_some() || self.connecting.is_some();
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

    fn connected(&mut self, (address, result): Connected<UpstreamConn<R>>) -> Wake {
        self.connecting = None;
        Wake::Input(match result {
            Ok((stream, reused, peer)) => {
                self.upstream_addr = peer;
                debug!(upstream = ?self.upstream_addr, reused, "upstream connected");
                self.upstream = Some(Upstream {
                    peer: Peer::new(stream),
                    address,
                });
                Input::UpstreamConnected { reused }
            }
            Err(e) => {
                debug!(%address, error = ?e, "upstream connect failed");
                self.ctx.metrics().dial_failed(DialFailure::of(&e));
                Input::UpstreamFailed(e)
            }
        })
    }

    /// Drops a dial in progress; one that ran for `upstream_connect` is counted as a
    /// connect timeout (the session gave up on it).
    fn abandon_dial(&mut self) {
        if let Some(dialing) = self.connecting.take() {
            let limit = self.generation.setup.config.timeouts.upstream_connect;
            let ran = (self.ctx.runtime().now()).saturating_duration_since(dialing.started);
            if ran >= limit {
                self.ctx.metrics().dial_failed(DialFailure::Timeout);
            }
        }
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
        self.abandon_dial();
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

/// Takes a pooled connection to `target` or dials a new one, with TLS if the
/// configuration has it for that address. Pool keys say whether a connection is TLS.
async fn connect<R: Runtime>(
    rt: &R,
    generation: Arc<Generation<R>>,
    target: Target,
) -> Connected<UpstreamConn<R>> {
    let tls = generation.setup.upstream_tls.get(&target.address);
    let key = match tls {
        Some(_) => Cow::Owned(format!("tls:{}", target.address)),
        None => Cow::Borrowed(&target.address),
    };
    if target.allow_pooled {
        // The peer address was stored when the connection was dialled: no
        // `getpeername` per reuse.
        if let Some((stream, peer)) = generation.pool.take_with_peer(&key) {
            return (key.into_owned(), Ok((stream, true, peer)));
        }
    }
    let key = key.into_owned();
    let (tcp, peer) = match dial(rt, &target.address).await {
        Ok(dialled) => dialled,
        Err(e) => return (key, Err(e)),
    };
    let Some(tls) = tls else {
        return (key, Ok((Conn::Plain(tcp), false, peer)));
    };
    let handshake = rt.tls_connect(tcp, tls.server_name.clone(), tls.config.clone());
    match handshake.await {
        Ok(stream) => (key, Ok((Conn::Tls(Box::new(stream)), false, peer))),
        Err(e) => (key, Err(ConnectError::Other(format!("tls: {e}")))),
    }
}

/// Tries every address `address` resolves to, in order; returns the connection and
/// the address it was dialled to (its peer address, with no `getpeername`).
async fn dial<R: Runtime>(
    rt: &R,
    address: &str,
) -> Result<(R::Tcp, Option<SocketAddr>), ConnectError> {
    let addrs = (rt.resolve(address.to_owned()).await).map_err(|_| ConnectError::Unreachable)?;
    let mut last = ConnectError::Unreachable; // no address at all
    for addr in addrs {
        match rt.connect(addr).await {
            Ok(stream) => return Ok((stream, Some(addr))),
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
