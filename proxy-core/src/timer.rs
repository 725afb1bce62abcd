//! Deadlines are data with a reason.
//!
//! The session never stores a deadline it would have to remember to cancel: each one
//! is derived from the current state and the time of the last relevant activity
//! (see `Session::next_timer`). A [`Timer`] names which rule a deadline enforces, so
//! tests can assert exactly which one fired.

/// Every deadline a session can be waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The request head must be complete by then → 408 (or a silent close if no byte
    /// arrived on a new connection).
    ClientHead,
    /// A kept-alive connection with no new request → close.
    KeepAliveIdle,
    /// Dialling the upstream → 502.
    UpstreamConnect,
    /// The upstream's response head → 504.
    UpstreamResponseHead,
    /// The next bytes of the request body → 408, or close if a response began.
    RequestBodyRead,
    /// The request body's average rate fell below `limits.min_request_body_rate`
    /// → 408, or close if a response began.
    RequestBodyRate,
    /// The next bytes of the response body → close.
    ResponseBodyRead,
    /// A write towards the client making progress → close.
    SendClient,
    /// A write towards the upstream making progress → close.
    SendUpstream,
    /// Any byte either way in a tunnel → close.
    TunnelIdle,
    /// The second EOF of a tunnel after the first → close.
    Fin,
    /// End of lingering after the last response → close.
    Linger,
    /// The drain deadline → close whatever is left.
    Drain,
    /// A reload's deadline for tunnels of the old configuration → drain them
    /// (WebSocket: Close 1001), closed `fin` later.
    Retire,
    /// A WebSocket peer has been silent for `ping_interval` → the proxy pings it.
    Ping(crate::Side),
    /// A WebSocket peer did not answer the proxy's Ping → it is declared dead.
    PongTimeout(crate::Side),
}
