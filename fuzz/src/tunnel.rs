//! What a tunnel may do to a byte stream, as a checker.
//!
//! A plain tunnel (any protocol but WebSocket) forwards bytes untouched: what one side
//! gets is a prefix of what the other sent. A WebSocket tunnel (RFC 6455 §5) relays the
//! peer's frames untouched too, but may (a) insert whole control frames of its own
//! (Ping, Close) at frame boundaries, masked towards the upstream and unmasked towards
//! the client, (b) consume a Pong answering its own Ping, (c) hold an incomplete frame
//! header or control frame until it is complete, (d) stop relaying once it closes the
//! tunnel, after which its own Close is the last thing it sends, and (e) drop what a
//! peer sends after its own Close frame (RFC 6455 §5.5.1: nothing may follow it).

use crate::input::show;

/// A frame header's facts.
#[derive(Clone, Copy, Debug)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// MASK bit.
    pub masked: bool,
    /// Header length (with extended length and mask key).
    pub header_len: usize,
    /// Payload length as declared.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Whole frame length, if it fits.
    pub fn total(&self) -> Option<usize> {
        usize::try_from(self.payload_len)
            .ok()?
            .checked_add(self.header_len)
    }

    /// Whether the whole frame is within `available` bytes.
    pub fn complete_in(&self, available: usize) -> bool {
        self.total().is_some_and(|t| t <= available)
    }
}

/// Parses the header at the front of `bytes`, if it is all there.
pub fn frame_header(bytes: &[u8]) -> Option<FrameHeader> {
    if bytes.len() < 2 {
        return None;
    }
    let masked = bytes[1] & 0x80 != 0;
    let (payload_len, mut header_len) = match bytes[1] & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    if masked {
        header_len += 4;
    }
    if bytes.len() < header_len {
        return None;
    }
    Some(FrameHeader {
        fin: bytes[0] & 0x80 != 0,
        opcode: bytes[0] & 0x0f,
        masked,
        header_len,
        payload_len,
    })
}

/// What the checker concluded about a forwarded stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relay {
    /// Everything the source sent was forwarded, except bytes a relay may hold
    /// (an incomplete WebSocket header or control frame) or drop (what follows the
    /// source's own Close).
    pub complete: bool,
    /// The proxy sent a Close of its own in this stream (it is ending the tunnel).
    pub proxy_close: bool,
}

/// Checks `forwarded` against `original` (what the other side sent from the start of
/// the tunnel). `websocket` selects the frame-aware rules; `towards_upstream` says
/// which masking the proxy's own frames must use.
pub fn check_relay(
    original: &[u8],
    forwarded: &[u8],
    websocket: bool,
    towards_upstream: bool,
) -> Result<Relay, String> {
    if !websocket {
        return if original.starts_with(forwarded) {
            Ok(Relay {
                complete: forwarded.len() == original.len(),
                proxy_close: false,
            })
        } else {
            Err(format!(
                "tunnel forwarded {} but the peer sent {}",
                show(forwarded),
                show(original)
            ))
        };
    }
    let (mut p, mut q) = (0usize, 0usize);
    let mut proxy_close = false;
    // The source's Close was relayed: the rest of what it sent is dropped.
    let mut peer_closed = false;
    loop {
        let (mut o, f) = (&original[p..], &forwarded[q..]);
        if f.is_empty() && peer_closed {
            return Ok(Relay {
                complete: true,
                proxy_close,
            });
        }
        if f.is_empty() {
            // Pongs the proxy consumed at the end.
            while let Some(h) =
                frame_header(o).filter(|h| h.opcode == 0xA && h.complete_in(o.len()))
            {
                o = &o[h.total().unwrap_or_default()..];
            }
            let held = o.is_empty()
                || match frame_header(o) {
                    None => true,
                    Some(h) => h.opcode >= 8 && !h.complete_in(o.len()),
                };
            return Ok(Relay {
                complete: held,
                proxy_close,
            });
        }
        if proxy_close {
            return Err(format!("bytes after the proxy's own Close: {}", show(f)));
        }
        let header = frame_header(o).filter(|_| !peer_closed);
        // The peer's next frame, relayed whole.
        if let Some(h) = header.filter(|h| h.complete_in(o.len())) {
            let n = h.total().unwrap_or_default();
            if f.starts_with(&o[..n]) {
                peer_closed = h.opcode == 0x8;
                p += n;
                q += n;
                continue;
            }
        }
        // A control frame of the proxy's own, at a boundary.
        if let Some(h) = frame_header(f) {
            let own = h.fin && (h.opcode == 0x8 || h.opcode == 0x9) && h.payload_len <= 125;
            if own && h.masked == towards_upstream && h.complete_in(f.len()) {
                proxy_close |= h.opcode == 0x8;
                q += h.total().unwrap_or_default();
                continue;
            }
        }
        // A Pong the proxy consumed (it answered the proxy's Ping).
        if let Some(h) = header.filter(|h| h.opcode == 0xA && h.complete_in(o.len())) {
            p += h.total().unwrap_or_default();
            continue;
        }
        if peer_closed {
            return Err(format!("bytes after the peer's Close: {}", show(f)));
        }
        // The rest is a prefix of the peer's bytes (a data frame in progress).
        if o.starts_with(f) {
            return Ok(Relay {
                complete: f.len() == o.len(),
                proxy_close,
            });
        }
        return Err(format!(
            "WebSocket relay diverges at forwarded byte {q} / peer byte {p}:\n  forwarded {}\n  peer sent {}",
            show(forwarded),
            show(original)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_follows_the_peers_close_may_be_dropped_but_not_forwarded() {
        let close = [0x88, 0x02, 0x03, 0xE8];
        let late = [0x81, 0x03, b'l', b'a', b't'];
        let sent = [&close[..], &late[..]].concat();
        let dropped = check_relay(&sent, &close, true, false).unwrap();
        assert!(dropped.complete && !dropped.proxy_close);
        assert!(check_relay(&sent, &sent, true, false).is_err());
        // Without a Close, the same frame must be forwarded.
        let open = check_relay(&late, &[], true, false).unwrap();
        assert!(!open.complete);
    }
}
