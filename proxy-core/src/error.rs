//! Errors are values: one variant per broken rule, each mapped to what the peer sees.
//!
//! Client-side violations become a 4xx/5xx response and a close; upstream violations
//! become a `502` (or `504` for silence) if the client has not yet received a final
//! response head, and a plain close otherwise. After an error the session stays failed:
//! nothing more is forwarded in either direction.

use std::fmt;

/// A rule broken by a peer, or a deadline missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    // ---- request head (RFC 9112 §2–§5, RFC 9110 §5) ----
    /// Request head larger than `limits.max_head_size` (431, RFC 6585 §5).
    RequestHeadTooLarge,
    /// More fields than `limits.max_headers` (431).
    TooManyRequestFields,
    /// Request-target longer than `limits.max_target_len` (414, RFC 9110 §15.5.15).
    RequestTargetTooLong,
    /// A method running past `limits.max_head_size`, longer than any method there is
    /// (501, RFC 9112 §3).
    MethodTooLong,
    /// The request-line is not `method SP request-target SP HTTP-version` (400).
    MalformedRequestLine,
    /// A protocol version other than HTTP/1.0 or HTTP/1.1 (505).
    UnsupportedVersion,
    /// A field name that is not a token, whitespace before the colon, or an obs-fold
    /// line (400, RFC 9112 §5.1, §5.2).
    InvalidFieldName,
    /// CR, LF, NUL or another control character inside a field value (400, RFC 9110 §5.5).
    InvalidFieldValue,
    /// A line ended by LF without CR (400, RFC 9112 §2.2: a proxy must not guess).
    BareLineFeed,
    /// A field name that spells one the proxy acts on with `_` for `-`, such as
    /// `Transfer_Encoding` or `X-Forwarded_For` (400). CGI, WSGI, Rack and PHP read `_`
    /// and `-` alike, so the application would take it for the framing or forwarding
    /// field the proxy did not act on (smuggling; spoofing, as in Puma's
    /// GHSA-9hf4-67fc-4vf4). nginx and Apache drop every name with `_` instead.
    UnderscoredFieldName,
    /// HTTP/1.1 request without `Host` (400, RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` field (400, RFC 9112 §3.2).
    DuplicateHost,
    /// A `Host` value that is not a valid authority (400, RFC 9112 §3.2).
    InvalidHost,
    /// The request-target is not origin-, absolute- or asterisk-form (400, RFC 9112 §3.2).
    InvalidRequestTarget,
    /// `CONNECT` is not offered by a reverse proxy (501).
    ConnectNotSupported,
    /// An upgrade to WebSocket without exactly one `Sec-WebSocket-Key` that is the
    /// base64 of 16 bytes (400, RFC 6455 §4.1, §11.3.1): no upstream could answer it with
    /// an accept the client would take.
    InvalidWebSocketKey,
    /// An upgrade to WebSocket whose `Sec-WebSocket-Version` is not a single `13` (426,
    /// RFC 6455 §4.2.2, with `Sec-WebSocket-Version: 13`): the proxy follows the frames
    /// of RFC 6455's version alone, and every browser and client library sends it.
    UnsupportedWebSocketVersion,
    /// An upgrade attempt whose `Upgrade` lists something that is not a protocol,
    /// `token ["/" token]` (400, RFC 9110 §7.8): an upstream reading it more loosely
    /// could find a protocol the proxy did not (`" h2c`, `; h2c`).
    InvalidUpgrade,
    /// An upgrade attempt with a body (400): RFC 9110 §7.8 switches after the body,
    /// llhttp (Node.js) right after the head, so a server that declines could read the
    /// body as the next request. No browser or WebSocket client sends one.
    UpgradeWithBody,
    /// Both `Content-Length` and `Transfer-Encoding` (400, RFC 9112 §6.1).
    ContentLengthWithTransferEncoding,
    /// A `Content-Length` that is not a decimal number or does not fit 64 bits (400).
    InvalidContentLength,
    /// Several `Content-Length` values that differ (400, RFC 9112 §6.3).
    ConflictingContentLength,
    /// `Transfer-Encoding` whose final coding is not `chunked`, or with `chunked` twice
    /// (400, RFC 9112 §6.3).
    ChunkedNotFinal,
    /// A transfer coding the proxy does not know (400, RFC 9112 §6.1).
    UnknownTransferCoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message (400, RFC 9112 §6.1).
    TransferEncodingInHttp10,
    /// A `TRACE` or `OPTIONS` whose `Max-Forwards` is not one decimal number (400,
    /// RFC 9110 §7.6.2): the proxy must count it down, so it cannot pass it on unread.
    InvalidMaxForwards,
    // ---- chunked bodies (RFC 9112 §7.1) ----
    /// A chunk size that is not hexadecimal digits (400).
    InvalidChunkSize,
    /// A chunk size that does not fit 64 bits (400).
    ChunkSizeOverflow,
    /// Chunk data not followed by CRLF (400).
    MissingChunkDataCrlf,
    /// A malformed chunk extension or trailer section, or one over the size limit (400).
    InvalidChunkMetadata,
    // ---- client behaviour ----
    /// The request head did not arrive within `timeouts.client_head` (408).
    ClientHeadTimeout,
    /// The request body stalled for `timeouts.body_read` (408).
    ClientBodyTimeout,
    /// The request body came slower than `limits.min_request_body_rate` (408).
    ClientBodyTooSlow,
    /// A request body larger than `limits.max_request_body` (413, RFC 9110 §15.5.14).
    RequestBodyTooLarge,
    /// A WebSocket handshake from a page origin `websocket.allowed_origins` does not
    /// list (403, RFC 6455 §4.2.2 and §10.2).
    OriginNotAllowed,
    /// A new upgrade attempt while the proxy drains (503).
    UpgradeWhileDraining,
    /// No route matches the request's host and path (404).
    NoRoute,
    /// Over `max_connections` or `max_connections_per_ip` (503).
    TooManyConnections,
    /// Over `new_connections_per_ip_per_second` (503).
    RateLimited,
    /// Over `max_tunnels` (503).
    TooManyTunnels,
    /// Every server of the upstream group is failing or was tried (502).
    NoLiveUpstream,
    /// The proxy could not open an upstream connection for lack of its own resources
    /// (file descriptors, memory) (503).
    OutOfResources,
    /// A `.` or `..` path segment (plain or percent-encoded) while routes decide by
    /// path: the server behind could resolve it to another route's path (400).
    DotSegmentInPath,
    // ---- upstream ----
    /// Dialling the upstream failed (502).
    UpstreamConnectFailed,
    /// Dialling the upstream did not finish within `timeouts.upstream_connect` (502).
    UpstreamConnectTimeout,
    /// The upstream sent no response head within `timeouts.upstream_response_head` (504).
    UpstreamResponseTimeout,
    /// The upstream closed or reset before a complete response head (502).
    UpstreamClosedEarly,
    /// The upstream's bytes are not an HTTP/1.x response head, or its fields are
    /// malformed (502).
    MalformedResponse,
    /// The upstream's head is larger than the limits (502).
    ResponseHeadTooLarge,
    /// The upstream's framing fields are contradictory (502).
    InvalidResponseFraming,
    /// A response body in a transfer coding other than `chunked` alone, to an HTTP/1.0
    /// client: it cannot be told of the coding, and the proxy does not decode it (502,
    /// RFC 9112 §6.1; the proxy never sends `TE`, so the upstream had no leave to).
    TransferCodingForHttp10,
    /// `101` to a request that did not ask for an upgrade (502, RFC 9110 §7.8).
    UnsolicitedUpgrade,
    /// `101` without `Connection: upgrade` or naming a protocol that was not requested,
    /// or sent before the request was complete (502, RFC 9110 §15.2.2).
    UpgradeProtocolMismatch,
    /// `101` to a WebSocket request whose `Sec-WebSocket-Accept` is missing or wrong
    /// (502, RFC 6455 §4.1).
    WebSocketAcceptMismatch,
    /// `101` to a WebSocket request selecting a subprotocol the client did not offer, or
    /// more than one (502, RFC 6455 §4.1).
    WebSocketSubprotocolMismatch,
    /// `101` to a WebSocket request selecting an extension the client did not offer
    /// (502, RFC 6455 §4.1).
    WebSocketExtensionMismatch,
    /// The response body broke its framing (close).
    InvalidResponseBody,
    /// The response body stalled for `timeouts.body_read` (close).
    UpstreamBodyTimeout,
    /// The upstream closed in the middle of a framed body (close).
    UpstreamTruncatedBody,
    /// A write made no progress for `timeouts.send` (close).
    SendTimeout,
}

impl ProxyError {
    /// The status the client gets, when it can still get one.
    pub fn status(self) -> u16 {
        use ProxyError::*;
        match self {
            RequestHeadTooLarge | TooManyRequestFields => 431,
            RequestTargetTooLong => 414,
            RequestBodyTooLarge => 413,
            OriginNotAllowed => 403,
            UnsupportedWebSocketVersion => 426,
            UnsupportedVersion => 505,
            ConnectNotSupported | MethodTooLong => 501,
            ClientHeadTimeout | ClientBodyTimeout | ClientBodyTooSlow => 408,
            UpgradeWhileDraining | TooManyConnections | RateLimited | TooManyTunnels
            | OutOfResources => 503,
            NoRoute => 404,
            UpstreamResponseTimeout => 504,
            UpstreamConnectFailed
            | NoLiveUpstream
            | UpstreamConnectTimeout
            | UpstreamClosedEarly
            | MalformedResponse
            | ResponseHeadTooLarge
            | InvalidResponseFraming
            | TransferCodingForHttp10
            | UnsolicitedUpgrade
            | UpgradeProtocolMismatch
            | WebSocketAcceptMismatch
            | WebSocketSubprotocolMismatch
            | WebSocketExtensionMismatch
            | InvalidResponseBody
            | UpstreamBodyTimeout
            | UpstreamTruncatedBody
            | SendTimeout => 502,
            _ => 400,
        }
    }

    /// A short, fixed description (never echoes peer bytes).
    pub fn message(self) -> &'static str {
        use ProxyError::*;
        match self {
            RequestHeadTooLarge => "request head too large",
            TooManyRequestFields => "too many request header fields",
            RequestTargetTooLong => "request-target too long",
            MethodTooLong => "method too long",
            MalformedRequestLine => "malformed request line",
            UnsupportedVersion => "HTTP version not supported",
            InvalidFieldName => "invalid header field name",
            InvalidFieldValue => "invalid header field value",
            BareLineFeed => "line ending without CR",
            UnderscoredFieldName => "field name with _ for - in a name the proxy acts on",
            MissingHost => "missing Host",
            DuplicateHost => "more than one Host",
            InvalidHost => "invalid Host",
            InvalidRequestTarget => "invalid request-target",
            DotSegmentInPath => "dot-segment in the path",
            ConnectNotSupported => "CONNECT is not supported",
            InvalidWebSocketKey => "missing, repeated or malformed Sec-WebSocket-Key",
            UnsupportedWebSocketVersion => "Sec-WebSocket-Version must be 13",
            InvalidUpgrade => "malformed Upgrade",
            UpgradeWithBody => "upgrade request with a body",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            InvalidContentLength => "invalid Content-Length",
            ConflictingContentLength => "conflicting Content-Length values",
            ChunkedNotFinal => "Transfer-Encoding must end with a single chunked",
            UnknownTransferCoding => "unknown transfer coding",
            TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0",
            InvalidMaxForwards => "invalid Max-Forwards",
            InvalidChunkSize => "invalid chunk size",
            ChunkSizeOverflow => "chunk size too large",
            MissingChunkDataCrlf => "missing CRLF after chunk data",
            InvalidChunkMetadata => "invalid chunk extension or trailer",
            ClientHeadTimeout => "request head timeout",
            ClientBodyTimeout => "request body timeout",
            ClientBodyTooSlow => "request body too slow",
            RequestBodyTooLarge => "request body too large",
            OriginNotAllowed => "origin not allowed",
            UpgradeWhileDraining => "shutting down",
            NoRoute => "no route for this host and path",
            TooManyConnections => "too many connections",
            RateLimited => "too many new connections",
            TooManyTunnels => "too many tunnels",
            NoLiveUpstream => "no live upstream",
            OutOfResources => "proxy out of resources",
            UpstreamConnectFailed => "upstream connect failed",
            UpstreamConnectTimeout => "upstream connect timeout",
            UpstreamResponseTimeout => "upstream response timeout",
            UpstreamClosedEarly => "upstream closed before responding",
            MalformedResponse => "malformed upstream response",
            ResponseHeadTooLarge => "upstream response head too large",
            InvalidResponseFraming => "invalid upstream response framing",
            TransferCodingForHttp10 => "upstream transfer coding an HTTP/1.0 client cannot receive",
            UnsolicitedUpgrade => "upstream switched protocols unasked",
            UpgradeProtocolMismatch => "upstream switched to a protocol not requested",
            WebSocketAcceptMismatch => "upstream Sec-WebSocket-Accept mismatch",
            WebSocketSubprotocolMismatch => "upstream chose a WebSocket subprotocol not offered",
            WebSocketExtensionMismatch => "upstream chose a WebSocket extension not offered",
            InvalidResponseBody => "invalid upstream response body",
            UpstreamBodyTimeout => "upstream body timeout",
            UpstreamTruncatedBody => "upstream closed mid-body",
            SendTimeout => "send timeout",
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ProxyError {}

/// The reason phrase for the statuses the proxy itself sends.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The complete response the proxy sends for `error`: small, closed, no peer bytes
/// echoed; without its body when answering HEAD (RFC 9110 §9.3.2).
/// With `date`, it has a `Date` (RFC 9110 §6.6.1: a server with a clock sends one).
pub(crate) fn error_response(
    error: ProxyError,
    head_request: bool,
    date: Option<crate::HttpDate>,
) -> bytes::Bytes {
    let status = error.status();
    let body = format!(
        "{} {}: {}\n",
        status,
        reason_phrase(status),
        error.message()
    );
    let date = date.map(|date| format!("Date: {}\r\n", String::from_utf8_lossy(&date)));
    // A 426 names the protocol to use (RFC 9110 §15.5.22), and a WebSocket one the
    // version (RFC 6455 §4.2.2); `Upgrade` goes with its connection option (§7.8).
    let (upgrade, connection) = match error {
        ProxyError::UnsupportedWebSocketVersion => (
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            "upgrade, close",
        ),
        _ => ("", "close"),
    };
    bytes::Bytes::from(format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}{}Connection: {}\r\n\r\n{}",
        status,
        reason_phrase(status),
        body.len(),
        date.as_deref().unwrap_or_default(),
        upgrade,
        connection,
        if head_request { "" } else { &body }
    ))
}
