//! The session's vocabulary: what the runtime feeds in ([`Input`]) and what it must
//! carry out ([`Output`]). One enum each way, as in str0m.

use bytes::Bytes;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

/// One of the two connections a session joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The connection accepted from the client.
    Client,
    /// The connection dialled (or taken from a pool) towards the upstream.
    Upstream,
}

impl Side {
    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Upstream => 1,
        }
    }
}

/// What the runtime knows about the accepted client connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Peer address, for `X-Forwarded-For`; `None` when unknown (e.g. a Unix socket).
    pub addr: Option<SocketAddr>,
    /// Whether the client connection is TLS, for `X-Forwarded-Proto`.
    pub tls: bool,
    /// `Some(port)` when it came to a listener that sends everything to https on
    /// `port` (443 by default): every request is answered by the proxy with a
    /// permanent redirect (`301` for `GET` and `HEAD`, else `308`) to `https://` the
    /// same host and target, and nothing goes upstream.
    pub redirect_to_https: Option<NonZeroU16>,
}

/// Why dialling the upstream failed; all of them give the client a 502.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The upstream host refused the connection.
    Refused,
    /// The address could not be resolved or reached.
    Unreachable,
    /// The proxy itself could not open a connection (out of file descriptors or
    /// memory), described for the log. Not the server's fault: it does not count
    /// against the server's health, nothing is retried, and the client gets 503.
    Local(String),
    /// Any other failure, described for the log.
    Other(String),
}

/// Something that happened, fed to [`Session::handle_input`](crate::Session::handle_input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes read from that side's socket.
    Data(Side, Bytes),
    /// This many bytes read from that side were moved by the runtime straight to the
    /// other side's socket, unseen by the session (zero-copy, e.g. with `splice(2)`),
    /// within [`Session::passthrough_room`](crate::Session::passthrough_room). They count
    /// as sent towards the other side: report their writing there with
    /// [`Input::Written`], and write them before any later [`Output::Send`] to it.
    Passed(Side, usize),
    /// That side shut down its write half (read returned 0).
    Eof(Side),
    /// That side's socket failed (reset, or a read or write error): nothing more can
    /// be read from it or written to it.
    Reset(Side),
    /// This many bytes of earlier [`Output::Send`]s to that side were taken by the OS.
    Written(Side, usize),
    /// The upstream connection asked for by [`Output::Connect`] is ready. `reused` says
    /// whether it came from the keep-alive pool (it may then turn out to be stale).
    UpstreamConnected {
        /// Taken from the keep-alive pool rather than freshly dialled.
        reused: bool,
    },
    /// Dialling the upstream failed.
    UpstreamFailed(ConnectError),
    /// Stop taking new work (shutdown): finish what is in flight, close idle
    /// keep-alive connections now, send WebSocket tunnels Close 1001 now, and close
    /// everything by `deadline`.
    Drain {
        /// When the session must be closed, whatever is still in flight.
        deadline: std::time::Instant,
    },
    /// The configuration was replaced (reload): as `Drain`, except that an open
    /// tunnel runs on untouched until `deadline`, and is drained only then.
    Retire {
        /// When open tunnels are drained.
        deadline: std::time::Instant,
    },
}

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// `host:port` as configured, shared with the configuration: asking for a
    /// connection on every request copies no string.
    pub address: Arc<str>,
    /// A pooled connection may be used. `false` after a pooled connection turned out
    /// stale: the retry must dial afresh.
    pub allow_pooled: bool,
}

/// Something the runtime must do, drained with [`Session::poll_output`](crate::Session::poll_output).
///
/// Outputs are ordered: a runtime carries them out in the order polled, and writes the
/// `Send`s for one side in order, before a later `ShutdownWrite` or `Close`.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Dial the target, or take an idle pooled connection to it; answer with
    /// [`Input::UpstreamConnected`] or [`Input::UpstreamFailed`].
    Connect(Target),
    /// Write these bytes to that side; report progress with [`Input::Written`].
    Send(Side, Bytes),
    /// Shut down the write half towards that side once earlier sends are written.
    ShutdownWrite(Side),
    /// The session is done with its upstream connection. If `reusable`, it may go back
    /// to the keep-alive pool: the response was read to its framed end, the request was
    /// sent whole, and no EOF or reset was seen on it (a runtime still drops it if its
    /// own writes to it did not all complete). Otherwise close it. Emitted while a `Connect` is still in
    /// progress, it cancels the dial (a connection that completes later is dropped).
    ReleaseUpstream {
        /// The connection is at a message boundary and may carry another request.
        reusable: bool,
    },
    /// For logs and metrics.
    Event(Event),
    /// The session is over: finish earlier writes and close both connections.
    Close,
}

/// Something worth a log line or a metric. (Boxed, so the output queue an idle session
/// keeps stays small.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// One request/response exchange finished (or failed with a status the proxy sent).
    Request(Box<RequestLog>),
    /// A tunnel ended.
    Tunnel(Box<TunnelLog>),
    /// A dial ran for `timeouts.upstream_connect` and was given up (the next server
    /// may be tried): for metrics; no access log line of its own.
    UpstreamConnectTimeout,
}

/// One line of access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLog {
    /// Request method, `-` if the head could not be parsed. (A slice of the
    /// received head, as the target: logging a request copies nothing.)
    pub method: Bytes,
    /// Request-target as received (at most 256 bytes of it, not necessarily UTF-8),
    /// `-` if unknown.
    pub target: Bytes,
    /// Status sent to the client (0 if none was sent).
    pub status: u16,
    /// Body bytes forwarded upstream.
    pub request_body_bytes: u64,
    /// Body bytes forwarded to the client.
    pub response_body_bytes: u64,
    /// From the first byte of the request head to the end of the response.
    pub duration: Duration,
    /// Whether the status came from the proxy itself (an error, or the answer to a
    /// `TRACE` or `OPTIONS` whose `Max-Forwards` ran out) rather than the upstream.
    pub from_proxy: bool,
    /// Why the proxy answered itself, if it did.
    pub error: Option<&'static str>,
}

/// Why a tunnel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides shut down cleanly.
    Closed,
    /// No bytes either way for `tunnel_idle` (WebSocket: Close 1001 "idle timeout").
    IdleTimeout,
    /// One side shut down and the other did not follow within `fin`.
    FinTimeout,
    /// A write made no progress within `send`.
    SendTimeout,
    /// One side's socket failed.
    Reset(Side),
    /// The proxy was draining (WebSocket: Close 1001 "going away").
    Drain,
    /// That side closed its connection without a WebSocket Close frame.
    PeerGone(Side),
    /// That side did not answer the proxy's WebSocket Ping.
    PingTimeout(Side),
    /// That side sent a frame breaking RFC 6455 (Close 1002 to it).
    ProtocolError(Side),
    /// That side began a message larger than `websocket.max_message_size` (Close 1009
    /// to it).
    MessageTooBig(Side),
    /// A layer-4 tunnel found no upstream server to connect to.
    UpstreamUnavailable,
    /// A layer-4 connection over a limit (connections, rate, tunnels) was closed at once.
    Refused(crate::ProxyError),
}

/// One line of tunnel log, when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelLog {
    /// The protocol the upstream switched to, as it named it (e.g. `websocket`).
    pub protocol: String,
    /// Bytes forwarded from client to upstream.
    pub client_to_upstream: u64,
    /// Bytes forwarded from upstream to client.
    pub upstream_to_client: u64,
    /// From the `101` to the end.
    pub duration: Duration,
    /// Why it ended.
    pub end: TunnelEnd,
}
