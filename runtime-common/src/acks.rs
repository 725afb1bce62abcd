//! Acknowledgements that ride on the answer.
//!
//! A new TCP connection starts in quick-ACK mode: Linux acknowledges its first segments
//! at once, each on a packet of its own, even when the application answers them
//! microseconds later and the answer would carry the acknowledgement for free. A proxy
//! meets that pattern at the start of every connection: a client's request head is
//! answered by the response; a dialled upstream is sent the request as soon as the
//! handshake completes, and answers it. Taking the socket out of quick-ACK mode
//! (`TCP_QUICKACK` off) lets those acknowledgements wait for the data going the other
//! way. Each WebSocket open then costs three packets fewer: the ACK of the client's
//! upgrade request, the third packet of the upstream handshake (it rides on the request)
//! and the ACK of the upstream's `101`. HAProxy does the same (`tcp-smart-accept`, on by
//! default in HTTP mode, and `tcp-smart-connect`).
//!
//! The cost: an acknowledgement no answer carries goes when the delayed-ACK timer fires
//! (40 ms at least), as it already does on any connection after its first exchange, when
//! Linux leaves quick-ACK mode by itself. A full-sized segment, or two, are still
//! acknowledged at once, so bulk transfers do not wait.

use socket2::SockRef;

/// Takes `socket` out of quick-ACK mode (Linux; elsewhere nothing). On a listener it
/// must follow `listen(2)`, which resets the setting, and accepted connections inherit
/// it. A `connect(2)` that completes puts the socket back into quick-ACK mode, after
/// deferring the handshake's last ACK: set it before the connect and again after it.
///
/// Only an optimisation: a failure is ignored.
pub fn defer_acks<S>(socket: &S)
where
    for<'s> SockRef<'s>: From<&'s S>,
{
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = SockRef::from(socket).set_tcp_quickack(false);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}
