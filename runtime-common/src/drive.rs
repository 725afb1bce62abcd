//! The drive loop: one task per client connection, the same on every runtime. It
//! carries out what the [`Session`] asks, in order, then waits for the first thing
//! that happens on the sockets, the timer, the dial or the drain signal, and feeds
//! exactly that back in. Every protocol decision stays in the session; this file only
//! moves bytes and time, and the runtime glue behind [`Runtime`] only touches sockets.

use crate::access_log;
use crate::context::{Context, Generation, LiveGuard};
use crate::metrics::DialFailure;
use crate::peer::{Peer, State, Wrote, PIPE_PREFIX_MAX};
use crate::poll_clock;
use crate::runtime::{Conn, Runtime, Transport, Upstream as UpstreamConn};
use crate::setup::ListenMode;
use crate::signal::Registration;
use bytes::Bytes;
use proxy_core::{ClientInfo, ConnectError, Input, Output, Session, Side, Target};
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::ops::{ControlFlow, Deref};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as Cx, Poll};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// After `Output::Close`, how long queued bytes may take to go out.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);
/// Largest single read; the session's flow control bounds the total.
pub const MAX_READ: usize = 64 * 1024;

/// Runs one session over `client` until it closes: an HTTP session, or a layer-4
/// one for a `Tcp` listener. `ctx` is a reference or an `Arc`, so that a spawned
/// task can be this future alone; `live` counts the connection until it ends.
///
/// The session and sockets are built before the future, which captures them and
/// works on them in place: an `async fn` would hold its arguments and a moved copy
/// of each, so an idle connection's task would be twice the size of its state. The
/// timer is boxed for the same reason (pinning it in the future would copy it).
pub(crate) fn drive<R, C, Ctx, P>(
    client: C,
    info: ClientInfo,
    ctx: Ctx,
    generation: Arc<Generation<R>>,
    mode: ListenMode,
    preamble: P,
    live: LiveGuard,
) -> impl Future<Output = ()>
where
    R: Runtime,
    C: Transport<R>,
    Ctx: Deref<Target = Context<R>>,
    P: Preamble,
{
    let now = ctx.runtime().now();
    let mut session = match &mode {
        ListenMode::Http | ListenMode::RedirectHttps { .. } => generation.proxy.session(info, now),
        ListenMode::Tcp { upstream, .. } => generation.proxy.tcp_session(info, upstream, now),
    };
    let mut timer = Box::pin(ctx.runtime().timer(now));
    let mut io = Sockets::new(client, ctx, generation, preamble);
    async move {
        'session: loop {
            while let Some(output) = session.poll_output() {
                if io.carry_out(output, session.client().addr).is_break() {
                    break 'session;
                }
            }
            if session.is_closed() {
                break;
            }
            match poll_fn(|cx| io.poll_wait(&session, timer.as_mut(), cx)).await {
                Wake::Input(input) => {
                    io.deadline_current = false;
                    let from_client = matches!(input, Input::Data(Side::Client, _));
                    session.handle_input(io.now(), input);
                    if from_client {
                        io.acknowledge_if_awaited(&session);
                    }
                }
                Wake::Deadline => {
                    io.deadline_current = false;
                    // Read afresh: the timer fired after any reading this poll kept.
                    poll_clock::forget();
                    session.handle_timeout(io.now())
                }
                Wake::Nothing => {}
                Wake::Stuck => {
                    warn!("session waits for nothing (no read, write, timer or connect); closing");
                    break;
                }
            }
        }
        // This poll may end in `poll_close`, which reads the clock itself.
        poll_clock::forget();
        // Polled in place rather than awaited as an `async fn`, whose state would
        // make every task bigger.
        io.start_close();
        poll_fn(|cx| io.poll_close(timer.as_mut(), cx)).await;
        drop(live);
    }
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
struct Sockets<R: Runtime, C, Ctx: Deref<Target = Context<R>>, P> {
    ctx: Ctx,
    /// The configuration the session started with.
    generation: Arc<Generation<R>>,
    client: Peer<C>,
    upstream: Option<Upstream<UpstreamConn<R>>>,
    connecting: Option<Pin<Box<Dialing<R>>>>,
    /// The registration for the drain and retirement signals, while waiting for them.
    signal: Registration,
    /// The drain deadline was delivered: no need to wait for it any more.
    drained: bool,
    /// The generation's retirement (a reload replaced it) was delivered.
    retired: bool,
    /// The deadline the timer is set to. It may be earlier than the session's next
    /// deadline (see [`poll_deadline`](Self::poll_deadline)), never later.
    armed: Option<Instant>,
    /// A pooled connection was handed over while carrying out `Connect`: the
    /// session hears of it before the next wait.
    handed_over: bool,
    /// The drain signal and the timer (as `armed`) already hold this task's waker from
    /// an earlier wait in the same poll of the task. A wait that was ready is followed,
    /// in the same poll, by the next (after the session takes the input), and
    /// registering again there would only store the same waker again: a socket's
    /// input comes with two or three waits. Cleared when a wait is pending, since
    /// the next poll may bring another waker.
    registered: bool,
    /// Which side is polled first this time, so neither starves the other.
    upstream_first: bool,
    /// For log lines (the client's address is the session's).
    upstream_addr: Option<SocketAddr>,
    /// The session sent something short enough to lead a pass (a WebSocket frame's
    /// header) since [`lead_a_pass`](Self::lead_a_pass) last looked.
    sent_short: bool,
    /// A side may hold an open pipe (see [`State::queue_into_pipe`]).
    open_pipe: bool,
    /// The session has not changed since its deadline was last worked out, and the
    /// timer is armed for it (or earlier): until the timer fires, no deadline has come.
    deadline_current: bool,
    /// What each upstream connection starts with.
    preamble: P,
}

/// Bytes every upstream connection of a session starts with, before any of the
/// session's: none (`()`, which takes no room in the task of every other connection),
/// or a PROXY protocol header (a layer-4 listener's `send_proxy_protocol`).
pub(crate) trait Preamble: Send + 'static {
    /// The bytes, if any.
    fn bytes(&self) -> Option<Bytes>;
}

impl Preamble for () {
    fn bytes(&self) -> Option<Bytes> {
        None
    }
}

impl Preamble for Bytes {
    fn bytes(&self) -> Option<Bytes> {
        Some(self.clone())
    }
}

struct Upstream<T> {
    peer: Peer<T>,
    /// Its key in the pool: the `Target::address` it was dialled for (see [`tls_pool_key`]).
    address: Arc<str>,
}

/// A finished dial: the pool key, and the connection (with whether it was pooled and
/// its peer's address) or why there is none.
type Connected<T> = (
    Arc<str>,
    Result<(T, bool, Option<SocketAddr>), ConnectError>,
);

/// A dial in progress.
struct Dialing<R: Runtime> {
    future: Pin<Box<dyn Future<Output = Connected<UpstreamConn<R>>> + Send>>,
}

impl<R: Runtime, C: Transport<R>, Ctx: Deref<Target = Context<R>>, P: Preamble>
    Sockets<R, C, Ctx, P>
{
    fn new(client: C, ctx: Ctx, generation: Arc<Generation<R>>, preamble: P) -> Self {
        Sockets {
            ctx,
            generation,
            client: Peer::new(client),
            upstream: None,
            connecting: None,
            signal: Registration::default(),
            drained: false,
            retired: false,
            armed: None,
            handed_over: false,
            registered: false,
            upstream_first: false,
            upstream_addr: None,
            sent_short: false,
            open_pipe: false,
            deadline_current: false,
            preamble,
        }
    }

    /// A client part way through a request may hold the rest until what it sent is
    /// acknowledged ([`Session::awaits_client`]); the listener defers acknowledgements
    /// to ride on the answer (`acks.rs`), so the client is acknowledged at once then.
    /// Once per connection: afterwards, the kernel acknowledges as it does by default.
    #[inline]
    fn acknowledge_if_awaited(&mut self, session: &Session) {
        let state = &mut self.client.state;
        if !state.acknowledged_at_once && session.awaits_client() {
            state.acknowledged_at_once = true;
            self.client.io.acknowledge_now();
        }
    }

    /// Carries out one output (`client_addr` is for log lines); `Break` on `Close`.
    fn carry_out(&mut self, output: Output, client_addr: Option<SocketAddr>) -> ControlFlow<()> {
        match output {
            Output::Send(side, bytes) => match self.state(side) {
                Some(state) => {
                    let short = bytes.len() <= PIPE_PREFIX_MAX;
                    state.send(bytes);
                    self.sent_short |= short;
                }
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
                // A pooled connection is handed over at once: no dial task to build.
                // (Never one to a session whose connections start with a preamble: it
                // was another client's.)
                let tls_key = tls_pool_key(&self.generation, &target.address);
                if target.allow_pooled && self.preamble.bytes().is_none() {
                    let now = self.now();
                    let key = tls_key.as_deref().unwrap_or(&target.address);
                    if let Some((stream, peer)) = self.generation.pool.take_with_peer(key, now) {
                        // The target's own address becomes the key, not a clone of
                        // it: a reference count that every thread writes moves
                        // once less each way.
                        self.attach(tls_key.unwrap_or(target.address), stream, peer);
                        self.handed_over = true;
                        return ControlFlow::Continue(());
                    }
                }
                let key = tls_key.unwrap_or_else(|| target.address.clone());
                let rt = self.ctx.runtime().clone();
                self.connecting = Some(Box::pin(Dialing {
                    future: Box::pin(connect(
                        rt,
                        self.generation.clone(),
                        target,
                        key,
                        self.preamble.bytes(),
                    )),
                }));
            }
            Output::ReleaseUpstream { reusable } => {
                self.abandon_dial();
                if let Some(upstream) = self.upstream.take() {
                    if reusable && upstream.peer.state.reusable() {
                        let now = self.now();
                        (self.generation.pool).put_with_peer(
                            &upstream.address,
                            upstream.peer.io,
                            self.upstream_addr,
                            now,
                        );
                    }
                }
            }
            Output::Event(event) => {
                if self.generation.setup.access_log {
                    access_log::event(&event, client_addr, self.upstream_addr);
                }
                let now = self.now();
                self.ctx.metrics().event(&event, client_addr, now);
            }
            Output::Close => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Polls, in this order, the drain signal, the session's deadline, the dial,
    /// write work on either side and a read on each side the session wants, and is
    /// ready with the first that has something to tell. `Stuck` if none is there.
    ///
    /// In the later waits of one poll of the task (`registered`), the writes go before
    /// the deadline: such a wait follows an input, whose sends are then written, and the
    /// session's deadline worked out before a write that completes would be thrown away
    /// (each input changes it). The first wait of every poll still puts the deadline
    /// first, so sockets that are always ready cannot keep it from firing.
    fn poll_wait(
        &mut self,
        session: &Session,
        mut timer: Pin<&mut R::Timer>,
        cx: &mut Cx<'_>,
    ) -> Poll<Wake> {
        if std::mem::take(&mut self.handed_over) {
            return Poll::Ready(Wake::Input(Input::UpstreamConnected { reused: true }));
        }
        if self.sent_short || self.open_pipe {
            if let Some(wake) = self.lead_a_pass(session, cx) {
                return Poll::Ready(wake);
            }
        }
        let registered = self.registered;
        if !registered {
            // Likely a new poll of the task: a reading left by another task (one that
            // panicked, say) is not this poll's.
            poll_clock::forget();
        }
        let wanted = (!self.drained, !self.retired);
        if !registered && (wanted.0 || wanted.1) {
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
        let mut wake_at = None;
        if !registered {
            let unchanged = self.armed.filter(|_| self.deadline_current);
            let deadline = match unchanged {
                // The timer holds the old waker: poll it with this one. Unless it
                // fired, the session's deadline (never earlier than the timer) has not
                // come, and working it out again would give the same.
                Some(armed) if R::poll_timer(timer.as_mut(), cx).is_pending() => {
                    ControlFlow::Continue(Some(armed))
                }
                _ => self.session_deadline(session, registered, timer.as_mut(), cx),
            };
            match deadline {
                ControlFlow::Break(()) => return Poll::Ready(Wake::Deadline),
                ControlFlow::Continue(at) => wake_at = at,
            }
        }
        // Both hold this poll's waker now (an early return above leaves it unset).
        self.registered = true;
        if let Some(connecting) = &mut self.connecting {
            if let Poll::Ready(connected) = connecting.future.as_mut().poll(cx) {
                return Poll::Ready(self.connected(connected));
            }
        }
        let mut waiting = !self.drained || self.connecting.is_some();
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
        if registered {
            match self.session_deadline(session, registered, timer.as_mut(), cx) {
                ControlFlow::Break(()) => return Poll::Ready(Wake::Deadline),
                ControlFlow::Continue(at) => wake_at = at,
            }
        }
        waiting |= wake_at.is_some();
        let passing = session.may_pass() && self.can_pass();
        for side in sides {
            // Passed bytes never enter this process: the session bounds them by its
            // `pipe_size`, not by the read room (`buffer_size`).
            let pass = match passing {
                true => session.passthrough_room(side),
                false => 0,
            };
            if let Some(poll) = (pass > 0).then(|| self.poll_pass(side, pass, cx)).flatten() {
                waiting = true;
                if let Poll::Ready(result) = poll {
                    return Poll::Ready(self.passed(side, result));
                }
                continue;
            }
            let room = self.read_room(session, side, passing);
            if room == 0 {
                continue;
            }
            if let Some(poll) = self.poll_read(side, room, cx) {
                waiting = true;
                if let Poll::Ready(result) = poll {
                    return Poll::Ready(self.read(side, result));
                }
            }
        }
        self.registered = false;
        // The poll ends; the next one (of any task) reads the clock again.
        poll_clock::forget();
        match waiting {
            true => Poll::Pending,
            false => Poll::Ready(Wake::Stuck),
        }
    }

    /// Arms the timer for the session's next deadline: `Break` when it has come, else
    /// the deadline, if there is one.
    fn session_deadline(
        &mut self,
        session: &Session,
        registered: bool,
        timer: Pin<&mut R::Timer>,
        cx: &mut Cx<'_>,
    ) -> ControlFlow<(), Option<Instant>> {
        let wake_at = session.poll_timeout();
        match wake_at {
            Some(at) => {
                if self.poll_deadline(at, registered, timer, cx).is_ready() {
                    return ControlFlow::Break(());
                }
            }
            // Whatever the timer was set to no longer matters (and it was not polled
            // in this turn): the next deadline sets it afresh.
            None => self.armed = None,
        }
        self.deadline_current = true;
        ControlFlow::Continue(wake_at)
    }

    /// Ready when the session's next deadline, `wake_at`, has come. The timer is moved
    /// only to an earlier deadline: most inputs push the session's deadline later (each
    /// request restarts its timeouts), and moving a timer in the runtime's wheel on each
    /// of them costs more than waking once at the old deadline and setting the new
    /// one then. With `registered`, a timer that is not moved is not polled again:
    /// it already holds this poll's waker, and its firing wakes the task.
    fn poll_deadline(
        &mut self,
        wake_at: Instant,
        registered: bool,
        mut timer: Pin<&mut R::Timer>,
        cx: &mut Cx<'_>,
    ) -> Poll<()> {
        if self.armed.is_none_or(|armed| wake_at < armed) {
            R::reset_timer(timer.as_mut(), wake_at);
            self.armed = Some(wake_at);
        } else if registered {
            return Poll::Pending;
        }
        ready!(R::poll_timer(timer.as_mut(), cx));
        if self.armed.is_some_and(|armed| armed < wake_at) {
            // An earlier deadline, since moved on: wait for the current one.
            R::reset_timer(timer.as_mut(), wake_at);
            self.armed = Some(wake_at);
            ready!(R::poll_timer(timer, cx));
        }
        // A timer that fired is spent: the next deadline, which the session's step
        // sets, must set and poll it again even within this poll of the task.
        self.armed = None;
        Poll::Ready(())
    }

    /// [`state`](Self::state), to read.
    fn state_ref(&self, side: Side) -> Option<&State> {
        match side {
            Side::Client => Some(&self.client.state),
            Side::Upstream => self.upstream.as_ref().map(|u| &u.peer.state),
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

    /// See [`State::written_but_held`](crate::peer::State::written_but_held).
    fn written_but_held(&self, side: Side) -> usize {
        self.state_ref(side).map_or(0, State::written_but_held)
    }

    /// Polls a read of at most `room` bytes from `side`; `None` if it cannot be read.
    fn poll_read(
        &self,
        side: Side,
        room: usize,
        cx: &mut Cx<'_>,
    ) -> Option<Poll<io::Result<Bytes>>> {
        let n = room.clamp(1, MAX_READ);
        match side {
            Side::Client => (self.client.state.readable()).then(|| self.client.io.poll_read(cx, n)),
            Side::Upstream => (self.upstream.as_ref())
                .filter(|u| u.peer.state.readable())
                .map(|u| u.peer.io.poll_read(cx, n)),
        }
    }

    /// How many bytes may be read (or passed) from `side` now: the session's room,
    /// less what the other side's queue holds of buffers written in part.
    #[inline(always)]
    fn read_room(&self, session: &Session, side: Side, passing: bool) -> usize {
        let room = match passing {
            true => session.read_room_when_passing(side),
            false => session.read_room(side),
        };
        room.saturating_sub(self.written_but_held(side.peer()))
    }

    /// A header and the payload behind it leave in one write: after the session sent
    /// something, a short queue moves into a pipe when the bytes its side gets next
    /// will pass through one ([`State::queue_into_pipe`](crate::peer::State::queue_into_pipe)),
    /// and the session is told it was written; at the next wait, before anything is
    /// written, those bytes are passed into that pipe behind it. If none are there
    /// yet, the write that follows sends the prefix alone.
    #[inline(never)]
    fn lead_a_pass(&mut self, session: &Session, cx: &mut Cx<'_>) -> Option<Wake> {
        let (sent, open) = (self.sent_short, self.open_pipe);
        (self.sent_short, self.open_pipe) = (false, false);
        if !session.may_pass() || !self.can_pass() {
            return None;
        }
        for to in [Side::Client, Side::Upstream] {
            let from = to.peer();
            let state = self.state_ref(to)?;
            let (open, lead) = (
                open && state.has_open_pipe(),
                sent && state.can_lead_a_pass(),
            );
            if !(open || lead) || !self.state_ref(from)?.readable() {
                continue;
            }
            if open {
                let pass = session.passthrough_room(from);
                if pass == 0 {
                    continue;
                }
                if let Some(Poll::Ready(result)) = self.poll_pass(from, pass, cx) {
                    return Some(self.passed(from, result));
                }
            } else if session.passes_once_sent(from) {
                if let Some(n) = self.state(to)?.queue_into_pipe() {
                    self.open_pipe = true;
                    return Some(Wake::Input(Input::Written(to, n)));
                }
            }
        }
        None
    }

    /// Whether both sockets can move bytes through a pipe (plain TCP on Linux).
    fn can_pass(&self) -> bool {
        let upstream = self.upstream.as_ref();
        upstream.is_some_and(|u| u.peer.io.can_splice()) && self.client.io.can_splice()
    }

    /// Polls moving at most `max` bytes from `from` straight to the other side through
    /// a pipe; `None` if that cannot be done now (no upstream, bytes still queued for
    /// the other side, no pipe to be had): the bytes are then read as usual.
    fn poll_pass(
        &mut self,
        from: Side,
        max: usize,
        cx: &mut Cx<'_>,
    ) -> Option<Poll<io::Result<usize>>> {
        let upstream = &mut self.upstream.as_mut()?.peer;
        match from {
            Side::Client => pass(&self.client, upstream, max, cx),
            Side::Upstream => pass(upstream, &mut self.client, max, cx),
        }
    }

    fn read(&mut self, side: Side, result: io::Result<Bytes>) -> Wake {
        let input = |bytes: Bytes| (!bytes.is_empty()).then_some(Input::Data(side, bytes));
        self.took(side, result.map(input))
    }

    fn passed(&mut self, side: Side, result: io::Result<usize>) -> Wake {
        self.took(
            side,
            result.map(|n| (n > 0).then_some(Input::Passed(side, n))),
        )
    }

    /// What a read or a pass from `side` gave: bytes, EOF (`None`) or a failure.
    fn took(&mut self, side: Side, result: io::Result<Option<Input>>) -> Wake {
        let Some(state) = self.state(side) else {
            return Wake::Nothing;
        };
        Wake::Input(match result {
            Ok(Some(input)) => input,
            Ok(None) => {
                state.eof = true;
                Input::Eof(side)
            }
            Err(e) => {
                debug!(?side, error = %e, "read failed");
                state.fail();
                Input::Reset(side)
            }
        })
    }

    #[inline(always)]
    fn wrote(&mut self, side: Side, result: io::Result<Wrote>) -> Wake {
        let Some(state) = self.state(side) else {
            return Wake::Nothing;
        };
        match result {
            Ok(wrote) => match state.wrote(&wrote) {
                0 => Wake::Nothing,
                n => Wake::Input(Input::Written(side, n)),
            },
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
                self.attach(address, stream, peer);
                Input::UpstreamConnected { reused }
            }
            Err(e) => {
                debug!(%address, error = ?e, "upstream connect failed");
                self.ctx.metrics().dial_failed(DialFailure::of(&e));
                Input::UpstreamFailed(e)
            }
        })
    }

    /// Makes `stream` (pooled under `address`, connected to `peer`) the upstream.
    fn attach(&mut self, address: Arc<str>, stream: UpstreamConn<R>, peer: Option<SocketAddr>) {
        self.upstream_addr = peer;
        debug!(upstream = ?peer, "upstream attached");
        self.upstream = Some(Upstream {
            peer: Peer::new(stream),
            address,
        });
    }

    /// Drops a dial in progress. (A dial the session gave up at `upstream_connect` is
    /// counted from its `Event::UpstreamConnectTimeout`.)
    fn abandon_dial(&mut self) {
        self.connecting = None;
    }

    /// The runtime's clock, read once per poll of the task (see [`poll_clock`]).
    fn now(&self) -> Instant {
        poll_clock::now(|| self.ctx.runtime().now())
    }

    fn state(&mut self, side: Side) -> Option<&mut State> {
        match side {
            Side::Client => Some(&mut self.client.state),
            Side::Upstream => self.upstream.as_mut().map(|u| &mut u.peer.state),
        }
    }

    /// Starts closing: what is queued on both sides is written out (and a TLS stream
    /// shut down) by [`poll_close`](Self::poll_close), for at most [`CLOSE_FLUSH`].
    /// The sockets close when `self` drops.
    fn start_close(&mut self) {
        self.abandon_dial();
        self.armed = None;
        self.client.state.finish_before_drop();
        if let Some(upstream) = &mut self.upstream {
            upstream.peer.state.finish_before_drop();
        }
    }

    /// Ready when both sides are written out and shut down, or [`CLOSE_FLUSH`] has
    /// passed on `timer`. The timer is set only if the first try leaves something
    /// (usually nothing is left, and setting a deadline that short would wake the
    /// runtime's timer for nothing).
    fn poll_close(&mut self, mut timer: Pin<&mut R::Timer>, cx: &mut Cx<'_>) -> Poll<()> {
        let client = self.client.poll_flush_all(cx).is_ready();
        let upstream =
            (self.upstream.as_mut()).is_none_or(|u| u.peer.poll_flush_all(cx).is_ready());
        if client && upstream {
            return Poll::Ready(());
        }
        if self.armed.is_none() {
            let deadline = self.ctx.runtime().now() + CLOSE_FLUSH;
            R::reset_timer(timer.as_mut(), deadline);
            self.armed = Some(deadline);
        }
        if R::poll_timer(timer, cx).is_ready() {
            debug!("close: the peers did not take the last bytes in time");
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<R: Runtime, C, Ctx: Deref<Target = Context<R>>, P> Drop for Sockets<R, C, Ctx, P> {
    /// A session that ends no longer waits for the drain or retirement signal.
    fn drop(&mut self) {
        self.ctx.cancel_signal(&mut self.signal);
    }
}

/// Polls moving at most `max` bytes from `from`'s socket into a pipe that `to` then
/// writes out (see [`crate::pipe`]). The pipe is taken only for the attempt and kept
/// only if bytes went in, so a waiting tunnel holds none.
fn pass<R, A: Transport<R>, B: Transport<R>>(
    from: &Peer<A>,
    to: &mut Peer<B>,
    max: usize,
    cx: &mut Cx<'_>,
) -> Option<Poll<io::Result<usize>>> {
    if !from.state.readable() {
        return None;
    }
    let piped = to.state.take_pipe()?;
    let poll = from.io.poll_splice_in(cx, piped.pipe(), max.min(MAX_READ));
    match poll {
        Poll::Ready(Ok(n)) => to.state.filled(piped, n),
        // An empty pipe may be in any state after a failed splice: not reused.
        Poll::Ready(Err(_)) if piped.is_empty() => drop(piped),
        Poll::Ready(Err(_)) | Poll::Pending => to.state.filled(piped, 0),
    }
    Some(poll)
}

/// The pool key of `address` if it is not the address itself: pool keys say whether
/// a connection is TLS. A plain address is its own key.
fn tls_pool_key<R: Runtime>(generation: &Generation<R>, address: &str) -> Option<Arc<str>> {
    (generation.setup.upstream_tls.contains_key(address)).then(|| format!("tls:{address}").into())
}

/// Dials `target` (pooled under `key`), with TLS if the configuration has it for
/// that address. The peer address is kept from the dial, so reuse from the pool
/// needs no `getpeername`.
async fn connect<R: Runtime>(
    rt: R,
    generation: Arc<Generation<R>>,
    target: Target,
    key: Arc<str>,
    proxy_header: Option<Bytes>,
) -> Connected<UpstreamConn<R>> {
    let tls = generation.setup.upstream_tls.get(&*target.address);
    let (mut tcp, peer) = match dial(&rt, &target.address).await {
        Ok(dialled) => dialled,
        Err(e) => return (key, Err(e)),
    };
    // First on the wire, before TLS: a fresh socket takes it whole at once.
    if let Some(header) = proxy_header {
        if let Err(e) = write_all::<R>(&mut tcp, &header).await {
            return (key, Err(connect_error(e)));
        }
    }
    let Some(tls) = tls else {
        return (key, Ok((Conn::Plain(tcp), false, peer)));
    };
    let handshake = rt.tls_connect(tcp, tls.server_name.clone(), tls.config.clone());
    match handshake.await {
        Ok(stream) => (key, Ok((Conn::Tls(Box::new(stream)), false, peer))),
        Err(e) => (key, Err(ConnectError::Other(format!("tls: {e}")))),
    }
}

/// Writes all of `bytes` to `tcp`. (`&mut` so that the future is `Send` without the
/// stream being `Sync`.)
async fn write_all<R: Runtime>(tcp: &mut R::Tcp, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let (t, b) = (&mut *tcp, bytes);
        let n = poll_fn(move |cx| t.poll_write(cx, &[io::IoSlice::new(b)])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
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
        // EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbers): this process or machine
        // is out of something; the server is not to blame.
        _ if matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) => {
            ConnectError::Local(e.to_string())
        }
        _ => ConnectError::Other(e.to_string()),
    }
}
