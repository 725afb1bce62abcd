//! Invariant: under any sequence of peer events and clock moves the session never panics, emits nothing after `Close`, never leaves an expired deadline behind `handle_timeout(now)`, writes only to sockets it holds and has not shut, never sends the client much more than the upstream sent, forwards tunnel bytes exactly and in order both ways, always terminates on its own timers, and passing bytes unseen changes nothing a peer or the log sees (see [`check_passing_is_unseen`]).
//!
//! Input: a sequence of operations, each a tag byte (mod 16) and its operands (see
//! [`Op`] and [`encode`]). Events a runtime could not produce are skipped: upstream
//! reads, EOFs and resets only while an upstream connection is held, connect results
//! only while a `Connect` is pending, `Written` counts only up to what is unacked,
//! `Passed` counts only up to what `passthrough_room` allows.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proxy_core::timer::Timer;
use proxy_core::upgrade::websocket_accept;
use proxy_core::{ClientInfo, Config, ConnectError, Event, Input, Output, Session, Side};

use crate::http::{parse_response, Parsed};
use crate::input::{show, Reader};
use crate::tunnel::check_relay;

/// The WebSocket key used by the upgrade fragment.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Client byte fragments an operation can name (index mod the length).
pub const CLIENT_FRAGMENTS: [&[u8]; 16] = [
    b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\nAccept: */*\r\nCookie: a=b\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
    b"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"\r\n",
    b"GET /split HT",
    b"TP/1.1\r\nHost: a\r\n\r\n",
    b"\x81\x85\x01\x02\x03\x04ignjn",
    b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    b"abc",
    b"GET /h2 HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\
HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
];

/// Upstream byte fragments an operation can name (index mod the length).
pub fn upstream_fragment(index: u8) -> Vec<u8> {
    let fixed: &[u8] = match index % 16 {
        0 => b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!",
        1 => {
            return format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                websocket_accept(WS_KEY)
            )
            .into_bytes()
        }
        2 => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        3 => b"HTTP/1.1 200 OK\r\n\r\nuntil close",
        4 => b"HTTP/1.1 100 Continue\r\n\r\n",
        5 => b"HTTP/1.1 204 No Content\r\n\r\n",
        6 => {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        }
        7 => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        8 => b"\x81\x02hi",
        9 => b"HTTP/1.1 200 OK\r\nContent-Le",
        10 => b"ngth: 2\r\n\r\nok",
        11 => b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        12 => b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        13 => b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
        14 => b"XYZZY\r\n\r\n",
        _ => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    };
    fixed.to_vec()
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The client sends these bytes (at most 255).
    ClientData(Vec<u8>),
    /// The client sends `CLIENT_FRAGMENTS[i]`.
    ClientFragment(u8),
    /// The upstream sends these bytes (at most 255).
    UpstreamData(Vec<u8>),
    /// The upstream sends `upstream_fragment(i)`.
    UpstreamFragment(u8),
    /// That side shuts down its write half.
    Eof(Side),
    /// That side's socket fails.
    Reset(Side),
    /// The pending connect succeeds.
    Connected {
        /// From the pool.
        reused: bool,
    },
    /// The pending connect fails.
    ConnectFailed,
    /// `raw % (unacked + 1)` bytes towards that side were written (0: skipped).
    Written(Side, u16),
    /// Everything unacked towards that side was written.
    WrittenAll(Side),
    /// The clock moves this many milliseconds, then `handle_timeout(now)`.
    Advance(u32),
    /// The clock moves this many milliseconds (the runtime was busy); nothing else.
    Lag(u32),
    /// `handle_timeout(now)` (possibly early).
    Timeout,
    /// `Drain` with a deadline this many seconds from now.
    Drain(u8),
    /// The clock jumps to the next deadline, then `handle_timeout`.
    NextDeadline,
    /// That side sends `raw % (passthrough_room + 1)` bytes, which the runtime moves to
    /// the other side unseen (`Input::Passed`; 0: skipped).
    Pass(Side, u16),
}

fn side(b: u8) -> Side {
    if b & 1 == 0 {
        Side::Client
    } else {
        Side::Upstream
    }
}

fn idx(s: Side) -> usize {
    usize::from(s == Side::Upstream)
}

fn side_byte(s: Side) -> u8 {
    u8::from(s == Side::Upstream)
}

/// Reads up to 512 operations.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut reader = Reader::new(data);
    let mut ops = Vec::new();
    while !reader.is_empty() && ops.len() < 512 {
        let op = match reader.u8() % 16 {
            0 => {
                let len = usize::from(reader.u8());
                Op::ClientData(reader.bytes(len).to_vec())
            }
            1 => Op::ClientFragment(reader.u8()),
            2 => {
                let len = usize::from(reader.u8());
                Op::UpstreamData(reader.bytes(len).to_vec())
            }
            3 => Op::UpstreamFragment(reader.u8()),
            4 => Op::Eof(side(reader.u8())),
            5 => Op::Reset(side(reader.u8())),
            6 => Op::Connected {
                reused: reader.u8() & 1 == 1,
            },
            7 => Op::ConnectFailed,
            8 => Op::Written(side(reader.u8()), reader.u16()),
            9 => Op::WrittenAll(side(reader.u8())),
            10 => Op::Advance(reader.u24()),
            11 => Op::Lag(reader.u24()),
            12 => Op::Timeout,
            13 => Op::Drain(reader.u8()),
            14 => Op::NextDeadline,
            _ => Op::Pass(side(reader.u8()), reader.u16()),
        };
        ops.push(op);
    }
    ops
}

/// The bytes that [`decode`] reads back as `ops` (for writing seeds).
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::ClientData(d) | Op::UpstreamData(d) => {
                let len = d.len().min(255);
                out.push(if matches!(op, Op::ClientData(_)) {
                    0
                } else {
                    2
                });
                out.push(len as u8);
                out.extend_from_slice(&d[..len]);
            }
            Op::ClientFragment(i) => out.extend_from_slice(&[1, *i]),
            Op::UpstreamFragment(i) => out.extend_from_slice(&[3, *i]),
            Op::Eof(s) => out.extend_from_slice(&[4, side_byte(*s)]),
            Op::Reset(s) => out.extend_from_slice(&[5, side_byte(*s)]),
            Op::Connected { reused } => out.extend_from_slice(&[6, u8::from(*reused)]),
            Op::ConnectFailed => out.push(7),
            Op::Written(s, n) => {
                out.extend_from_slice(&[8, side_byte(*s)]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Op::WrittenAll(s) => out.extend_from_slice(&[9, side_byte(*s)]),
            Op::Advance(ms) | Op::Lag(ms) => {
                out.push(if matches!(op, Op::Advance(_)) { 10 } else { 11 });
                out.extend_from_slice(&ms.to_le_bytes()[..3]);
            }
            Op::Timeout => out.push(12),
            Op::Drain(s) => out.extend_from_slice(&[13, *s]),
            Op::NextDeadline => out.push(14),
            Op::Pass(s, n) => {
                out.extend_from_slice(&[15, side_byte(*s)]);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    out
}

/// Where the tunnel began in each stream, once a `101` was accepted.
#[derive(Debug, Default)]
struct TunnelMark {
    /// Length of the upstream-bound stream (this connection) when the 101 was logged.
    to_upstream_at_switch: usize,
    /// Length of the client-bound stream just after the 101 head was sent.
    to_client_after_101: Option<usize>,
    /// The 101 head as the client got it.
    head_101: Vec<u8>,
    /// The upstream switched to WebSocket (frame-aware relay).
    websocket: bool,
    /// Offsets into the accepted client / upstream streams where tunnel bytes start,
    /// fixed at the first check after the switch.
    client_from: Option<usize>,
    upstream_from: Option<usize>,
}

/// A session and a model of its surroundings.
pub struct Harness {
    session: Session,
    now: Instant,
    log: Vec<String>,
    closed: bool,
    unacked: [usize; 2],
    shut: [bool; 2],
    connect_pending: bool,
    upstream_held: bool,
    read_closed: [bool; 2],
    /// Client bytes the session accepted (fed before the client's EOF and the close).
    from_client: Vec<u8>,
    /// Upstream bytes the session accepted on the current connection.
    from_upstream: Vec<u8>,
    from_upstream_total: usize,
    to_client: Vec<u8>,
    /// Bytes sent on the current upstream connection.
    to_upstream: Vec<u8>,
    /// Every byte sent (or passed) towards each side, over every upstream connection.
    sent: [Vec<u8>; 2],
    tunnel: Option<TunnelMark>,
    pipe_size: usize,
    /// Feed what could pass as data instead (see [`Harness::with`]).
    read_passes: bool,
    /// What a peer or the log could tell apart: every output but the sends (whose
    /// bytes are in `sent`), and after each operation how much was sent each way, the
    /// next deadline, and the read and pass rooms.
    seen: Vec<String>,
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    // The clock origin only; every later instant is derived from the inputs.
    #[allow(clippy::disallowed_methods)]
    *BASE.get_or_init(Instant::now)
}

/// The harness's `buffer_size`: small, so that flow control is reached.
const BUFFER_SIZE: usize = 1024;

/// The harness's `pipe_size`: above its `buffer_size`, as by default, and within what
/// one `Pass` operation can move, so that the bound is reached.
const PIPE_SIZE: usize = 4096;

impl Harness {
    /// A fresh session with small limits so flow control and timers are reached.
    pub fn new() -> Harness {
        Harness::with(PIPE_SIZE, false)
    }

    /// A fresh session with this `pipe_size`. With `read_passes`, the runtime this
    /// harness models never passes bytes: where a `Pass` operation finds room, it
    /// feeds the same bytes as data, and checks that the session forwards them to the
    /// other side at once and as they came (what passing them would have done).
    pub fn with(pipe_size: usize, read_passes: bool) -> Harness {
        let mut config = Config {
            buffer_size: BUFFER_SIZE,
            pipe_size,
            ..Config::default()
        };
        config.limits.max_head_size = 2048;
        // Slow enough that the harness's clock steps reach it.
        config.limits.min_request_body_rate = 100;
        // Small enough that chunked and `Content-Length` bodies cross it.
        config.limits.max_request_body = 1000;
        config.websocket.ping_interval = Some(Duration::from_secs(20));
        // Small enough that the fragments' client frames cross it: a client message
        // over it ends the tunnel with the proxy's Close, after what was relayed.
        config.websocket.max_message_size = 200;
        let now = base();
        let client = ClientInfo {
            addr: Some("192.0.2.1:40000".parse().unwrap()),
            tls: false,
            redirect_to_https: None,
        };
        Harness {
            session: Session::new(Arc::new(config), client, now),
            now,
            log: Vec::new(),
            closed: false,
            unacked: [0; 2],
            shut: [false; 2],
            connect_pending: false,
            upstream_held: false,
            read_closed: [false; 2],
            from_client: Vec::new(),
            from_upstream: Vec::new(),
            from_upstream_total: 0,
            to_client: Vec::new(),
            to_upstream: Vec::new(),
            sent: [Vec::new(), Vec::new()],
            tunnel: None,
            pipe_size,
            read_passes,
            seen: Vec::new(),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n after: {}", self.log.join("\n        "))
    }

    fn input(&mut self, input: Input) {
        self.log
            .push(format!("{:?} @{:?}", input, self.now - base()));
        self.session.handle_input(self.now, input);
        self.drain();
    }

    fn timeout(&mut self) {
        self.log
            .push(format!("handle_timeout @{:?}", self.now - base()));
        self.session.handle_timeout(self.now);
        self.drain();
        if let Some(deadline) = self.session.poll_timeout() {
            if deadline <= self.now {
                self.fail(&format!(
                    "handle_timeout(now) left a deadline at or before now ({:?} <= {:?}): {:?}",
                    deadline - base(),
                    self.now - base(),
                    self.session.next_timer().map(|(_, t)| t)
                ));
            }
        }
    }

    /// Carries out one operation.
    pub fn step(&mut self, op: &Op) {
        match op {
            Op::ClientData(d) => self.client_sends(d),
            Op::ClientFragment(i) => {
                self.client_sends(CLIENT_FRAGMENTS[usize::from(*i) % CLIENT_FRAGMENTS.len()])
            }
            Op::UpstreamData(d) => self.upstream_sends(d),
            Op::UpstreamFragment(i) => self.upstream_sends(&upstream_fragment(*i)),
            Op::Eof(s) | Op::Reset(s) => {
                if *s == Side::Upstream && !self.upstream_held {
                    return;
                }
                if !self.closed {
                    self.read_closed[idx(*s)] = true;
                }
                self.input(if matches!(op, Op::Eof(_)) {
                    Input::Eof(*s)
                } else {
                    Input::Reset(*s)
                });
            }
            Op::Connected { reused } => {
                if self.connect_pending {
                    self.connect_pending = false;
                    self.upstream_held = true;
                    self.input(Input::UpstreamConnected { reused: *reused });
                }
            }
            Op::ConnectFailed => {
                if self.connect_pending {
                    self.connect_pending = false;
                    self.input(Input::UpstreamFailed(ConnectError::Refused));
                }
            }
            Op::Written(s, raw) => {
                let n = usize::from(*raw) % (self.unacked[idx(*s)] + 1);
                if n > 0 {
                    self.unacked[idx(*s)] -= n;
                    self.input(Input::Written(*s, n));
                }
            }
            Op::Pass(s, raw) => self.pass(*s, *raw),
            Op::WrittenAll(s) => {
                let n = std::mem::take(&mut self.unacked[idx(*s)]);
                if n > 0 {
                    self.input(Input::Written(*s, n));
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timeout();
            }
            Op::Lag(ms) => self.now += Duration::from_millis(u64::from(*ms)),
            Op::Timeout => self.timeout(),
            Op::Drain(secs) => {
                let deadline = self.now + Duration::from_secs(u64::from(*secs));
                self.input(Input::Drain { deadline });
            }
            Op::NextDeadline => {
                if let Some(deadline) = self.session.poll_timeout() {
                    self.now = self.now.max(deadline);
                }
                self.timeout();
            }
        }
        self.check_state();
        self.note_seen();
    }

    /// Appends to `seen` what the peers could tell of the session now.
    fn note_seen(&mut self) {
        let rooms = [Side::Client, Side::Upstream].map(|side| {
            (
                self.session.read_room(side),
                self.session.passthrough_room(side),
            )
        });
        let deadline = self.session.poll_timeout().map(|at| at - base());
        self.seen.push(format!(
            "sent {} to the client, {} upstream; next deadline {deadline:?}; read, pass rooms {rooms:?}",
            self.sent[0].len(),
            self.sent[1].len(),
        ));
    }

    fn client_sends(&mut self, bytes: &[u8]) {
        if !self.closed && !self.read_closed[0] {
            self.from_client.extend_from_slice(bytes);
        }
        self.input(Input::Data(Side::Client, Bytes::copy_from_slice(bytes)));
    }

    fn upstream_sends(&mut self, bytes: &[u8]) {
        if !self.upstream_held {
            return;
        }
        if !self.closed && !self.read_closed[1] {
            self.from_upstream.extend_from_slice(bytes);
            self.from_upstream_total += bytes.len();
        }
        self.input(Input::Data(Side::Upstream, Bytes::copy_from_slice(bytes)));
    }

    /// `from` sends bytes that the runtime moves straight to the other side, as far as
    /// the session allows: both peers' streams record them, as if relayed.
    fn pass(&mut self, from: Side, raw: u16) {
        if from == Side::Upstream && !self.upstream_held {
            return;
        }
        let room = self.session.passthrough_room(from);
        let n = usize::from(raw) % (room.min(usize::from(u16::MAX)) + 1);
        if n == 0 {
            return;
        }
        let to = from.peer();
        if self.shut[idx(to)] {
            self.fail(&format!("passthrough_room({from:?}) > 0 towards a shut side"));
        }
        let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        match from {
            Side::Client => self.from_client.extend_from_slice(&bytes),
            Side::Upstream => {
                self.from_upstream.extend_from_slice(&bytes);
                self.from_upstream_total += n;
            }
        }
        if self.read_passes {
            return self.read_instead_of_passing(from, bytes);
        }
        match to {
            Side::Client => self.to_client.extend_from_slice(&bytes),
            Side::Upstream => self.to_upstream.extend_from_slice(&bytes),
        }
        self.sent[idx(to)].extend_from_slice(&bytes);
        self.unacked[idx(to)] += n;
        self.input(Input::Passed(from, n));
    }

    /// Bytes the session would let pass, fed as data: it must forward them to the
    /// other side at once and as they came, and must take them in one read (they fit
    /// in `read_room` when `pipe_size` is at most `buffer_size`).
    fn read_instead_of_passing(&mut self, from: Side, bytes: Vec<u8>) {
        let to = from.peer();
        let room = self.session.read_room(from);
        if bytes.len() > room && self.pipe_size <= BUFFER_SIZE {
            self.fail(&format!(
                "{} bytes from {from:?} could pass, but read_room is {room}",
                bytes.len()
            ));
        }
        let sent_before = self.sent[idx(to)].len();
        self.input(Input::Data(from, Bytes::from(bytes.clone())));
        // What the session queued behind the bytes (a Ping or a Close held until a
        // frame ends) may follow them; the other run must send it too.
        let forwarded = &self.sent[idx(to)][sent_before..];
        if !forwarded.starts_with(&bytes) {
            self.fail(&format!(
                "{} bytes from {from:?} that could pass were read instead, and {to:?} got {}",
                bytes.len(),
                show(forwarded)
            ));
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.session.poll_output() {
            if self.closed {
                self.fail(&format!("output after Close: {output:?}"));
            }
            match &output {
                Output::Connect(_) => {
                    if self.connect_pending || self.upstream_held {
                        self.fail("Connect while a connection is pending or held");
                    }
                    self.connect_pending = true;
                }
                Output::Send(to, bytes) => {
                    if self.shut[idx(*to)] {
                        self.fail(&format!(
                            "Send({to:?}) after ShutdownWrite({to:?}): {}",
                            show(bytes)
                        ));
                    }
                    if *to == Side::Upstream && !self.upstream_held {
                        self.fail(&format!(
                            "Send(Upstream) with no upstream connection held: {}",
                            show(bytes)
                        ));
                    }
                    self.unacked[idx(*to)] += bytes.len();
                    self.sent[idx(*to)].extend_from_slice(bytes);
                    match to {
                        Side::Client => {
                            self.to_client.extend_from_slice(bytes);
                            if let Some(mark) = &mut self.tunnel {
                                if mark.to_client_after_101.is_none() {
                                    mark.to_client_after_101 = Some(self.to_client.len());
                                    mark.head_101 = bytes.to_vec();
                                    mark.websocket = match parse_response(bytes) {
                                        Parsed::Complete(head) => {
                                            head.list("upgrade") == ["websocket"]
                                        }
                                        _ => self
                                            .fail("the 101 head sent to the client does not parse"),
                                    };
                                }
                            }
                        }
                        Side::Upstream => self.to_upstream.extend_from_slice(bytes),
                    }
                }
                Output::ShutdownWrite(to) => {
                    if *to == Side::Upstream && !self.upstream_held {
                        self.fail("ShutdownWrite(Upstream) with no upstream connection held");
                    }
                    self.shut[idx(*to)] = true;
                }
                Output::ReleaseUpstream { .. } => {
                    if self.tunnel.is_some() {
                        self.fail("ReleaseUpstream of a tunnel's connection");
                    }
                    self.connect_pending = false;
                    self.upstream_held = false;
                    self.unacked[1] = 0;
                    self.shut[1] = false;
                    self.read_closed[1] = false;
                    self.from_upstream.clear();
                    self.to_upstream.clear();
                }
                Output::Event(Event::Request(log)) if log.status == 101 => {
                    if self.tunnel.is_some() {
                        self.fail("a second 101");
                    }
                    self.tunnel = Some(TunnelMark {
                        to_upstream_at_switch: self.to_upstream.len(),
                        ..Default::default()
                    });
                }
                Output::Event(_) => {}
                Output::Close => self.closed = true,
            }
            if !matches!(output, Output::Send(..)) {
                self.seen.push(describe(&output));
            }
            self.log.push(format!("  -> {}", describe(&output)));
        }
    }

    fn check_state(&mut self) {
        if self.session.is_closed() != self.closed {
            self.fail("is_closed() disagrees with the Close output");
        }
        let wants = [
            self.session.wants_read(Side::Client),
            self.session.wants_read(Side::Upstream),
        ];
        if self.closed {
            if wants != [false, false] || self.session.poll_timeout().is_some() {
                self.fail("a closed session still wants reads or has a deadline");
            }
            if let Some(output) = self.session.poll_output() {
                self.fail(&format!("output after Close: {output:?}"));
            }
        }
        for from in [Side::Client, Side::Upstream] {
            if self.session.read_room_when_passing(from) > self.session.read_room(from) {
                self.fail(&format!("read_room_when_passing({from:?}) above read_room"));
            }
            let room = self.session.passthrough_room(from);
            let once_sent = self.session.passes_once_sent(from);
            if room > 0 && !once_sent {
                self.fail(&format!(
                    "passthrough_room({from:?}) = {room} but passes_once_sent is false"
                ));
            }
            let writable = self.unacked[idx(from.peer())] == 0;
            if once_sent && writable && self.session.read_room(from) > 0 && room == 0 {
                self.fail(&format!(
                    "passes_once_sent({from:?}) with all written and room, but nothing passes"
                ));
            }
            if room == 0 {
                continue;
            }
            // Outside a tunnel, only an exchange's bodies may pass.
            if (self.tunnel.is_none() && !self.session.may_pass()) || room > self.pipe_size {
                self.fail(&format!(
                    "passthrough_room({from:?}) = {room} outside a tunnel or an exchange, or above pipe_size"
                ));
            }
            if self.unacked[idx(from.peer())] > 0 {
                self.fail(&format!(
                    "passthrough_room({from:?}) = {room} while sends to the other side are unwritten"
                ));
            }
        }
        // Loose bound: the proxy adds at most an error response and some framing, or
        // reflects a TRACE it answers itself (`Max-Forwards: 0`) with its own head.
        let reflected = match self.from_client.starts_with(b"TRACE ") {
            true => self.from_client.len(),
            false => 0,
        };
        let limit = 3 * self.from_upstream_total + reflected + 1024;
        if self.to_client.len() > limit {
            self.fail(&format!(
                "client got {} bytes for {} from the upstream: {}",
                self.to_client.len(),
                self.from_upstream_total,
                show(&self.to_client)
            ));
        }
        self.check_tunnel();
    }

    /// Once a 101 is accepted, each side gets the other's bytes from the end of the
    /// request (client) and of the 101 head (upstream) on, as the tunnel rules allow
    /// (see [`crate::tunnel`]), and all of them unless the tunnel is ending.
    fn check_tunnel(&mut self) {
        let Some(mark) = &self.tunnel else { return };
        let Some(after_101) = mark.to_client_after_101 else {
            self.fail("a 101 was logged but no 101 head was sent to the client")
        };
        let websocket = mark.websocket;
        let forwarded_down = &self.to_client[after_101..];
        let forwarded_up = &self.to_upstream[mark.to_upstream_at_switch..];
        // A plain tunnel relays until it closes; a WebSocket tunnel stops relaying once
        // the proxy closes it, which shows as its only deadline being `Fin` (also the
        // case after a clean half-close, where this check is then weaker).
        let waived = self.closed
            || (websocket && matches!(self.session.next_timer(), Some((_, Timer::Fin))));

        // Upstream to client: from right after the 101 head in the upstream's bytes.
        let from_upstream = &self.from_upstream;
        let down = |k: usize| check_relay(&from_upstream[k..], forwarded_down, websocket, false);
        let down_from = match mark.upstream_from {
            Some(k) => Some(k),
            None => (mark.head_101.len()..=from_upstream.len())
                .filter(|&k| from_upstream[..k].ends_with(&mark.head_101))
                .find(|&k| down(k).is_ok_and(|r| r.complete || r.proxy_close))
                .or_else(|| {
                    (mark.head_101.len()..=from_upstream.len())
                        .filter(|&k| from_upstream[..k].ends_with(&mark.head_101))
                        .find(|&k| waived && down(k).is_ok())
                }),
        };
        let Some(down_from) = down_from else {
            let why = (0..=from_upstream.len())
                .filter(|&k| from_upstream[..k].ends_with(&mark.head_101))
                .map(|k| format!("{:?}", down(k)))
                .collect::<Vec<_>>();
            self.fail(&format!(
                "the client's tunnel bytes {} do not follow the 101 head {} in the upstream's bytes {}: {why:?}",
                show(forwarded_down),
                show(&mark.head_101),
                show(from_upstream)
            ))
        };
        let down = match down(down_from) {
            Ok(relay) => relay,
            Err(e) => self.fail(&format!("upstream to client: {e}")),
        };

        // Client to upstream: from the end of the upgrade request in the client's bytes.
        // (Only checked when that request had no body, so that its end is a head's end.)
        let request = &self.to_upstream[..mark.to_upstream_at_switch];
        let has_body = request
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            != Some(request.len());
        let from_client = &self.from_client;
        let up = |k: usize| check_relay(&from_client[k..], forwarded_up, websocket, true);
        let mut up_from = mark.client_from;
        if up_from.is_none() && !has_body {
            // Prefer the end of a head from which everything was forwarded.
            let candidates =
                || (4..=from_client.len()).filter(|&k| from_client[..k].ends_with(b"\r\n\r\n"));
            up_from = candidates()
                .find(|&k| up(k).is_ok_and(|r| r.complete || r.proxy_close || down.proxy_close))
                .or_else(|| candidates().find(|&k| waived && up(k).is_ok()));
            if up_from.is_none() {
                self.fail(&format!(
                    "upstream got {} in the tunnel: not the client's bytes after any request head: {}",
                    show(forwarded_up),
                    show(from_client)
                ));
            }
        }
        let up = match up_from.map(up) {
            Some(Ok(relay)) => Some(relay),
            Some(Err(e)) => self.fail(&format!("client to upstream: {e}")),
            None => None,
        };
        let closing = waived || down.proxy_close || up.is_some_and(|r| r.proxy_close);
        if !closing && (!down.complete || up.is_some_and(|r| !r.complete)) {
            self.fail(&format!(
                "an open tunnel did not forward everything: to client {down:?}, to upstream {up:?}\n client got {}\n upstream got {}",
                show(forwarded_down),
                show(forwarded_up)
            ));
        }
        if let Some(mark) = &mut self.tunnel {
            mark.upstream_from = Some(down_from);
            mark.client_from = up_from;
        }
    }

    /// With no more peer activity, the session must close on its own timers.
    pub fn check_terminates(&mut self) {
        self.log.push("-- peers silent from here".into());
        for _ in 0..64 {
            if self.closed {
                return;
            }
            match self.session.poll_timeout() {
                Some(deadline) => {
                    self.now = self.now.max(deadline);
                    self.timeout();
                    self.check_state();
                }
                None => self.fail("the session is open with no deadline: it could wait forever"),
            }
        }
        self.fail("the session did not close after 64 deadlines");
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

fn describe(output: &Output) -> String {
    match output {
        Output::Send(side, bytes) => format!("Send({side:?}, {})", show(bytes)),
        other => format!("{other:?}"),
    }
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let ops = decode(data);
    let mut harness = Harness::new();
    for op in &ops {
        harness.step(op);
    }
    harness.check_terminates();
    check_passing_is_unseen(&ops);
}

/// Runs `ops` twice with a `pipe_size` equal to `buffer_size` (so that what may pass
/// may also be read in one piece): once passing every byte a `Pass` finds room for,
/// once reading those bytes instead. Every output but the sends, the bytes each peer
/// gets and when, the deadlines and the rooms must be the same: bytes that pass
/// unseen are exactly bytes the session would have forwarded as they came, never a
/// head, a chunk's framing, a WebSocket frame header or bytes past a body's end.
pub fn check_passing_is_unseen(ops: &[Op]) {
    let mut passing = Harness::with(BUFFER_SIZE, false);
    let mut reading = Harness::with(BUFFER_SIZE, true);
    let mut compared = 0;
    for op in ops {
        passing.step(op);
        reading.step(op);
        compare(&passing, &reading, &mut compared);
    }
    passing.check_terminates();
    reading.check_terminates();
    compare(&passing, &reading, &mut compared);
    if passing.sent != reading.sent {
        passing.fail(&format!(
            "passing and reading sent different bytes:\n to the client {} and {}\n upstream {} and {}",
            show(&passing.sent[0]),
            show(&reading.sent[0]),
            show(&passing.sent[1]),
            show(&reading.sent[1])
        ));
    }
}

/// Fails at the first thing `passing` and `reading` were seen to do differently
/// since the first `compared` entries of `seen`.
fn compare(passing: &Harness, reading: &Harness, compared: &mut usize) {
    let (a, b) = (&passing.seen[*compared..], &reading.seen[*compared..]);
    let differs = a
        .iter()
        .zip(b)
        .position(|(a, b)| a != b)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
        .map(|at| *compared + at);
    *compared = passing.seen.len();
    if let Some(at) = differs {
        passing.fail(&format!(
            "passing bytes unseen changed what the peers see: passing {:?}, reading {:?}\n reading's run: {}",
            passing.seen.get(at),
            reading.seen.get(at),
            reading.log.join("\n        ")
        ));
    }
}
