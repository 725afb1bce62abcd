//! A deterministic driver: a [`Session`] between a scripted client and upstream, on a
//! virtual clock.
//!
//! Embedders use it to check their configuration's timeout and close behaviour
//! without sockets or waiting: feed bytes in any split, move the clock, and assert on
//! what each peer received. Writes are reported complete at once unless
//! [`Sim::set_auto_ack`] turns that off (to test flow control and send timeouts).
//!
//! The driver panics when an expectation fails (it is a test tool); the session under
//! it never does.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{ClientInfo, Config, ConnectError, Event, Input, Output, Proxy, Session, Side, Target};

/// A session wired to scripted peers and a virtual clock.
#[derive(Debug)]
pub struct Sim {
    session: Session,
    now: Instant,
    auto_ack: bool,
    auto_connect: bool,
    received: [Vec<u8>; 2],
    unacked: [usize; 2],
    connects: VecDeque<Target>,
    connected: bool,
    upstream_connections: usize,
    shutdowns: Vec<Side>,
    releases: Vec<bool>,
    events: Vec<Event>,
    outputs_after_close: usize,
    closed: bool,
}

/// The client address the driver reports: 192.0.2.1 (TEST-NET-1), port 40000.
pub const CLIENT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);

impl Sim {
    /// A session with this configuration, for a plain-TCP client at [`CLIENT_ADDR`].
    pub fn new(config: Config) -> Sim {
        Sim::with_client(
            config,
            ClientInfo {
                addr: Some(CLIENT_ADDR),
                tls: false,
                redirect_to_https: None,
            },
        )
    }

    /// A session for the given client.
    pub fn with_client(config: Config, client: ClientInfo) -> Sim {
        // The virtual clock needs an origin; only differences between instants matter.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Sim::from_session(Proxy::new(Arc::new(config)).session(client, now), now)
    }

    /// A session of a shared `proxy` (so several sims share balancing and limits).
    pub fn with_proxy(proxy: &Proxy) -> Sim {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Sim::with_proxy_at(proxy, now)
    }

    /// A session of `proxy` whose virtual clock starts at `now`.
    pub fn with_proxy_at(proxy: &Proxy, now: Instant) -> Sim {
        let client = ClientInfo {
            addr: Some(CLIENT_ADDR),
            tls: false,
            redirect_to_https: None,
        };
        Sim::from_session(proxy.session(client, now), now)
    }

    /// A layer-4 session of `proxy` towards `group`.
    pub fn tcp(proxy: &Proxy, group: &str) -> Sim {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let client = ClientInfo {
            addr: Some(CLIENT_ADDR),
            tls: false,
            redirect_to_https: None,
        };
        Sim::from_session(proxy.tcp_session(client, group, now), now)
    }

    fn from_session(session: Session, now: Instant) -> Sim {
        let mut sim = Sim {
            session,
            now,
            auto_ack: true,
            auto_connect: false,
            received: [Vec::new(), Vec::new()],
            unacked: [0; 2],
            connects: VecDeque::new(),
            connected: false,
            upstream_connections: 0,
            shutdowns: Vec::new(),
            releases: Vec::new(),
            events: Vec::new(),
            outputs_after_close: 0,
            closed: false,
        };
        sim.drain_outputs();
        sim
    }

    /// The session under test.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Report writes as complete as soon as they are emitted (the default), or not.
    pub fn set_auto_ack(&mut self, on: bool) {
        self.auto_ack = on;
    }

    /// Answer every `Connect` with a freshly dialled connection as soon as it is
    /// emitted, or (the default) keep it for [`expect_connect`](Self::expect_connect).
    pub fn set_auto_connect(&mut self, on: bool) {
        self.auto_connect = on;
    }

    /// Feeds one input at the current virtual time and carries out the outputs.
    pub fn input(&mut self, input: Input) {
        self.session.handle_input(self.now, input);
        self.drain_outputs();
    }

    /// The client sends these bytes in one read.
    pub fn client_sends(&mut self, bytes: &[u8]) {
        self.input(Input::Data(Side::Client, Bytes::copy_from_slice(bytes)));
    }

    /// The client sends these bytes in reads of `piece` bytes (1 = a byte at a time).
    pub fn client_sends_in_pieces(&mut self, bytes: &[u8], piece: usize) {
        for part in bytes.chunks(piece.max(1)) {
            self.client_sends(part);
        }
    }

    /// The upstream sends these bytes in one read.
    pub fn upstream_sends(&mut self, bytes: &[u8]) {
        self.input(Input::Data(Side::Upstream, Bytes::copy_from_slice(bytes)));
    }

    /// The upstream sends these bytes in reads of `piece` bytes.
    pub fn upstream_sends_in_pieces(&mut self, bytes: &[u8], piece: usize) {
        for part in bytes.chunks(piece.max(1)) {
            self.upstream_sends(part);
        }
    }

    /// `from` sends these bytes, and the driver plays a zero-copy runtime: whatever the
    /// session lets pass unseen ([`Session::passthrough_room`]) goes straight to the
    /// other side with [`Input::Passed`], the rest is read as usual (as much as
    /// [`Session::read_room_when_passing`] allows per read). Returns how many bytes
    /// passed unseen.
    /// Panics if flow control stops it (with auto-ack off: [`ack`](Self::ack) first).
    pub fn sends_passing_through(&mut self, from: Side, mut bytes: &[u8]) -> usize {
        let to = from.peer();
        let mut passed = 0;
        while !bytes.is_empty() {
            let room = self.session.passthrough_room(from).min(bytes.len());
            if room > 0 {
                let (moved, rest) = bytes.split_at(room);
                self.received[to.index()].extend_from_slice(moved);
                self.session
                    .handle_input(self.now, Input::Passed(from, room));
                match self.auto_ack {
                    true => self
                        .session
                        .handle_input(self.now, Input::Written(to, room)),
                    false => self.unacked[to.index()] += room,
                }
                self.drain_outputs();
                (bytes, passed) = (rest, passed + room);
                continue;
            }
            let read = self.session.read_room_when_passing(from).min(bytes.len());
            assert!(read > 0, "flow control stopped reading from {from:?}");
            let (data, rest) = bytes.split_at(read);
            self.input(Input::Data(from, Bytes::copy_from_slice(data)));
            bytes = rest;
        }
        passed
    }

    /// That side shuts down its write half.
    pub fn eof(&mut self, side: Side) {
        self.input(Input::Eof(side));
    }

    /// That side's connection fails.
    pub fn reset(&mut self, side: Side) {
        self.input(Input::Reset(side));
    }

    /// Reports `n` bytes written towards `side` (with auto-ack off).
    pub fn ack(&mut self, side: Side, n: usize) {
        let n = n.min(self.unacked[side.index()]);
        self.unacked[side.index()] -= n;
        self.input(Input::Written(side, n));
    }

    /// Bytes sent towards `side` and not yet acknowledged.
    pub fn unacked(&self, side: Side) -> usize {
        self.unacked[side.index()]
    }

    /// Takes the oldest `Connect` the session emitted; panics if there is none.
    pub fn expect_connect(&mut self) -> Target {
        self.connects
            .pop_front()
            .expect("the session asked for no upstream connection")
    }

    /// Whether a `Connect` is waiting to be answered.
    pub fn has_pending_connect(&self) -> bool {
        !self.connects.is_empty()
    }

    /// A freshly dialled upstream connection is ready.
    pub fn upstream_connected(&mut self) {
        self.connected = true;
        self.upstream_connections += 1;
        self.input(Input::UpstreamConnected { reused: false });
    }

    /// A pooled upstream connection was handed over.
    pub fn upstream_connected_pooled(&mut self) {
        self.connected = true;
        self.upstream_connections += 1;
        self.input(Input::UpstreamConnected { reused: true });
    }

    /// Dialling failed.
    pub fn upstream_fails(&mut self) {
        self.input(Input::UpstreamFailed(ConnectError::Refused));
    }

    /// Moves the clock forward by `by`, firing every deadline on the way, in order.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        let mut firings = 0;
        while let Some(deadline) = self.session.poll_timeout() {
            if deadline > until {
                break;
            }
            firings += 1;
            assert!(
                firings < 100_000,
                "the session's deadline does not move on: {:?}",
                self.session.next_timer()
            );
            self.now = self.now.max(deadline);
            self.session.handle_timeout(self.now);
            self.drain_outputs();
        }
        self.now = until;
    }

    /// Bytes the client received so far.
    pub fn client_received(&self) -> &[u8] {
        &self.received[Side::Client.index()]
    }

    /// Bytes the client received, as text (lossy).
    pub fn client_received_str(&self) -> String {
        String::from_utf8_lossy(self.client_received()).into_owned()
    }

    /// Takes the bytes the client received so far.
    pub fn take_client_received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received[Side::Client.index()])
    }

    /// Bytes the upstream received so far (across its connections).
    pub fn upstream_received(&self) -> &[u8] {
        &self.received[Side::Upstream.index()]
    }

    /// Bytes the upstream received, as text (lossy).
    pub fn upstream_received_str(&self) -> String {
        String::from_utf8_lossy(self.upstream_received()).into_owned()
    }

    /// Takes the bytes the upstream received so far.
    pub fn take_upstream_received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received[Side::Upstream.index()])
    }

    /// Upstream connections handed to the session so far.
    pub fn upstream_connections(&self) -> usize {
        self.upstream_connections
    }

    /// Whether the upstream connection is currently held by the session.
    pub fn upstream_held(&self) -> bool {
        self.connected
    }

    /// `ShutdownWrite` outputs so far, in order.
    pub fn shutdowns(&self) -> &[Side] {
        &self.shutdowns
    }

    /// `ReleaseUpstream` outputs so far (their `reusable` flags), in order.
    pub fn releases(&self) -> &[bool] {
        &self.releases
    }

    /// Events so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether the session emitted `Close`.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Outputs emitted after `Close` (a broken contract if ever non-zero).
    pub fn outputs_after_close(&self) -> usize {
        self.outputs_after_close
    }

    fn drain_outputs(&mut self) {
        loop {
            let mut acks = Vec::new();
            let mut dialled = false;
            while let Some(output) = self.session.poll_output() {
                if self.closed {
                    self.outputs_after_close += 1;
                }
                match output {
                    Output::Connect(_) if self.auto_connect => dialled = true,
                    Output::Connect(target) => self.connects.push_back(target),
                    Output::Send(side, bytes) => {
                        self.received[side.index()].extend_from_slice(&bytes);
                        if self.auto_ack {
                            acks.push((side, bytes.len()));
                        } else {
                            self.unacked[side.index()] += bytes.len();
                        }
                    }
                    Output::ShutdownWrite(side) => self.shutdowns.push(side),
                    Output::ReleaseUpstream { reusable } => {
                        self.releases.push(reusable);
                        self.connected = false;
                        self.connects.clear();
                        self.unacked[Side::Upstream.index()] = 0;
                    }
                    Output::Event(event) => self.events.push(event),
                    Output::Close => self.closed = true,
                }
            }
            if acks.is_empty() && !dialled {
                break;
            }
            for (side, n) in acks {
                self.session.handle_input(self.now, Input::Written(side, n));
            }
            if dialled {
                self.connected = true;
                self.upstream_connections += 1;
                (self.session).handle_input(self.now, Input::UpstreamConnected { reused: false });
            }
        }
    }
}
