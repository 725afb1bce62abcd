//! Acknowledgements that ride on the answer.
//!
//! A new TCP connection starts in quick-ACK mode: Linux acknowledges its first segments
//! at once, each on a packet of its own, even when the application answers them
//! microseconds later and the answer would carry the acknowledgement for free. A proxy
//! meets that pattern at the start of every connection: a client's request head is
//! answered by the response; a dialled upstream is sent the request as soon as the
//! handshake completes. Taking the socket out of quick-ACK mode (`TCP_QUICKACK` off)
//! lets the first acknowledgement wait for the data going the other way.
//!
//! Done on HTTP listeners only ([`bind_listener_for`](crate::bind_listener_for)). A
//! layer-4 listener keeps Linux's default, as HAProxy's TCP mode does: the proxy cannot
//! tell there when a client waits for an acknowledgement. On an HTTP listener the ACK
//! of a client's request rides on the response
//! (a WebSocket open takes 12 packets on the client's side instead of 13; HAProxy does
//! the same by default in HTTP mode, `tcp-smart-accept`). A client part way through
//! its first request (a head in part, or a body still to come: the session
//! [`awaits_client`](proxy_core::Session::awaits_client)) is acknowledged at once
//! instead ([`acknowledge_now`]): one that writes the rest without `TCP_NODELAY` holds
//! it until what it sent is acknowledged, and would otherwise wait for the delayed-ACK
//! timer (40 ms). Later requests are acknowledged as Linux does by default. A TLS
//! stream reaches the TCP socket under it for that (each runtime's `Shared`).
//!
//! Not on dialled upstreams (HAProxy's `tcp-smart-connect`, off by default there too):
//! deferring the handshake's last ACK onto the request saves a packet, but the upstream
//! connection then leaves quick-ACK mode as soon as the request is sent. A backend that
//! writes a response head and then its body without `TCP_NODELAY` (Python's
//! `http.server` with keep-alive) sends the body only once the head is acknowledged:
//! its first response took 42 ms through the proxy that way, against 1.5 ms without.

use socket2::SockRef;

/// Sends the acknowledgement `stream` (accepted from such a listener) holds back, and
/// puts it back into quick-ACK mode: for a client part way through its first request
/// ([`Session::awaits_client`](proxy_core::Session::awaits_client)), which may wait
/// for that acknowledgement before it sends the rest.
pub fn acknowledge_now<S>(stream: &S)
where
    for<'s> SockRef<'s>: From<&'s S>,
{
    set_quick_ack(SockRef::from(stream), true);
}

/// Takes `listener` out of quick-ACK mode: the connections it accepts inherit the
/// setting. It must follow `listen(2)`, which resets it.
pub(crate) fn defer_acks(listener: &std::net::TcpListener) {
    set_quick_ack(SockRef::from(listener), false);
}

/// `TCP_QUICKACK` (Linux; elsewhere nothing). Only an optimisation: a failure is
/// ignored.
fn set_quick_ack(socket: SockRef<'_>, on: bool) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket.set_tcp_quickack(on);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (socket, on);
}
