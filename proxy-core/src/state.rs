//! The session's states: every transition is listed here, and made in `session.rs` by
//! one short function per state.
//!
//! # Rules of this file
//! 1. Everything that decides which state comes next is named in the table below.
//! 2. States are named after what they wait for.
//!
//! # Theory of operation
//! A session serves one client connection: a sequence of request/response exchanges,
//! each on an upstream connection it asks for (`Connect`) and gives back
//! (`ReleaseUpstream`). HTTP/1.1 is sequential, so at most one exchange is in flight;
//! bytes the client sends beyond the current request (pipelined requests, or data
//! after an upgrade request) are *held*, never forwarded, until the response decides
//! what they are. An accepted `101` turns the session into a tunnel for good.
//!
//! # Transitions
//!
//! | state               | on                                         | next                 |
//! |---------------------|--------------------------------------------|----------------------|
//! | `ExpectRequestHead` | a valid head                               | `Exchange` (Connect) |
//! | `ExpectRequestHead` | an invalid head, head timeout              | `Lingering` (4xx)    |
//! | `ExpectRequestHead` | EOF, keep-alive timeout, drain when idle   | `Closed`             |
//! | `Exchange`          | response complete, client keeps alive      | `ExpectRequestHead`  |
//! | `Exchange`          | response complete, connection not kept     | `Lingering`          |
//! | `Exchange`          | accepted `101` (see `upgrade`)             | `Tunnel`             |
//! | `Exchange`          | error before the response head was sent    | `Lingering` (4xx/5xx)|
//! | `Exchange`          | error after it, client gone, send timeout  | `Closed`             |
//! | `Tunnel`            | both EOFs, idle/fin/send timeout, reset, drain deadline | `Closed` |
//! | `Lingering`         | client EOF, linger timeout                 | `Closed`             |
//!
//! Inside `Exchange`, each direction has its own small state (as in h11): the request
//! body (`framing::BodyReader`: length, chunked, done) and the response
//! (`ResponsePhase`: expect head, body, done). The exchange ends when the response
//! is done; if the request body was not, the connection cannot be reused and closes.
//! Body bytes that go on exactly as they came (a `Content-Length` or close-delimited
//! body, never a chunked one) may pass a runtime's kernel pipe unseen
//! (`Exchange::verbatim_ahead`); the body's state counts them as if read.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::framing::BodyReader;
use crate::head::HeadReader;
use crate::io::Side;
use crate::request::RequestHead;

/// Where the session is.
#[derive(Debug)]
pub(crate) enum State {
    /// Waiting for a request head (a new connection, or a kept-alive one).
    ExpectRequestHead(HeadReader),
    /// A request is in flight.
    Exchange(Box<Exchange>),
    /// A layer-4 session dials its upstream; client bytes wait.
    ExpectTcpUpstream {
        /// When the dial began.
        since: Instant,
    },
    /// The upstream switched protocols: bytes flow both ways untouched.
    Tunnel(Box<Tunnel>),
    /// The last response is queued and the client's write side is shut down; its
    /// further bytes are read and dropped until it closes, so that a TCP reset (from
    /// unread data) cannot destroy the response before the client reads it.
    Lingering {
        /// When to stop waiting for the client's EOF.
        until: Instant,
    },
    /// Over: `Close` was emitted.
    Closed,
}

/// One request/response exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) request: RequestHead,
    /// The head as sent upstream, kept to resend after a stale pooled connection.
    pub(crate) forwarded_head: Bytes,
    pub(crate) started: Instant,
    pub(crate) request_body: BodyReader,
    pub(crate) request_body_bytes: u64,
    pub(crate) upstream: UpstreamLink,
    /// Request bytes produced before the upstream connection was ready.
    pub(crate) pending_upstream: Vec<Bytes>,
    pub(crate) response: ResponsePhase,
    /// The final status sent to the client, once its head is sent.
    pub(crate) status: Option<u16>,
    pub(crate) response_body_bytes: u64,
    /// The upstream may take another request once this response is read.
    pub(crate) upstream_reusable: bool,
    /// The client connection stays open after this response.
    pub(crate) client_keep_alive: bool,
    /// Whether any byte came from this exchange's upstream connection.
    pub(crate) upstream_spoke: bool,
    /// Whether the request was already retried on a fresh connection.
    pub(crate) retried: bool,
    /// Last time the upstream sent anything or the request body moved.
    pub(crate) upstream_activity: Instant,
    /// Last time request body bytes arrived.
    pub(crate) request_read_at: Instant,
    /// Where the request body's rate is counted from: when reading it began or last
    /// resumed after flow control, and the body bytes read by then.
    pub(crate) body_rate_from: (Instant, u64),
    /// Last time response body bytes arrived.
    pub(crate) response_read_at: Instant,
}

impl Exchange {
    /// How many of the next bytes from `from` are body bytes that go on as they came
    /// (see [`BodyReader::verbatim_ahead`]): 0 until the upstream connection is
    /// ready, while request bytes still wait for it, and outside a body.
    pub(crate) fn verbatim_ahead(&self, from: Side) -> u64 {
        if !self.upstream.is_connected() {
            return 0;
        }
        match (from, &self.response) {
            (Side::Client, _) if self.pending_upstream.is_empty() => {
                self.request_body.verbatim_ahead()
            }
            (Side::Upstream, ResponsePhase::Body(body)) => body.verbatim_ahead(),
            _ => 0,
        }
    }

    /// `n` body bytes from `from` went on unseen at `now` (at most
    /// [`verbatim_ahead`](Self::verbatim_ahead)): counted, the body finished if they
    /// were its last, and the timers moved as a read of them would move them.
    pub(crate) fn passed(&mut self, from: Side, n: u64, now: Instant) {
        match from {
            Side::Client => {
                self.request_body.passed(n, &mut self.request_body_bytes);
                self.request_read_at = now;
            }
            Side::Upstream => {
                if let ResponsePhase::Body(body) = &mut self.response {
                    body.passed(n, &mut self.response_body_bytes);
                    if body.is_done() {
                        self.response = ResponsePhase::Done;
                    }
                }
                self.upstream_spoke = true;
                self.response_read_at = now;
            }
        }
        self.upstream_activity = now;
    }

    /// When the request body, counted from `body_rate_from` after `grace`, falls
    /// below `rate` bytes per second on average; `None` for no minimum (`rate` 0).
    pub(crate) fn body_rate_deadline(&self, grace: Duration, rate: u32) -> Option<Instant> {
        if rate == 0 {
            return None;
        }
        let (from, base) = self.body_rate_from;
        let (bytes, rate) = (
            self.request_body_bytes.saturating_sub(base),
            u64::from(rate),
        );
        // The remainder is below `rate` (< 2^32): times 10^9 it fits in 64 bits.
        let earned = Duration::from_secs(bytes / rate)
            .saturating_add(Duration::from_nanos(bytes % rate * 1_000_000_000 / rate));
        from.checked_add(grace.saturating_add(earned))
    }
}

/// The exchange's upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamLink {
    /// Not dialled yet: the request body is gathered first
    /// ([`Config::request_buffering`](crate::Config::request_buffering)).
    AwaitingBody,
    /// `Connect` was emitted at this time.
    Connecting { since: Instant },
    /// Ready; `reused` if it came from the keep-alive pool.
    Connected { reused: bool },
}

impl UpstreamLink {
    /// Whether the connection is ready: bytes for the upstream can be written, and
    /// what it sends read.
    pub(crate) fn is_connected(self) -> bool {
        matches!(self, UpstreamLink::Connected { .. })
    }
}

/// The response direction of an exchange.
#[derive(Debug)]
pub(crate) enum ResponsePhase {
    /// Waiting for a (final or interim) response head.
    ExpectHead(HeadReader),
    /// Forwarding the body.
    Body(BodyReader),
    /// The response is complete.
    Done,
}

/// A switched connection.
#[derive(Debug)]
pub(crate) struct Tunnel {
    /// The protocol switched to, as the upstream named it (the common ones need no
    /// allocation: an idle tunnel holds as little as possible).
    pub(crate) protocol: std::borrow::Cow<'static, str>,
    pub(crate) started: Instant,
    pub(crate) last_activity: Instant,
    /// Bytes forwarded towards each side (indexed by `Side::index` of the destination).
    pub(crate) forwarded: [u64; 2],
    /// Whether the write side towards each side was shut down.
    pub(crate) shut: [bool; 2],
    pub(crate) first_eof_at: Option<Instant>,
    /// Frame-aware state when the protocol is `websocket`.
    pub(crate) websocket: Option<Box<crate::websocket_tunnel::WebSocketTunnel>>,
}
