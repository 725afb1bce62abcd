//! [`Session`]: one client connection, driven by inputs and polled for outputs.
//!
//! The states and their transitions are described in [`crate::state`]; this file has
//! one short step function per state, plus the input, timer and output plumbing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::balance::ServerId;
use crate::error::{error_response, ProxyError};
use crate::framing::{BodyKind, BodyReader};
use crate::head::{FieldRoom, HeadError, HeadReader, Overflow};
use crate::io::{
    ClientInfo, ConnectError, Event, Input, Output, RequestLog, Side, Target, TunnelEnd, TunnelLog,
};
use crate::origin;
use crate::outputs::Outputs;
use crate::proxy::Proxy;
use crate::redirect;
use crate::request::RequestHead;
use crate::response::{ClientFraming, ResponseHead};
use crate::routing;
use crate::state::{Exchange, ResponsePhase, State, Tunnel, UpstreamLink};
use crate::timer::Timer;
use crate::upgrade;
use crate::websocket;
use crate::websocket_tunnel::{Sends, WebSocketTunnel};
use crate::Config;

/// The proxy's side of one client connection.
///
/// Calling contract:
/// - Feed every event with [`handle_input`](Self::handle_input) and call
///   [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout)
///   passes (calling it early is harmless).
/// - After each call, drain [`poll_output`](Self::poll_output) until `None` and carry
///   the outputs out in order.
/// - Read from a side only while [`wants_read`](Self::wants_read) is true; its answer
///   and the next deadline change only through `handle_*` calls.
/// - Time must not go backwards; an earlier `now` is treated as the latest one seen.
#[derive(Debug)]
pub struct Session {
    proxy: Proxy,
    config: Arc<Config>,
    client: ClientInfo,
    /// Counted against the connection limits (for `client.addr`) until the session
    /// ends.
    admitted: bool,
    /// Over a connection limit: the first request gets this error.
    refused: Option<ProxyError>,
    /// The upstream group of the current request, and its servers tried so far.
    group: usize,
    /// The server chosen for the current upstream connection (counted in use).
    server: Option<ServerId>,
    /// A tunnel slot is reserved (upgrade in flight, or tunnel open).
    tunnel_slot: bool,
    state: State,
    outputs: Outputs,
    now: Instant,
    /// Bytes read but not yet consumed, per source side (pipelined or held bytes).
    unread: [Bytes; 2],
    /// Whether each side's read half ended (EOF or reset).
    eof: [bool; 2],
    /// Bytes sent towards each side and not yet reported written.
    unacked: [usize; 2],
    /// When the writes towards each side last made progress (or began).
    send_progress_at: [Instant; 2],
    /// When the current request head began (first byte, or accept for a new connection).
    head_started: Option<Instant>,
    /// When the connection last became idle between requests.
    idle_since: Instant,
    /// The deadlines of a shutdown or a reload, once either comes.
    ending: Option<Box<Ending>>,
    /// Requests received on this connection so far.
    requests: u32,
    /// What HTTP exchanges reuse; see [`ExchangeRoom`].
    room: Option<Box<ExchangeRoom>>,
}

/// Deadlines a shutdown or a reload sets. Boxed: most sessions never see one, and
/// every session's task holds the field.
#[derive(Debug, Default)]
struct Ending {
    /// A drain: everything is closed by then.
    drain: Option<Instant>,
    /// A reload retired this session's configuration: tunnels run until then.
    retire: Option<Instant>,
}

/// What an HTTP exchange reuses from one request to the next: the servers tried for
/// it, and room for the field positions of its heads, given back after each, so that a
/// kept-alive connection parses heads without allocating. Boxed and taken on the first
/// request: a tunnel drops it, and an idle tunnel's session stays small.
#[derive(Debug, Default)]
struct ExchangeRoom {
    tried: Vec<usize>,
    request: FieldRoom,
    response: FieldRoom,
}

impl Session {
    /// A session of its own proxy, for a freshly accepted client connection. Servers
    /// create sessions with [`Proxy::session`] instead, so that all of them share
    /// upstream balancing and limits.
    pub fn new(config: Arc<Config>, client: ClientInfo, now: Instant) -> Session {
        Proxy::new(config).session(client, now)
    }

    /// A session of `proxy`; with `tcp_group`, a layer-4 tunnel to that group.
    pub(crate) fn start(
        proxy: Proxy,
        client: ClientInfo,
        now: Instant,
        tcp_group: Option<&str>,
    ) -> Session {
        let config = proxy.config().clone();
        let (admitted, refused) = match proxy.admit(client.addr.map(|a| a.ip()), now) {
            Ok(()) => (true, None),
            Err(error) => (false, Some(error)),
        };
        let mut session = Session {
            proxy,
            config,
            client,
            admitted,
            refused,
            group: 0,
            server: None,
            tunnel_slot: false,
            state: State::ExpectRequestHead(HeadReader::for_requests()),
            outputs: Outputs::default(),
            now,
            unread: [Bytes::new(), Bytes::new()],
            eof: [false; 2],
            unacked: [0; 2],
            send_progress_at: [now; 2],
            head_started: Some(now),
            idle_since: now,
            ending: None,
            requests: 0,
            room: None,
        };
        if let Some(group) = tcp_group {
            session.start_tcp(group);
        }
        session
    }

    /// Feeds one event in. Never panics, whatever the input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        if matches!(self.state, State::Closed) {
            return;
        }
        match input {
            Input::Data(side, data) => self.on_data(side, data),
            Input::Passed(side, n) => self.on_passed(side, n),
            Input::Eof(side) => self.eof[side.index()] = true,
            Input::Reset(side) => self.on_reset(side),
            // Only counters change (flow control and the send timer, which the
            // runtime asks for afresh); no step waits on a write, so there is nothing
            // to pump. Every relayed chunk is followed by one of these.
            Input::Written(side, n) => return self.on_written(side, n),
            Input::UpstreamConnected { reused } => self.on_upstream_connected(reused),
            Input::UpstreamFailed(ConnectError::Local(_)) => {
                if self.is_connecting() {
                    self.out_of_resources();
                }
            }
            Input::UpstreamFailed(_) => {
                if self.is_connecting() {
                    self.connect_failed(ProxyError::UpstreamConnectFailed);
                }
            }
            Input::Drain { deadline } => self.on_drain(deadline),
            Input::Retire { deadline } => self.on_retire(deadline),
        }
        self.pump();
    }

    /// Fires every deadline that `now` has reached. Safe to call at any time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // Each firing moves the session on (to a later deadline or to `Closed`); the
        // bound is a guard, not a mechanism.
        for _ in 0..16 {
            match self.next_timer() {
                Some((deadline, timer)) if deadline <= self.now => self.on_timer(timer),
                _ => break,
            }
        }
        self.pump();
    }

    /// The next thing for the runtime to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(deadline, _)| deadline)
    }

    /// Whether the runtime should read from `side` now: [`read_room`](Self::read_room)
    /// is not 0.
    pub fn wants_read(&self, side: Side) -> bool {
        self.read_room(side) > 0
    }

    /// How many bytes the runtime may read from `side` now (0: do not read). Flow
    /// control: the bytes taken from one side that the other side's writes have not
    /// yet reported (or that wait unread) stay within `buffer_size`, so a peer that
    /// stops reading holds at most that much of the other side's bytes in the proxy.
    /// While a head is expected, a whole `buffer_size` may be read.
    #[inline]
    pub fn read_room(&self, side: Side) -> usize {
        if self.eof[side.index()] {
            return 0;
        }
        let limit = self.config.buffer_size;
        let room_towards = |to: Side| limit.saturating_sub(self.unacked[to.index()]);
        let room_unread = |side: Side| limit.saturating_sub(self.unread[side.index()].len());
        match (&self.state, side) {
            (State::ExpectRequestHead(_), Side::Client) => limit,
            (State::Exchange(x), Side::Client) => {
                if x.request_body.is_done() {
                    room_unread(Side::Client)
                } else {
                    room_towards(Side::Upstream)
                }
            }
            (State::Exchange(x), Side::Upstream) => match (&x.upstream, &x.response) {
                (UpstreamLink::Connected { .. }, ResponsePhase::ExpectHead(_)) => limit,
                (UpstreamLink::Connected { .. }, ResponsePhase::Body(_)) => {
                    room_towards(Side::Client)
                }
                _ => 0,
            },
            (State::Tunnel(_), side) => room_towards(side.peer()),
            (State::Lingering { .. }, Side::Client) => limit,
            (State::ExpectTcpUpstream { .. }, Side::Client) => room_unread(Side::Client),
            _ => 0,
        }
    }

    /// How many of the next bytes from `from` the runtime may move straight to the
    /// other side without showing them to the session (then reporting
    /// [`Input::Passed`]), 0 if none. Such bytes are opaque to the proxy: any byte of
    /// a tunnel that is not WebSocket, the payload of a WebSocket data frame in
    /// flight (headers and control frames are always read), and the rest of an HTTP
    /// body that goes on as it came (`Content-Length` or close-delimited; heads and
    /// chunked bodies are always read, and a body never passes beyond its end, so
    /// the next message is read too). Never more than
    /// `pipe_size` (they are in flight in a kernel pipe, not in the proxy's memory,
    /// so `buffer_size` does not bound them), and 0 while anything the session sent
    /// towards the other side is unwritten, so the moved bytes cannot overtake it.
    /// Bytes passed count as sent: [`read_room`](Self::read_room) is 0 until the
    /// other side has written them down to below `buffer_size`.
    #[inline(always)]
    pub fn passthrough_room(&self, from: Side) -> usize {
        match (self.eof[from.index()], self.unacked[from.peer().index()]) {
            (false, 0) => self.opaque_ahead(from).min(self.config.pipe_size),
            _ => 0,
        }
    }

    /// Whether the next bytes from `from` may pass unseen as soon as everything sent
    /// towards the other side is written: [`passthrough_room`](Self::passthrough_room)
    /// is then above 0. A runtime that passes bytes through a kernel pipe can put a
    /// short send (a WebSocket frame's header) into that pipe first and report it
    /// written: the header and the payload behind it then leave in one write, not as
    /// a packet of their own.
    #[inline]
    pub fn passes_once_sent(&self, from: Side) -> bool {
        !self.eof[from.index()] && self.opaque_ahead(from) > 0
    }

    /// How many of the next bytes from `from` the session need not see, flow control
    /// aside: the rest of a WebSocket data frame in flight, any byte of a tunnel that
    /// is not WebSocket, or the rest of an HTTP body that goes on as it came. 0 while
    /// bytes read from `from` wait unread, or a tunnel's other side is shut.
    #[inline(always)]
    fn opaque_ahead(&self, from: Side) -> usize {
        if !self.unread[from.index()].is_empty() {
            return 0;
        }
        let ahead = match &self.state {
            State::Tunnel(tunnel) if tunnel.shut[from.peer().index()] => 0,
            State::Tunnel(tunnel) => match &tunnel.websocket {
                Some(ws) => ws.opaque_ahead(from),
                None => u64::MAX,
            },
            State::Exchange(x) => x.verbatim_ahead(from),
            _ => 0,
        };
        usize::try_from(ahead).unwrap_or(usize::MAX)
    }

    /// [`read_room`](Self::read_room) for a runtime that passes bytes unseen: after a
    /// large WebSocket data frame from `side`, only a frame header's worth, so that
    /// the next frame's payload, likely large too, passes rather than being read in
    /// with its header. (With a `pipe_size` of 0 nothing passes: reads stay whole.)
    #[inline]
    pub fn read_room_when_passing(&self, side: Side) -> usize {
        let room = self.read_room(side);
        match &self.state {
            State::Tunnel(tunnel)
                if self.config.pipe_size > 0
                    && (tunnel.websocket.as_ref())
                        .is_some_and(|ws| ws.expects_large_frame(side)) =>
            {
                room.min(crate::websocket::MAX_HEADER)
            }
            _ => room,
        }
    }

    /// The client this session serves, as given when it started.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Whether bytes may pass unseen ([`passthrough_room`](Self::passthrough_room))
    /// in this state at all: in a tunnel, or during a request's exchange (its bodies).
    /// A runtime can skip asking otherwise.
    #[inline]
    pub fn may_pass(&self) -> bool {
        matches!(self.state, State::Tunnel(_) | State::Exchange(_))
    }

    /// Whether the client is part way through a request: some of a head came, or a
    /// body is not all read. Nothing can answer it until the rest comes, and a client
    /// that writes the rest without `TCP_NODELAY` holds it until what it sent is
    /// acknowledged: a runtime that defers acknowledgements to ride on the answer
    /// (`TCP_QUICKACK` off) should acknowledge at once.
    pub fn awaits_client(&self) -> bool {
        match &self.state {
            State::ExpectRequestHead(head) => head.buffered() > 0,
            State::Exchange(x) => !x.request_body.is_done(),
            _ => false,
        }
    }

    /// Whether the session is over (`Close` was emitted).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The next deadline and the rule it enforces.
    pub fn next_timer(&self) -> Option<(Instant, Timer)> {
        let t = &self.config.timeouts;
        let mut next: Option<(Instant, Timer)> = None;
        let mut consider = |at: Instant, timer: Timer| {
            if next.is_none_or(|(best, _)| at < best) {
                next = Some((at, timer));
            }
        };
        if matches!(self.state, State::Closed) {
            return None;
        }
        let ending = self.ending.as_deref();
        if let Some(deadline) = ending.and_then(|e| e.retire) {
            consider(deadline, Timer::Retire);
        }
        if let Some(deadline) = ending.and_then(|e| e.drain) {
            consider(deadline, Timer::Drain);
        }
        for (side, timer) in [
            (Side::Client, Timer::SendClient),
            (Side::Upstream, Timer::SendUpstream),
        ] {
            if self.unacked[side.index()] > 0 && self.may_write(side) {
                consider(self.send_progress_at[side.index()] + t.send, timer);
            }
        }
        match &self.state {
            State::ExpectRequestHead(_) => match self.head_started {
                Some(started) => consider(started + t.client_head, Timer::ClientHead),
                None => consider(self.idle_since + t.keepalive_idle, Timer::KeepAliveIdle),
            },
            State::Exchange(x) => {
                match (&x.upstream, &x.response) {
                    (UpstreamLink::Connecting { since }, _) => {
                        consider(*since + t.upstream_connect, Timer::UpstreamConnect)
                    }
                    // The upstream's silence counts once it has the whole request.
                    (_, ResponsePhase::ExpectHead(_)) if x.request_body.is_done() => consider(
                        x.upstream_activity + t.upstream_response_head,
                        Timer::UpstreamResponseHead,
                    ),
                    (_, ResponsePhase::Body(_)) if self.wants_read(Side::Upstream) => {
                        consider(x.response_read_at + t.body_read, Timer::ResponseBodyRead)
                    }
                    _ => {}
                }
                if !x.request_body.is_done() && self.wants_read(Side::Client) {
                    consider(x.request_read_at + t.body_read, Timer::RequestBodyRead);
                    let rate = self.config.limits.min_request_body_rate;
                    if let Some(at) = x.body_rate_deadline(t.body_read, rate) {
                        consider(at, Timer::RequestBodyRate);
                    }
                }
            }
            State::ExpectTcpUpstream { since } => {
                consider(*since + t.upstream_connect, Timer::UpstreamConnect)
            }
            State::Tunnel(tunnel) => {
                let ws = tunnel.websocket.as_deref();
                // A side flow control holds unread is not silent, and cannot be heard.
                let held = [Side::Client, Side::Upstream].map(|side| self.is_full(side.peer()));
                if let Some((at, timer)) = ws.and_then(|ws| ws.next_timer(&self.config, held)) {
                    consider(at, timer);
                }
                if ws.is_none_or(|ws| ws.closing().is_none()) {
                    consider(tunnel.last_activity + t.tunnel_idle, Timer::TunnelIdle);
                    if let Some(first) = tunnel.first_eof_at {
                        consider(first + t.fin, Timer::Fin);
                    }
                }
            }
            State::Lingering { until } => consider(*until, Timer::Linger),
            State::Closed => {}
        }
        next
    }

    // ---------------------------------------------------------------- inputs

    fn on_data(&mut self, side: Side, data: Bytes) {
        if data.is_empty() || self.eof[side.index()] {
            return;
        }
        let has_upstream = matches!(
            &self.state,
            State::Exchange(x) if x.upstream.is_connected()
        ) || matches!(self.state, State::Tunnel(_));
        if side == Side::Upstream && !has_upstream {
            return;
        }
        let unread = &mut self.unread[side.index()];
        if unread.is_empty() {
            *unread = data;
        } else {
            // Only held bytes (pipelined requests, data after an upgrade request) are
            // ever joined; bytes in flight pass straight through.
            let mut joined = BytesMut::with_capacity(unread.len() + data.len());
            joined.extend_from_slice(unread);
            joined.extend_from_slice(&data);
            *unread = joined.freeze();
        }
    }

    /// Bytes from `from` went to the other side unseen: counted as sent there, and as
    /// activity. More than [`passthrough_room`](Self::passthrough_room) allowed is a
    /// runtime's bug, and ignored, since the stream they belong to is unknown.
    fn on_passed(&mut self, from: Side, n: usize) {
        if n == 0 || n > self.passthrough_room(from) {
            return;
        }
        let to = from.peer();
        let now = self.now;
        match &mut self.state {
            State::Tunnel(tunnel) => {
                tunnel.last_activity = now;
                tunnel.forwarded[to.index()] += n as u64;
            }
            State::Exchange(x) => x.passed(from, n as u64, now),
            _ => return,
        }
        self.note_sent(to, n);
        self.with_websocket(|ws, now, out| ws.passed(from, n as u64, now, out));
    }

    fn on_written(&mut self, side: Side, n: usize) {
        if n == 0 {
            return;
        }
        let i = side.index();
        let was_full = self.is_full(side);
        self.unacked[i] = self.unacked[i].saturating_sub(n);
        self.send_progress_at[i] = self.now;
        // Flow control held the other side unread and lets it be read again: its
        // silence counts from now. Counted from its last read, a slow reader or writer
        // on this side would end a healthy body, or declare a live WebSocket peer dead,
        // the moment the room came back.
        let resumed = was_full && !self.is_full(side);
        let now = self.now;
        match &mut self.state {
            State::Exchange(x) => {
                // The wait for the answer counts once the upstream has the whole
                // request, not while it still reads it.
                if side == Side::Upstream {
                    x.upstream_activity = now;
                }
                if resumed {
                    match side {
                        Side::Client => x.response_read_at = now,
                        Side::Upstream => {
                            x.request_read_at = now;
                            x.body_rate_from = (now, x.request_body_bytes);
                        }
                    }
                }
            }
            State::Tunnel(tunnel) => {
                // Bytes moving out are activity as much as bytes coming in: a tunnel
                // streaming to a slow reader reads nothing while it waits.
                tunnel.last_activity = now;
                if let Some(ws) = tunnel.websocket.as_deref_mut().filter(|_| resumed) {
                    ws.reading_resumed(side.peer(), now);
                }
            }
            _ => {}
        }
    }

    /// Whether the bytes sent `towards` a side and not yet written fill `buffer_size`:
    /// then flow control holds the other side unread (see [`read_room`](Self::read_room)).
    fn is_full(&self, towards: Side) -> bool {
        self.unacked[towards.index()] >= self.config.buffer_size
    }

    fn on_reset(&mut self, side: Side) {
        self.eof[side.index()] = true;
        match &self.state {
            State::Tunnel(tunnel) if tunnel.websocket.is_some() => {
                self.with_websocket(|ws, now, out| ws.on_reset(side, now, out));
            }
            State::Tunnel(_) => self.end_tunnel(TunnelEnd::Reset(side)),
            State::Exchange(_) if side == Side::Upstream => {
                // Handled like an EOF by the exchange (retry, 502 or truncation) but the
                // connection is not reusable either way.
                if let State::Exchange(x) = &mut self.state {
                    x.upstream_reusable = false;
                }
            }
            State::Lingering { .. }
            | State::ExpectRequestHead(_)
            | State::Exchange(_)
            | State::ExpectTcpUpstream { .. } => self.close(),
            State::Closed => {}
        }
    }

    fn on_upstream_connected(&mut self, reused: bool) {
        let now = self.now;
        if !self.is_connecting() {
            return;
        }
        if let Some(server) = &self.server {
            self.proxy.server_connected(server);
        }
        if let State::ExpectTcpUpstream { .. } = self.state {
            self.open_tunnel("tcp".into(), None, now);
            return;
        }
        let State::Exchange(x) = &mut self.state else {
            return;
        };
        x.upstream = UpstreamLink::Connected { reused };
        // Bytes kept for the upstream until now are written from now.
        self.send_progress_at[Side::Upstream.index()] = now;
        x.upstream_activity = now;
        x.request_read_at = now;
        let head = x.forwarded_head.clone();
        let pending = std::mem::take(&mut x.pending_upstream);
        // The pending body bytes were counted when produced; the head is counted now.
        self.send(Side::Upstream, head);
        self.outputs.extend(
            pending
                .into_iter()
                .map(|bytes| Output::Send(Side::Upstream, bytes)),
        );
    }

    /// Whether the session takes no new work (shutdown or reload): no keep-alive, no
    /// new upgrades.
    fn draining(&self) -> bool {
        self.ending.is_some()
    }

    /// A reload: like a drain, except that tunnels run on untouched until `deadline`,
    /// and only then get the drain (Close 1001, closed `fin` later).
    /// A connection that has not sent its first request yet is kept too: it was
    /// accepted just before the reload and may be sending it now; it is answered (with
    /// `Connection: close`) rather than cut, which its client could not retry.
    fn on_retire(&mut self, deadline: Instant) {
        let fresh = self.requests == 0 && matches!(self.state, State::ExpectRequestHead(_));
        if fresh || matches!(self.state, State::Tunnel(_)) {
            let ending = self.ending.get_or_insert_with(Box::default);
            ending.retire = Some(ending.retire.map_or(deadline, |d| d.min(deadline)));
        } else {
            self.on_drain(deadline);
        }
    }

    fn on_drain(&mut self, deadline: Instant) {
        let ending = self.ending.get_or_insert_with(Box::default);
        ending.drain = Some(ending.drain.map_or(deadline, |d| d.min(deadline)));
        match &self.state {
            State::ExpectRequestHead(reader)
                if reader.buffered() == 0 && self.unread[Side::Client.index()].is_empty() =>
            {
                self.close();
            }
            State::Tunnel(_) => {
                self.with_websocket(|ws, now, out| {
                    ws.close(
                        websocket::GOING_AWAY,
                        "going away",
                        TunnelEnd::Drain,
                        now,
                        out,
                    )
                });
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::ClientHead => {
                let started =
                    matches!(&self.state, State::ExpectRequestHead(r) if r.buffered() > 0);
                if started {
                    self.fail(ProxyError::ClientHeadTimeout);
                } else {
                    self.close();
                }
            }
            Timer::KeepAliveIdle | Timer::Linger => self.close(),
            Timer::UpstreamConnect => {
                self.outputs
                    .push_back(Output::Event(Event::UpstreamConnectTimeout));
                self.connect_failed(ProxyError::UpstreamConnectTimeout)
            }
            Timer::UpstreamResponseHead => self.fail(ProxyError::UpstreamResponseTimeout),
            Timer::RequestBodyRead => self.fail(ProxyError::ClientBodyTimeout),
            Timer::RequestBodyRate => self.fail(ProxyError::ClientBodyTooSlow),
            Timer::ResponseBodyRead => self.fail(ProxyError::UpstreamBodyTimeout),
            Timer::SendClient | Timer::SendUpstream => match self.state {
                State::Tunnel(_) => self.end_tunnel(TunnelEnd::SendTimeout),
                _ => self.abort(ProxyError::SendTimeout),
            },
            Timer::TunnelIdle => {
                if !self.with_websocket(|ws, now, out| {
                    ws.close(
                        websocket::GOING_AWAY,
                        "idle timeout",
                        TunnelEnd::IdleTimeout,
                        now,
                        out,
                    )
                }) {
                    self.end_tunnel(TunnelEnd::IdleTimeout);
                }
            }
            Timer::Fin => {
                let closing = match &self.state {
                    State::Tunnel(t) => t.websocket.as_ref().and_then(|ws| ws.closing()),
                    _ => None,
                };
                self.end_tunnel(closing.unwrap_or(TunnelEnd::FinTimeout));
            }
            Timer::Ping(_) | Timer::PongTimeout(_) => {
                self.with_websocket(|ws, now, out| ws.on_timer(timer, now, out));
            }
            Timer::Retire => {
                if let Some(ending) = &mut self.ending {
                    ending.retire = None;
                }
                let deadline = self.now + self.config.timeouts.fin;
                self.on_drain(deadline);
            }
            Timer::Drain => match self.state {
                State::Tunnel(_) => self.end_tunnel(TunnelEnd::Drain),
                _ => self.close(),
            },
        }
    }

    // ---------------------------------------------------------------- states

    /// Runs the current state's step until nothing more can happen without input.
    fn pump(&mut self) {
        loop {
            let progressed = match self.state {
                State::ExpectRequestHead(_) => self.step_request_head(),
                State::Exchange(_) => self.step_exchange(),
                // A tunnel's step relays all there is and takes up every EOF in one
                // pass; only leaving the tunnel leaves more to do.
                State::Tunnel(_) => {
                    self.step_tunnel();
                    !matches!(self.state, State::Tunnel(_))
                }
                State::Lingering { .. } => self.step_lingering(),
                // Client bytes wait for the upstream connection.
                State::ExpectTcpUpstream { .. } => false,
                State::Closed => false,
            };
            if !progressed {
                break;
            }
        }
    }

    fn step_request_head(&mut self) -> bool {
        let State::ExpectRequestHead(reader) = &mut self.state else {
            return false;
        };
        let input = &mut self.unread[Side::Client.index()];
        if input.is_empty() {
            if self.eof[Side::Client.index()] {
                self.close();
                return true;
            }
            return false;
        }
        if self.head_started.is_none() {
            self.head_started = Some(self.now);
        }
        let limits = &self.config.limits;
        match reader.read(input, limits.max_head_size) {
            Ok(None) => true,
            Ok(Some(head)) => {
                self.on_request_head(head);
                true
            }
            Err(HeadError::BareLineFeed) => {
                self.fail(ProxyError::BareLineFeed);
                true
            }
            Err(HeadError::NotAMethod) => {
                self.fail(ProxyError::MalformedRequestLine);
                true
            }
            Err(HeadError::TooLarge(open)) => {
                self.fail(match open {
                    Overflow::FirstToken => ProxyError::MethodTooLong,
                    Overflow::StartLine => ProxyError::RequestTargetTooLong,
                    Overflow::Fields => ProxyError::RequestHeadTooLarge,
                });
                true
            }
        }
    }

    /// See [`ExchangeRoom`].
    fn room(&mut self) -> &mut ExchangeRoom {
        self.room.get_or_insert_with(Box::default)
    }

    /// Sends the client the head it gets for `response`, and keeps the response's
    /// field room for the next one.
    fn forward_response(&mut self, response: ResponseHead, framing: ClientFraming) {
        let bytes = response.forward(framing, self.proxy.wall_clock());
        if let Some(room) = &mut self.room {
            room.response = response.into_room();
        }
        self.send(Side::Client, bytes);
    }

    fn on_request_head(&mut self, head: Bytes) {
        self.requests = self.requests.saturating_add(1);
        let room = std::mem::take(&mut self.room().request);
        let request = match RequestHead::parse_in(head, &self.config, room) {
            Ok(request) => request,
            Err(error) => return self.fail(error),
        };
        if let Some(refused) = self.refused {
            return self.refuse(&request, refused);
        }
        if self.draining() && request.upgrade().is_some() {
            return self.refuse(&request, ProxyError::UpgradeWhileDraining);
        }
        if request.answer_here() {
            let answer = request.answer(self.proxy.wall_clock().date());
            return self.answer_as_proxy(&request, answer, 200, None);
        }
        if let Some(port) = self.client.redirect_to_https {
            return match redirect::to_https(&request, port, self.proxy.wall_clock().date()) {
                Some((redirect, status)) => self.answer_as_proxy(&request, redirect, status, None),
                None => self.refuse(&request, ProxyError::MissingHost),
            };
        }
        if !self.config.routes.is_empty() && routing::has_dot_segment(request.forward_target()) {
            return self.refuse(&request, ProxyError::DotSegmentInPath);
        }
        let mut request = request;
        let Some(routed) = routing::route(&self.config, request.host(), request.forward_target())
        else {
            return self.refuse(&request, ProxyError::NoRoute);
        };
        let offers_websocket = request.upgrade().is_some_and(|u| u.offers_websocket());
        let allowed_origins =
            (routed.allowed_origins).unwrap_or(&self.config.websocket.allowed_origins);
        if offers_websocket && !origin::allows(allowed_origins, request.fields()) {
            return self.refuse(&request, ProxyError::OriginNotAllowed);
        }
        let max_body = (routed.max_request_body).unwrap_or(self.config.limits.max_request_body);
        let request_body = match BodyReader::request(request.body(), max_body) {
            Ok(reader) => reader,
            Err(error) => return self.refuse(&request, error),
        };
        request.strip_prefix(routed.strip);
        let Some(group) = self.proxy.find_group(routed.group) else {
            return self.refuse(&request, ProxyError::NoLiveUpstream);
        };
        if request.upgrade().is_some() {
            if !self.proxy.reserve_tunnel() {
                return self.refuse(&request, ProxyError::TooManyTunnels);
            }
            self.tunnel_slot = true;
        }
        self.group = group;
        self.room().tried.clear();
        if !self.choose_server() {
            return self.refuse(&request, ProxyError::NoLiveUpstream);
        }
        let now = self.now;
        let host = self
            .server
            .as_ref()
            .map_or(&b""[..], |s| s.address.as_bytes());
        let forwarded_head = request.forward(&self.config, &self.client, host);
        // The upstream is dialled once the body is here (see
        // `Config::request_buffering`); a client waiting for `100 Continue` sends it
        // only once the upstream asks.
        let gather = self.config.request_buffering
            && !request_body.is_done()
            && !request.expects_continue()
            && request.upgrade().is_none();
        self.state = State::Exchange(Box::new(Exchange {
            started: self.head_started.unwrap_or(now),
            request,
            forwarded_head,
            request_body,
            request_body_bytes: 0,
            upstream: match gather {
                true => UpstreamLink::AwaitingBody,
                false => UpstreamLink::Connecting { since: now },
            },
            pending_upstream: Vec::new(),
            response: ResponsePhase::ExpectHead(HeadReader::for_responses()),
            status: None,
            response_body_bytes: 0,
            upstream_reusable: false,
            client_keep_alive: false,
            upstream_spoke: false,
            retried: false,
            upstream_activity: now,
            request_read_at: now,
            body_rate_from: (now, 0),
            response_read_at: now,
        }));
        self.head_started = None;
        if !gather {
            self.connect(true);
        }
    }

    /// Dials the upstream for a request whose body was gathered first, once the body
    /// is whole or fills `buffer_size` (then flow control stops reading it).
    fn dial_when_gathered(&mut self) -> bool {
        let full = self.is_full(Side::Upstream);
        let now = self.now;
        let State::Exchange(x) = &mut self.state else {
            return false;
        };
        if x.upstream != UpstreamLink::AwaitingBody || !(full || x.request_body.is_done()) {
            return false;
        }
        x.upstream = UpstreamLink::Connecting { since: now };
        self.connect(true);
        true
    }

    /// Picks the next server of the current group not tried yet (the group's policy
    /// decides which), and counts it in use.
    fn choose_server(&mut self) -> bool {
        if let Some(previous) = self.server.take() {
            self.proxy.release_server(&previous);
        }
        let room = self.room.get_or_insert_with(Box::default);
        let client = self.client.addr.map(|addr| addr.ip());
        self.server = self.proxy.pick(self.group, &room.tried, client, self.now);
        if let Some(server) = &self.server {
            room.tried.push(server.server);
        }
        self.server.is_some()
    }

    fn connect(&mut self, allow_pooled: bool) {
        let Some(server) = &self.server else { return };
        self.outputs.push_back(Output::Connect(Target {
            address: server.address.clone(),
            allow_pooled,
        }));
    }

    /// Whether what is sent towards `side` can be written now: not the request bytes
    /// kept until the upstream is connected, whose wait other deadlines bound.
    fn may_write(&self, side: Side) -> bool {
        match (&self.state, side) {
            (State::Exchange(x), Side::Upstream) => x.upstream.is_connected(),
            _ => true,
        }
    }

    fn is_connecting(&self) -> bool {
        match &self.state {
            State::Exchange(x) => matches!(x.upstream, UpstreamLink::Connecting { .. }),
            State::ExpectTcpUpstream { .. } => true,
            _ => false,
        }
    }

    /// Dialling failed or timed out: the server is marked, and the next server of the
    /// group is tried, since nothing was sent yet. An upgrade is never retried.
    fn connect_failed(&mut self, error: ProxyError) {
        let now = self.now;
        if let Some(server) = &self.server {
            self.proxy.server_failed(server, now);
        }
        let retryable = match &self.state {
            State::Exchange(x) => x.request.upgrade().is_none(),
            State::ExpectTcpUpstream { .. } => true,
            _ => false,
        };
        let tried_all = self.room().tried.len() >= self.proxy.group_len(self.group);
        if retryable && !tried_all && self.choose_server() {
            self.drop_connection(false);
            match &mut self.state {
                State::Exchange(x) => x.upstream = UpstreamLink::Connecting { since: now },
                State::ExpectTcpUpstream { since } => *since = now,
                _ => {}
            }
            let pooled = matches!(self.state, State::Exchange(_));
            self.connect(pooled);
        } else if let State::ExpectTcpUpstream { .. } = self.state {
            self.drop_connection(false);
            self.end_tunnel(TunnelEnd::UpstreamUnavailable);
        } else {
            self.fail(error);
        }
    }

    /// The proxy could not open a connection itself: the server is not blamed (its
    /// health is untouched) and no other server is tried; the client gets 503.
    fn out_of_resources(&mut self) {
        if let State::ExpectTcpUpstream { .. } = self.state {
            self.drop_connection(false);
            self.end_tunnel(TunnelEnd::UpstreamUnavailable);
        } else {
            self.fail(ProxyError::OutOfResources);
        }
    }

    /// A layer-4 session: dial a server of `group` at once; client bytes wait.
    fn start_tcp(&mut self, group: &str) {
        self.head_started = None;
        self.state = State::ExpectTcpUpstream { since: self.now };
        if let Some(refused) = self.refused {
            return self.end_tunnel(TunnelEnd::Refused(refused));
        }
        if !self.proxy.reserve_tunnel() {
            return self.end_tunnel(TunnelEnd::Refused(ProxyError::TooManyTunnels));
        }
        self.tunnel_slot = true;
        if let Some(group) = self.proxy.find_group(group) {
            self.group = group;
            if self.choose_server() {
                return self.connect(false);
            }
        }
        self.end_tunnel(TunnelEnd::UpstreamUnavailable);
    }

    fn step_exchange(&mut self) -> bool {
        let mut progressed = self.step_request_body();
        progressed |= self.dial_when_gathered();
        progressed |= self.step_response();
        let State::Exchange(x) = &self.state else {
            return true;
        };
        if matches!(x.response, ResponsePhase::Done) {
            self.finish_exchange();
            return true;
        }
        if !x.request_body.is_done() && self.eof[Side::Client.index()] && self.unread[0].is_empty()
        {
            // The client gave up in the middle of its request body.
            self.abort_quietly();
            return true;
        }
        progressed
    }

    /// Moves request body bytes from the client towards the upstream.
    fn step_request_body(&mut self) -> bool {
        let now = self.now;
        let State::Exchange(x) = &mut self.state else {
            return false;
        };
        let input = &mut self.unread[Side::Client.index()];
        if x.request_body.is_done() || input.is_empty() {
            return false;
        }
        let connected = x.upstream.is_connected();
        let mut sent = 0usize;
        let outputs = &mut self.outputs;
        let pending = &mut x.pending_upstream;
        let result = x
            .request_body
            .read(input, &mut x.request_body_bytes, |piece| {
                sent += piece.len();
                if connected {
                    outputs.push_back(Output::Send(Side::Upstream, piece));
                } else {
                    pending.push(piece);
                }
            });
        x.request_read_at = now;
        x.upstream_activity = now;
        self.note_sent(Side::Upstream, sent);
        if let Err(error) = result {
            self.fail(error);
        }
        true
    }

    /// Reads what the upstream sent for the current exchange.
    fn step_response(&mut self) -> bool {
        let State::Exchange(x) = &mut self.state else {
            return false;
        };
        if !x.upstream.is_connected() {
            return false;
        }
        let input = &mut self.unread[Side::Upstream.index()];
        let upstream_eof = self.eof[Side::Upstream.index()];
        if input.is_empty() && !upstream_eof {
            return false;
        }
        if !input.is_empty() {
            x.upstream_spoke = true;
            x.upstream_activity = self.now;
        }
        match &mut x.response {
            ResponsePhase::ExpectHead(reader) => {
                if input.is_empty() {
                    return self.upstream_closed_before_head();
                }
                let max = self.config.limits.max_head_size;
                match reader.read(input, max) {
                    Ok(None) => true,
                    Ok(Some(head)) => {
                        self.on_response_head(head);
                        true
                    }
                    Err(HeadError::TooLarge(_)) => {
                        self.fail(ProxyError::ResponseHeadTooLarge);
                        true
                    }
                    Err(HeadError::BareLineFeed | HeadError::NotAMethod) => {
                        self.fail(ProxyError::MalformedResponse);
                        true
                    }
                }
            }
            ResponsePhase::Body(reader) => {
                if input.is_empty() {
                    // EOF: the end of a close-delimited body, or a truncation.
                    if reader.finish_at_eof() {
                        x.response = ResponsePhase::Done;
                    } else {
                        self.abort(ProxyError::UpstreamTruncatedBody);
                    }
                    return true;
                }
                let mut sent = 0usize;
                let outputs = &mut self.outputs;
                let result = reader.read(input, &mut x.response_body_bytes, |piece| {
                    sent += piece.len();
                    outputs.push_back(Output::Send(Side::Client, piece));
                });
                x.response_read_at = self.now;
                if reader.is_done() {
                    x.response = ResponsePhase::Done;
                }
                self.note_sent(Side::Client, sent);
                if result.is_err() {
                    self.abort(ProxyError::InvalidResponseBody);
                }
                true
            }
            ResponsePhase::Done => false,
        }
    }

    /// The upstream closed before a response head: a stale pooled connection is
    /// retried once on a fresh one when nothing unrepeatable was sent; else 502.
    fn upstream_closed_before_head(&mut self) -> bool {
        let State::Exchange(x) = &mut self.state else {
            return false;
        };
        let repeatable = x.request.body() == BodyKind::Empty;
        let stale_pooled =
            matches!(x.upstream, UpstreamLink::Connected { reused: true }) && !x.upstream_spoke;
        if stale_pooled && repeatable && !x.retried && x.request.upgrade().is_none() {
            x.retried = true;
            x.upstream = UpstreamLink::Connecting { since: self.now };
            x.response = ResponsePhase::ExpectHead(HeadReader::for_responses());
            // The same server, freshly dialled.
            self.drop_connection(false);
            self.connect(false);
        } else {
            self.fail(ProxyError::UpstreamClosedEarly);
        }
        true
    }

    fn on_response_head(&mut self, head: Bytes) {
        let draining = self.draining();
        let State::Exchange(x) = &mut self.state else {
            return;
        };
        let room = (self.room.as_mut())
            .map_or_else(FieldRoom::default, |r| std::mem::take(&mut r.response));
        let response = match ResponseHead::parse_in(head, &self.config.limits, room) {
            Ok(response) => response,
            Err(error) => return self.fail(error),
        };
        let status = response.status();
        if status == 101 {
            return self.on_switching_protocols(response);
        }
        let client_http10 = x.request.is_http10();
        if status < 200 {
            // Interim: forwarded (never to HTTP/1.0 clients, RFC 9110 §15.2), then the
            // real response is still to come.
            x.response = ResponsePhase::ExpectHead(HeadReader::for_responses());
            if !client_http10 {
                let framing = ClientFraming {
                    body: BodyKind::Empty,
                    client_http10,
                    keep_alive: true,
                };
                self.forward_response(response, framing);
            }
            return;
        }
        let body = match response.body(x.request.is_head()) {
            Ok(body) => body,
            Err(error) => return self.fail(error),
        };
        if client_http10 && body != BodyKind::Empty && response.has_coding_beyond_chunked() {
            return self.fail(ProxyError::TransferCodingForHttp10);
        }
        let dechunked = client_http10 && body == BodyKind::Chunked;
        x.client_keep_alive = x.request.keep_alive()
            && x.request_body.is_done()
            && body != BodyKind::UntilClose
            && !dechunked
            && !draining
            // A client that half-closed after pipelining still gets every answer.
            && (!self.eof[Side::Client.index()] || !self.unread[Side::Client.index()].is_empty());
        x.upstream_reusable = response.upstream_keep_alive() && body != BodyKind::UntilClose;
        x.status = Some(status);
        x.response_read_at = self.now;
        let framing = ClientFraming {
            body,
            client_http10,
            keep_alive: x.client_keep_alive,
        };
        let reader = BodyReader::new(body, !client_http10);
        x.response = if reader.is_done() {
            ResponsePhase::Done
        } else {
            ResponsePhase::Body(reader)
        };
        self.forward_response(response, framing);
    }

    fn on_switching_protocols(&mut self, response: ResponseHead) {
        let State::Exchange(x) = &mut self.state else {
            return;
        };
        if !x.request_body.is_done() {
            // RFC 9110 §15.2.2: the switch happens after the whole request.
            return self.fail(ProxyError::UpgradeProtocolMismatch);
        }
        let offer = x.request.upgrade();
        let protocol = match upgrade::accept_switch(offer, x.request.fields(), response.fields()) {
            Ok(protocol) => protocol,
            Err(error) => return self.fail(error),
        };
        let started = x.started;
        let websocket = upgrade::is_websocket(protocol.as_bytes()).then(|| {
            let extensions = upgrade::negotiates_extension(response.fields());
            let seed =
                self.client.addr.map_or(0x5eed, |a| u64::from(a.port())) ^ 0x9e37_79b9_7f4a_7c15;
            Box::new(WebSocketTunnel::new(extensions, self.now, seed))
        });
        self.emit_request_log(101, None);
        let protocol = if websocket.is_some() {
            "websocket".into()
        } else {
            protocol.into()
        };
        self.open_tunnel(protocol, websocket, started);
        // The 101 goes out byte-exact; held client bytes and any upstream bytes after
        // the head are forwarded by the tunnel's first step.
        self.send(Side::Client, response.raw().clone());
    }

    fn open_tunnel(
        &mut self,
        protocol: std::borrow::Cow<'static, str>,
        websocket: Option<Box<WebSocketTunnel>>,
        started: Instant,
    ) {
        // No retry happens in a tunnel: the list of servers tried is not needed, nor
        // room for heads.
        self.room = None;
        self.state = State::Tunnel(Box::new(Tunnel {
            protocol,
            started,
            last_activity: self.now,
            forwarded: [0; 2],
            shut: [false; 2],
            first_eof_at: None,
            websocket,
        }));
    }

    fn finish_exchange(&mut self) {
        let State::Exchange(x) = &self.state else {
            return;
        };
        let keep_alive = x.client_keep_alive && x.request_body.is_done();
        let reusable = x.upstream_reusable
            && x.request_body.is_done()
            && self.unread[Side::Upstream.index()].is_empty()
            && !self.eof[Side::Upstream.index()];
        let status = x.status.unwrap_or(0);
        self.emit_request_log(status, None);
        self.release_upstream(reusable);
        self.release_tunnel_slot();
        if keep_alive && !self.draining() {
            let state = State::ExpectRequestHead(HeadReader::for_requests());
            if let State::Exchange(x) = std::mem::replace(&mut self.state, state) {
                self.room().request = x.request.into_room();
            }
            self.idle_since = self.now;
            self.head_started = None;
        } else {
            self.linger();
        }
    }

    /// Relays what each side sent and passes each EOF on, in one pass (see [`pump`]).
    ///
    /// [`pump`]: Self::pump
    fn step_tunnel(&mut self) {
        if matches!(&self.state, State::Tunnel(t) if t.websocket.is_some()) {
            return self.step_websocket_tunnel();
        }
        let now = self.now;
        for from in [Side::Client, Side::Upstream] {
            let to = from.peer();
            let State::Tunnel(tunnel) = &mut self.state else {
                return;
            };
            let input = std::mem::take(&mut self.unread[from.index()]);
            if !input.is_empty() {
                tunnel.forwarded[to.index()] += input.len() as u64;
                tunnel.last_activity = now;
                self.send(to, input);
            }
            let State::Tunnel(tunnel) = &mut self.state else {
                return;
            };
            if self.eof[from.index()] && !tunnel.shut[to.index()] {
                // Half-close: pass the EOF on, keep the other direction flowing.
                tunnel.shut[to.index()] = true;
                tunnel.first_eof_at.get_or_insert(now);
                self.outputs.push_back(Output::ShutdownWrite(to));
            }
        }
        if let State::Tunnel(tunnel) = &self.state {
            if tunnel.shut == [true, true] {
                self.end_tunnel(TunnelEnd::Closed);
            }
        }
    }

    /// A WebSocket tunnel: bytes go through the frame relay, which may hold control
    /// frames, insert the proxy's own, and turn EOFs without a Close into a Close.
    fn step_websocket_tunnel(&mut self) {
        let now = self.now;
        let mut sends = Sends::new(&mut self.outputs);
        let mut shutdowns = Vec::new();
        let State::Tunnel(tunnel) = &mut self.state else {
            return;
        };
        let Some(ws) = tunnel.websocket.as_mut() else {
            return;
        };
        for from in [Side::Client, Side::Upstream] {
            let to = from.peer();
            let input = std::mem::take(&mut self.unread[from.index()]);
            if !input.is_empty() {
                tunnel.last_activity = now;
                ws.relay(from, input, &self.config, now, &mut sends);
            }
            if self.eof[from.index()]
                && !tunnel.shut[to.index()]
                && ws.on_eof(from, now, &mut sends)
            {
                tunnel.shut[to.index()] = true;
                tunnel.first_eof_at.get_or_insert(now);
                shutdowns.push(to);
            }
        }
        for side in [Side::Client, Side::Upstream] {
            if ws.shut_now(side) && !tunnel.shut[side.index()] {
                tunnel.shut[side.index()] = true;
                tunnel.first_eof_at.get_or_insert(now);
                shutdowns.push(side);
            }
        }
        let finished = ws.finished();
        // After its Close the client may send nothing (RFC 6455 §5.5.1): once its FIN
        // is queued behind the upstream's Close and the upstream has closed too,
        // nothing can flow either way. The kernel completes the client's close; the
        // session need not stay (and be woken) for the client's FIN.
        let handshake_closed = ws.handshake_done()
            && tunnel.shut[Side::Client.index()]
            && self.eof[Side::Upstream.index()];
        let both_shut = tunnel.shut == [true, true] || handshake_closed;
        let sent = sends.bytes;
        self.count_tunnel_sends(sent);
        self.outputs
            .extend(shutdowns.into_iter().map(Output::ShutdownWrite));
        if let Some(end) = finished {
            self.end_tunnel(end);
        } else if both_shut {
            self.end_tunnel(TunnelEnd::Closed);
        }
    }

    /// Runs `f` on the WebSocket state of the tunnel, if there is one, then carries out
    /// its sends. Returns whether there was one.
    fn with_websocket(
        &mut self,
        f: impl FnOnce(&mut WebSocketTunnel, Instant, &mut Sends<'_>),
    ) -> bool {
        let now = self.now;
        let State::Tunnel(tunnel) = &mut self.state else {
            return false;
        };
        let Some(ws) = tunnel.websocket.as_mut() else {
            return false;
        };
        let mut sends = Sends::new(&mut self.outputs);
        f(ws, now, &mut sends);
        let sent = sends.bytes;
        let finished = ws.finished();
        self.count_tunnel_sends(sent);
        if let Some(end) = finished {
            self.end_tunnel(end);
        }
        true
    }

    /// Counts what a WebSocket tunnel step sent towards each side.
    fn count_tunnel_sends(&mut self, sent: [usize; 2]) {
        for to in [Side::Client, Side::Upstream] {
            let n = sent[to.index()];
            if let State::Tunnel(tunnel) = &mut self.state {
                tunnel.forwarded[to.index()] += n as u64;
            }
            self.note_sent(to, n);
        }
    }

    fn step_lingering(&mut self) -> bool {
        let input = &mut self.unread[Side::Client.index()];
        let had_input = !input.is_empty();
        *input = Bytes::new();
        if self.eof[Side::Client.index()] {
            self.close();
            return true;
        }
        had_input
    }

    // ---------------------------------------------------------------- endings

    /// A rule was broken or a deadline missed: answer with the error's status if the
    /// client has not received a final response head yet, else just close.
    fn fail(&mut self, error: ProxyError) {
        let response_started = matches!(&self.state, State::Exchange(x) if x.status.is_some());
        if response_started {
            return self.abort(error);
        }
        let head_request = matches!(&self.state, State::Exchange(x) if x.request.is_head());
        if let State::Exchange(_) = self.state {
            self.release_upstream(false);
        }
        self.release_tunnel_slot();
        let date = self.proxy.wall_clock().date();
        self.send(Side::Client, error_response(error, head_request, date));
        self.emit_request_log(error.status(), Some(error));
        self.linger();
    }

    /// Refuses `request`, whose head was read, before any exchange began: as
    /// [`fail`](Self::fail), with the request's method and target in the log and no
    /// body for a `HEAD` (RFC 9110 §9.3.2).
    fn refuse(&mut self, request: &RequestHead, error: ProxyError) {
        let date = self.proxy.wall_clock().date();
        let response = error_response(error, request.is_head(), date);
        self.answer_as_proxy(request, response, error.status(), Some(error));
    }

    /// Sends `response` (with `status`), the proxy's own answer to `request` (as its
    /// final recipient, see [`RequestHead::answer_here`], a redirect, or a refusal for
    /// `error`), then closes as after an error, so that a body it may carry is never
    /// read as the next request.
    fn answer_as_proxy(
        &mut self,
        request: &RequestHead,
        response: Bytes,
        status: u16,
        error: Option<ProxyError>,
    ) {
        self.release_tunnel_slot();
        self.send(Side::Client, response);
        let log = self.log_of_proxy_answer(Some(request), status, error);
        self.outputs
            .push_back(Output::Event(Event::Request(Box::new(log))));
        self.linger();
    }

    /// Ends the session at once, logging why.
    fn abort(&mut self, error: ProxyError) {
        if let State::Exchange(x) = &self.state {
            let status = x.status.unwrap_or(0);
            self.emit_request_log(status, Some(error));
        }
        self.close();
    }

    /// Ends the session at once because the client went away.
    fn abort_quietly(&mut self) {
        if let State::Exchange(x) = &self.state {
            let status = x.status.unwrap_or(0);
            self.emit_request_log(status, None);
        }
        self.close();
    }

    fn end_tunnel(&mut self, end: TunnelEnd) {
        let log = match &self.state {
            State::Tunnel(tunnel) => Some(TunnelLog {
                protocol: tunnel.protocol.to_string(),
                client_to_upstream: tunnel.forwarded[Side::Upstream.index()],
                upstream_to_client: tunnel.forwarded[Side::Client.index()],
                duration: self.now.saturating_duration_since(tunnel.started),
                end,
            }),
            State::ExpectTcpUpstream { since } => Some(TunnelLog {
                protocol: "tcp".into(),
                client_to_upstream: 0,
                upstream_to_client: 0,
                duration: self.now.saturating_duration_since(*since),
                end,
            }),
            _ => None,
        };
        if let Some(log) = log {
            self.outputs
                .push_back(Output::Event(Event::Tunnel(Box::new(log))));
        }
        self.close();
    }

    /// The last response is queued: shut the client's write side and drain its input
    /// for a while before closing (see `State::Lingering`).
    fn linger(&mut self) {
        self.outputs.push_back(Output::ShutdownWrite(Side::Client));
        self.unacked[Side::Upstream.index()] = 0;
        self.state = State::Lingering {
            until: self.now + self.config.timeouts.linger,
        };
    }

    fn close(&mut self) {
        self.release_tunnel_slot();
        if let Some(server) = self.server.take() {
            self.proxy.release_server(&server);
        }
        if !matches!(self.state, State::Closed) {
            self.outputs.push_back(Output::Close);
            self.state = State::Closed;
            self.unread = [Bytes::new(), Bytes::new()];
        }
    }

    // ---------------------------------------------------------------- helpers

    fn send(&mut self, to: Side, bytes: Bytes) {
        let len = bytes.len();
        self.outputs.push_back(Output::Send(to, bytes));
        self.note_sent(to, len);
    }

    /// Accounts for bytes queued towards `to` (flow control and the send timer).
    fn note_sent(&mut self, to: Side, len: usize) {
        let i = to.index();
        if len > 0 && self.unacked[i] == 0 {
            self.send_progress_at[i] = self.now;
        }
        self.unacked[i] += len;
    }

    /// Gives the upstream connection back (or drops it) and the server's slot.
    fn release_upstream(&mut self, reusable: bool) {
        self.drop_connection(reusable);
        if let Some(server) = self.server.take() {
            self.proxy.release_server(&server);
        }
    }

    /// Gives the upstream connection back (or drops it, or cancels its dial; nothing to
    /// say if none was asked for).
    fn drop_connection(&mut self, reusable: bool) {
        let dialled =
            !matches!(&self.state, State::Exchange(x) if x.upstream == UpstreamLink::AwaitingBody);
        if dialled {
            self.outputs.push_back(Output::ReleaseUpstream { reusable });
        }
        let i = Side::Upstream.index();
        self.unacked[i] = 0;
        self.eof[i] = false;
        self.unread[i] = Bytes::new();
    }

    fn release_tunnel_slot(&mut self) {
        if std::mem::take(&mut self.tunnel_slot) {
            self.proxy.release_tunnel();
        }
    }

    fn emit_request_log(&mut self, status: u16, error: Option<ProxyError>) {
        let log = match &self.state {
            State::Exchange(x) => RequestLog {
                method: x.request.method_bytes(),
                target: x.request.target_bytes(256),
                status,
                request_body_bytes: x.request_body_bytes,
                response_body_bytes: x.response_body_bytes,
                duration: self.now.saturating_duration_since(x.started),
                from_proxy: error.is_some(),
                error: error.map(ProxyError::message),
            },
            _ => self.log_of_proxy_answer(None, status, error),
        };
        self.outputs
            .push_back(Output::Event(Event::Request(Box::new(log))));
    }

    /// The log record of a response the proxy gave before any exchange began, to
    /// `request` if its head was read.
    fn log_of_proxy_answer(
        &self,
        request: Option<&RequestHead>,
        status: u16,
        error: Option<ProxyError>,
    ) -> RequestLog {
        let dash = || Bytes::from_static(b"-");
        RequestLog {
            method: request.map_or_else(dash, RequestHead::method_bytes),
            target: request.map_or_else(dash, |r| r.target_bytes(256)),
            status,
            request_body_bytes: 0,
            response_body_bytes: 0,
            duration: (self.head_started)
                .map_or(Duration::ZERO, |s| self.now.saturating_duration_since(s)),
            from_proxy: true,
            error: error.map(ProxyError::message),
        }
    }
}

impl Drop for Session {
    /// A session dropped at any point gives back what it counted in the shared state.
    fn drop(&mut self) {
        self.release_tunnel_slot();
        if let Some(server) = self.server.take() {
            self.proxy.release_server(&server);
        }
        if std::mem::take(&mut self.admitted) {
            self.proxy
                .release_connection(self.client.addr.map(|a| a.ip()));
        }
    }
}
