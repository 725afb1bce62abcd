//! WebSocket frames as they pass through a tunnel (RFC 6455 §5).
//!
//! The proxy reads frame *headers* only, so it knows where frames begin and end: that
//! is where it may insert a frame of its own (a Ping, a Close) without corrupting the
//! stream. Data payload is forwarded as the slices that were read, never copied or
//! held. Control frames (at most 125 bytes of payload) are held whole until complete,
//! so the proxy can recognise the Pong answering its own Ping and the peers' Close.

use bytes::{BufMut, Bytes, BytesMut};

/// Close code 1001: going away (idle timeout, shutdown, client gone).
pub const GOING_AWAY: u16 = 1001;
/// Close code 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Close code 1007: data that is not what its type says (a Close reason that is
/// not UTF-8).
pub const INVALID_PAYLOAD: u16 = 1007;
/// Close code 1009: a message larger than the proxy accepts
/// (`websocket.max_message_size`).
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Close code 1011: the server (here, the upstream) failed.
pub const INTERNAL_ERROR: u16 = 1011;
/// Close code 1014: bad gateway, the upstream vanished.
pub const BAD_GATEWAY: u16 = 1014;

/// The longest frame header (RFC 6455 §5.2): 2 bytes, a 64-bit length, a mask key.
pub const MAX_HEADER: usize = 14;
/// A data frame with at least this much payload is large: see
/// [`FrameRelay::expects_large_frame`].
const LARGE_PAYLOAD: u64 = 16 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
/// Opcode of a Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a Ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a Pong frame.
pub const OP_PONG: u8 = 0xA;

/// A frame header that breaks RFC 6455 §5.2 (the tunnel ends with Close 1002).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Opcode 3–7 or 11–15.
    ReservedOpcode,
    /// RSV bits set with no extension negotiated.
    ReservedBits,
    /// A control frame longer than 125 bytes or not final.
    InvalidControlFrame,
    /// A client frame without a mask, or a server frame with one.
    WrongMasking,
    /// A 64-bit length with its most significant bit set.
    LengthTooLarge,
    /// A continuation with no message to continue, or a new message inside one.
    BadFragmentation,
    /// A data frame that would take its message past the size limit given to
    /// [`FrameRelay::next`] (Close 1009, not 1002: the frame is valid, but too big).
    MessageTooBig,
}

impl FrameError {
    /// The close code a connection failed for this error gets (RFC 6455 §7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::MessageTooBig => MESSAGE_TOO_BIG,
            _ => PROTOCOL_ERROR,
        }
    }
}

/// A control frame, held whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlFrame {
    /// `OP_CLOSE`, `OP_PING` or `OP_PONG`.
    pub opcode: u8,
    /// The frame as received, to forward untouched.
    pub raw: Bytes,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// What the relay found in the bytes it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Bytes of data frames (headers and payload) to forward as they are.
    Forward(Bytes),
    /// A complete control frame; the caller forwards `raw` or consumes it.
    Control(ControlFrame),
}

#[derive(Clone, Debug)]
enum State {
    /// Collecting a header: `have` bytes of it in `header`.
    Header { header: [u8; 14], have: usize },
    /// Forwarding this many more payload bytes of a data frame.
    Payload { remaining: u64 },
    /// Holding a control frame until `need` more bytes arrive.
    Control {
        /// A `Vec`, not a `BytesMut`: 8 bytes less in every tunnel's two relays, which
        /// keeps an idle tunnel's WebSocket state in a 256-byte allocation.
        frame: Vec<u8>,
        need: u8,
        opcode: u8,
        mask: Option<[u8; 4]>,
    },
}

/// Tracks frame boundaries in one direction of a WebSocket tunnel.
#[derive(Clone, Debug)]
pub struct FrameRelay {
    state: State,
    /// Frames in this direction must be masked (client to server) or must not be.
    masked: bool,
    /// An extension was negotiated, so RSV bits may be set.
    extensions: bool,
    /// Inside a fragmented data message.
    in_message: bool,
    /// The last data frame's payload was large: the next is likely large too.
    last_large: bool,
    /// Payload bytes of the data message in progress (or the last one), every frame
    /// of it so far included.
    message_len: u64,
}

/// The `max_message` that sets no limit.
pub const NO_MESSAGE_LIMIT: u64 = u64::MAX;

impl FrameRelay {
    /// A relay for frames sent by a client (`masked`) or by a server.
    pub fn new(masked: bool, extensions: bool) -> Self {
        FrameRelay {
            state: State::Header {
                header: [0; 14],
                have: 0,
            },
            masked,
            extensions,
            in_message: false,
            last_large: false,
            message_len: 0,
        }
    }

    /// Whether everything forwarded so far ends at a frame boundary, so a frame of the
    /// proxy's own may be sent next in this direction.
    pub fn at_boundary(&self) -> bool {
        !matches!(self.state, State::Payload { .. })
    }

    /// How many of the next bytes are payload of a data frame: bytes the proxy need
    /// not see, so a runtime may move them without reading them (see
    /// [`Session::passthrough_room`](crate::Session::passthrough_room)).
    pub fn opaque_ahead(&self) -> u64 {
        match self.state {
            State::Payload { remaining } => remaining,
            _ => 0,
        }
    }

    /// Accounts for `n` bytes of [`opaque_ahead`](Self::opaque_ahead) that went past
    /// unseen. More than that is a caller's bug; the frame is then taken as ended.
    pub fn skip_opaque(&mut self, n: u64) {
        if let State::Payload { remaining } = &mut self.state {
            *remaining = remaining.saturating_sub(n);
            if *remaining == 0 {
                self.state = State::Header {
                    header: [0; 14],
                    have: 0,
                };
            }
        }
    }

    /// Whether a new frame header is next and the last data frame was large (16 KiB
    /// or more). A runtime that passes payload unseen then reads only a header's worth
    /// ([`MAX_HEADER`]), so that the payload after it passes too instead of being read
    /// in with the header.
    pub fn expects_large_frame(&self) -> bool {
        self.last_large && matches!(self.state, State::Header { have: 0, .. })
    }

    /// Consumes bytes from the front of `input` and returns the next step, or `None`
    /// once `input` is used up. A data frame that would take its message's payload
    /// past `max_message` bytes is [`FrameError::MessageTooBig`] once its header is
    /// read, before any of it is forwarded ([`NO_MESSAGE_LIMIT`] for none).
    pub fn next(
        &mut self,
        input: &mut Bytes,
        max_message: u64,
    ) -> Result<Option<Step>, FrameError> {
        loop {
            if matches!(self.state, State::Header { have: 0, .. }) {
                let whole = self.take_whole_data_frames(input, max_message);
                if whole > 0 {
                    return Ok(Some(Step::Forward(input.split_to(whole))));
                }
            }
            match &mut self.state {
                State::Control {
                    frame,
                    need: 0,
                    opcode,
                    mask,
                } => {
                    let raw = Bytes::from(std::mem::take(frame));
                    let control = control_frame(*opcode, raw, *mask);
                    self.state = State::Header {
                        header: [0; 14],
                        have: 0,
                    };
                    return Ok(Some(Step::Control(control)));
                }
                _ if input.is_empty() => return Ok(None),
                State::Payload { remaining } => {
                    let take = (*remaining).min(input.len() as u64) as usize;
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = State::Header {
                            header: [0; 14],
                            have: 0,
                        };
                    }
                    return Ok(Some(Step::Forward(input.split_to(take))));
                }
                State::Control { frame, need, .. } => {
                    let take = usize::from(*need).min(input.len());
                    frame.extend_from_slice(&input.split_to(take));
                    *need -= take as u8; // at most `need`
                }
                State::Header { header, have } => {
                    let header_bytes = if *have == 0 && input.len() >= header_len(input) {
                        // The whole header is in this read: slice it, no copy.
                        input.split_to(header_len(input))
                    } else {
                        while *have < header_len(&header[..*have]) && !input.is_empty() {
                            header[*have] = input[0];
                            *have += 1;
                            let _ = input.split_to(1);
                        }
                        if *have < header_len(&header[..*have]) {
                            return Ok(None);
                        }
                        Bytes::copy_from_slice(&header[..*have])
                    };
                    if let Some(step) = self.start_frame(header_bytes, max_message)? {
                        return Ok(Some(step));
                    }
                }
            }
        }
    }

    /// Takes the whole data frames at the front of `input` that pass every check of
    /// [`start_frame`](Self::start_frame), and returns their length: they go on as
    /// one slice, however many there are (a small message is one send, not a header
    /// and a payload). Stops before anything else (a control frame, a partial frame,
    /// a bad header), which is then taken frame by frame.
    fn take_whole_data_frames(&mut self, input: &[u8], max_message: u64) -> usize {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            let len = header_len(rest);
            if rest.len() < len {
                return at;
            }
            let h = parse_header(&rest[..len]);
            let data = matches!(h.opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY);
            let end = (len as u64).saturating_add(h.length);
            // Entering the frame comes last: it changes state only for a frame taken.
            if !data
                || end > rest.len() as u64
                || self.check(&h).is_err()
                || self.enter_data_frame(&h, max_message).is_err()
            {
                return at;
            }
            at += end as usize; // at most `rest.len()`
        }
    }

    /// The checks every frame header passes, whatever its opcode.
    fn check(&self, h: &Header) -> Result<(), FrameError> {
        if h.rsv && !self.extensions {
            return Err(FrameError::ReservedBits);
        }
        if h.mask.is_some() != self.masked {
            return Err(FrameError::WrongMasking);
        }
        if h.length >> 63 != 0 {
            return Err(FrameError::LengthTooLarge);
        }
        Ok(())
    }

    /// Checks a data frame's place in its message (RFC 6455 §5.4) and the message's
    /// size with it, and notes where the frame leaves the message and how large it is.
    /// Changes nothing on an error.
    fn enter_data_frame(&mut self, h: &Header, max_message: u64) -> Result<(), FrameError> {
        let continuation = h.opcode == OP_CONTINUATION;
        if continuation != self.in_message {
            return Err(FrameError::BadFragmentation);
        }
        let before = if continuation { self.message_len } else { 0 };
        let message_len = before.saturating_add(h.length);
        if message_len > max_message {
            return Err(FrameError::MessageTooBig);
        }
        self.message_len = message_len;
        self.in_message = !h.fin;
        self.last_large = h.length >= LARGE_PAYLOAD;
        Ok(())
    }

    /// A complete header: check it (RFC 6455 §5.2, §5.4, §5.5) and enter its frame.
    fn start_frame(
        &mut self,
        header_bytes: Bytes,
        max_message: u64,
    ) -> Result<Option<Step>, FrameError> {
        let h = parse_header(&header_bytes);
        self.check(&h)?;
        match h.opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !h.fin || h.length > 125 {
                    return Err(FrameError::InvalidControlFrame);
                }
                let mut frame = Vec::with_capacity(header_bytes.len() + h.length as usize);
                frame.extend_from_slice(&header_bytes);
                self.state = State::Control {
                    frame,
                    need: h.length as u8, // at most 125, checked above
                    opcode: h.opcode,
                    mask: h.mask,
                };
                Ok(None)
            }
            OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                self.enter_data_frame(&h, max_message)?;
                self.state = if h.length > 0 {
                    State::Payload {
                        remaining: h.length,
                    }
                } else {
                    State::Header {
                        header: [0; 14],
                        have: 0,
                    }
                };
                Ok(Some(Step::Forward(header_bytes)))
            }
            _ => Err(FrameError::ReservedOpcode),
        }
    }
}

struct Header {
    fin: bool,
    rsv: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    length: u64,
}

/// The full length of a header given its first bytes (2 until they are known).
fn header_len(start: &[u8]) -> usize {
    if start.len() < 2 {
        return 2;
    }
    let extended = match start[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if start[1] & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

fn parse_header(h: &[u8]) -> Header {
    let (length, mut at) = match h[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
        127 => (
            u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            10,
        ),
        n => (u64::from(n), 2),
    };
    let mask = if h[1] & 0x80 != 0 {
        let key = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    debug_assert_eq!(at, h.len());
    Header {
        fin: h[0] & 0x80 != 0,
        rsv: h[0] & 0x70 != 0,
        opcode: h[0] & 0x0f,
        mask,
        length,
    }
}

fn control_frame(opcode: u8, raw: Bytes, mask: Option<[u8; 4]>) -> ControlFrame {
    let payload_start = raw.len() - payload_len(&raw);
    let mut payload = raw[payload_start..].to_vec();
    if let Some(key) = mask {
        apply_mask(&mut payload, key);
    }
    ControlFrame {
        opcode,
        raw,
        payload,
    }
}

fn payload_len(raw: &[u8]) -> usize {
    raw.len() - header_len(raw)
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Whether a Close frame's payload breaks RFC 6455 §5.5.1 or §7.4, as the close code
/// to fail the connection with: 1002 for one byte or a code no peer may send, 1007
/// for a reason that is not UTF-8. An empty payload (no code) is valid.
pub fn close_payload_error(payload: &[u8]) -> Option<u16> {
    let [high, low, reason @ ..] = payload else {
        return (payload.len() == 1).then_some(PROTOCOL_ERROR);
    };
    if !close_code_may_be_sent(u16::from_be_bytes([*high, *low])) {
        return Some(PROTOCOL_ERROR);
    }
    std::str::from_utf8(reason).err().map(|_| INVALID_PAYLOAD)
}

/// The codes a peer may put in a Close (§7.4.1 and the IANA registry): 1000–1003
/// and 1007–1014 as defined, 3000–4999 for libraries and applications. 1004 is
/// reserved; 1005, 1006 and 1015 only report a close and are never sent.
fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Encodes a control frame from the proxy; masked (with `mask`) towards an upstream.
pub fn encode_control(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let payload = &payload[..payload.len().min(125)];
    let mut out = BytesMut::with_capacity(6 + payload.len());
    out.put_u8(0x80 | opcode);
    out.put_u8(if mask.is_some() { 0x80 } else { 0 } | payload.len() as u8);
    let mut body = payload.to_vec();
    if let Some(key) = mask {
        out.put_slice(&key);
        apply_mask(&mut body, key);
    }
    out.put_slice(&body);
    out.freeze()
}

/// Encodes a Close frame with a code and a reason (RFC 6455 §5.5.1).
pub fn encode_close(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    encode_control(OP_CLOSE, &payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_all(
        relay: &mut FrameRelay,
        pieces: &[&[u8]],
    ) -> Result<(Vec<u8>, Vec<ControlFrame>), FrameError> {
        let (mut forwarded, mut controls) = (Vec::new(), Vec::new());
        for piece in pieces {
            let mut input = Bytes::copy_from_slice(piece);
            while let Some(step) = relay.next(&mut input, NO_MESSAGE_LIMIT)? {
                match step {
                    Step::Forward(b) => forwarded.extend_from_slice(&b),
                    Step::Control(c) => controls.push(c),
                }
            }
        }
        Ok((forwarded, controls))
    }

    /// Every step `relay` takes over `input`, in order.
    fn steps(relay: &mut FrameRelay, input: &[u8]) -> Vec<Step> {
        let mut input = Bytes::copy_from_slice(input);
        std::iter::from_fn(|| relay.next(&mut input, NO_MESSAGE_LIMIT).unwrap()).collect()
    }

    #[test]
    fn whole_data_frames_in_one_read_go_on_as_one_slice() {
        let text = [0x81, 0x02, b'h', b'i']; // server text "hi"
        let fragment = [0x02, 0x01, 9]; // binary, not final
        let last = [0x80, 0x01, 8]; // final continuation
        let ping = encode_control(OP_PING, b"p", None);
        let partial = [0x82, 0x03, 1]; // binary of 3, 1 byte here
        let mut stream = [&text[..], &fragment, &last].concat();
        let data_len = stream.len();
        stream.extend_from_slice(&ping);
        stream.extend_from_slice(&text);
        stream.extend_from_slice(&partial);
        let mut relay = FrameRelay::new(false, false);
        let steps = steps(&mut relay, &stream);
        let Step::Control(control) = &steps[1] else {
            panic!("{steps:?}");
        };
        assert_eq!(control.payload, b"p");
        assert_eq!(
            steps,
            [
                Step::Forward(Bytes::copy_from_slice(&stream[..data_len])),
                steps[1].clone(),
                Step::Forward(Bytes::copy_from_slice(&text)),
                // The frame that is not whole goes frame by frame: header, payload.
                Step::Forward(Bytes::copy_from_slice(&partial[..2])),
                Step::Forward(Bytes::copy_from_slice(&partial[2..])),
            ]
        );
        assert_eq!(relay.opaque_ahead(), 2, "the rest of the partial frame");
    }

    #[test]
    fn a_bad_frame_after_whole_ones_is_refused_after_they_are_forwarded() {
        let text = [0x81, 0x01, b'a'];
        let masked = [0x81, 0x81, 1, 2, 3, 4, b'b']; // a server must not mask
        let mut relay = FrameRelay::new(false, false);
        let mut input = Bytes::copy_from_slice(&[&text[..], &masked].concat());
        assert_eq!(
            relay.next(&mut input, NO_MESSAGE_LIMIT),
            Ok(Some(Step::Forward(Bytes::copy_from_slice(&text))))
        );
        assert_eq!(
            relay.next(&mut input, NO_MESSAGE_LIMIT),
            Err(FrameError::WrongMasking)
        );
        // A continuation with no message open is refused too, whole or not.
        let mut relay = FrameRelay::new(false, false);
        let mut input = Bytes::from_static(&[0x80, 0x01, 1]);
        assert_eq!(
            relay.next(&mut input, NO_MESSAGE_LIMIT),
            Err(FrameError::BadFragmentation)
        );
    }

    #[test]
    fn frame_headers_split_at_every_byte_give_the_same_frames() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&[0x01, 0x83, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3]); // text, not final
        stream.extend_from_slice(&encode_control(OP_PING, b"hi", Some([9, 9, 9, 9]))); // interleaved ping
        stream.extend_from_slice(&[0x80, 0xFE, 0x01, 0x00, 0, 0, 0, 0]); // final continuation, 256 bytes
        stream.extend_from_slice(&[7u8; 256]);
        let mut whole = FrameRelay::new(true, false);
        let expected = relay_all(&mut whole, &[&stream]).unwrap();
        assert_eq!(expected.1.len(), 1);
        assert_eq!(expected.1[0].payload, b"hi");
        for at in 0..stream.len() {
            let mut relay = FrameRelay::new(true, false);
            let (a, b) = stream.split_at(at);
            assert_eq!(
                relay_all(&mut relay, &[a, b]).unwrap(),
                expected,
                "split at {at}"
            );
        }
        let mut relay = FrameRelay::new(true, false);
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(relay_all(&mut relay, &bytewise).unwrap(), expected);
    }

    #[test]
    fn boundaries_are_known_between_frames_only() {
        let mut relay = FrameRelay::new(false, false);
        assert!(relay.at_boundary());
        let mut input = Bytes::from_static(&[0x82, 0x04, 1, 2]);
        while relay.next(&mut input, NO_MESSAGE_LIMIT).unwrap().is_some() {}
        assert!(!relay.at_boundary(), "two payload bytes still to come");
        let mut input = Bytes::from_static(&[3, 4]);
        while relay.next(&mut input, NO_MESSAGE_LIMIT).unwrap().is_some() {}
        assert!(relay.at_boundary());
    }

    #[test]
    fn rfc6455_header_violations_are_errors() {
        let cases: [(&[u8], bool, FrameError); 7] = [
            (&[0x83, 0x00], false, FrameError::ReservedOpcode),
            (&[0xC1, 0x00], false, FrameError::ReservedBits),
            (
                &[0x89, 0x7E, 0x00, 0x7E],
                false,
                FrameError::InvalidControlFrame,
            ),
            (&[0x09, 0x00], false, FrameError::InvalidControlFrame),
            (&[0x81, 0x00], true, FrameError::WrongMasking),
            (
                &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                false,
                FrameError::LengthTooLarge,
            ),
            (&[0x80, 0x00], false, FrameError::BadFragmentation),
        ];
        for (bytes, masked, error) in cases {
            let mut relay = FrameRelay::new(masked, false);
            assert_eq!(relay_all(&mut relay, &[bytes]), Err(error), "{bytes:?}");
        }
    }

    /// A server data frame of `len` payload bytes (zeros), final or not.
    fn data_frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        let mut frame = vec![u8::from(fin) << 7 | opcode];
        match len {
            0..=125 => frame.push(len as u8),
            126..=0xFFFF => {
                frame.push(126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                frame.push(127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.resize(frame.len() + len, 0);
        frame
    }

    /// Relays `stream` with a message limit; returns what was forwarded and the error.
    fn relay_limited(stream: &[u8], max_message: u64) -> (Vec<u8>, Option<FrameError>) {
        let mut relay = FrameRelay::new(false, false);
        let mut input = Bytes::copy_from_slice(stream);
        let mut forwarded = Vec::new();
        loop {
            match relay.next(&mut input, max_message) {
                Ok(Some(Step::Forward(b))) => forwarded.extend_from_slice(&b),
                Ok(Some(Step::Control(c))) => forwarded.extend_from_slice(&c.raw),
                Ok(None) => return (forwarded, None),
                Err(e) => return (forwarded, Some(e)),
            }
        }
    }

    #[test]
    fn a_message_over_the_limit_is_refused_at_the_header_that_crosses_it() {
        let exactly = data_frame(OP_BINARY, true, 1000);
        assert_eq!(relay_limited(&exactly, 1000), (exactly.clone(), None));
        let (forwarded, error) = relay_limited(&data_frame(OP_TEXT, true, 1001), 1000);
        assert_eq!(
            (forwarded.len(), error),
            (0, Some(FrameError::MessageTooBig))
        );
        // Fragments count together; a control frame between them does not count, and
        // the frames before the one that crosses the limit have gone on.
        let first = data_frame(OP_TEXT, false, 400);
        let ping = encode_control(OP_PING, &[7; 100], None).to_vec();
        let second = data_frame(OP_CONTINUATION, false, 400);
        let third = data_frame(OP_CONTINUATION, true, 201);
        let before = [&first[..], &ping, &second].concat();
        let (forwarded, error) = relay_limited(&[&before[..], &third].concat(), 1000);
        assert_eq!(
            (forwarded, error),
            (before.clone(), Some(FrameError::MessageTooBig))
        );
        let third = data_frame(OP_CONTINUATION, true, 200);
        let stream = [&before[..], &third].concat();
        assert_eq!(relay_limited(&stream, 1000), (stream.clone(), None));
        // Each message starts from zero.
        let stream = [exactly.clone(), exactly.clone(), exactly].concat();
        assert_eq!(relay_limited(&stream, 1000), (stream.clone(), None));
        assert_eq!(FrameError::MessageTooBig.close_code(), MESSAGE_TOO_BIG);
        assert_eq!(FrameError::WrongMasking.close_code(), PROTOCOL_ERROR);
    }

    #[test]
    fn a_too_big_message_is_found_however_its_header_is_split() {
        // 2^40 bytes announced: refused at the header's last byte, whatever the reads.
        let header = &data_frame(OP_BINARY, true, 70_000)[..10];
        let mut huge = header.to_vec();
        huge[2..10].copy_from_slice(&(1u64 << 40).to_be_bytes());
        for at in 0..huge.len() {
            let mut relay = FrameRelay::new(false, false);
            let mut first = Bytes::copy_from_slice(&huge[..at]);
            assert_eq!(relay.next(&mut first, 1 << 20), Ok(None), "split at {at}");
            let mut rest = Bytes::copy_from_slice(&huge[at..]);
            assert_eq!(
                relay.next(&mut rest, 1 << 20),
                Err(FrameError::MessageTooBig)
            );
        }
    }

    #[test]
    fn rsv_bits_are_allowed_with_an_extension() {
        let mut relay = FrameRelay::new(false, true);
        assert!(relay_all(&mut relay, &[&[0xC1, 0x01, b'x']]).is_ok());
    }

    #[test]
    fn close_payloads_are_checked_as_rfc6455_says() {
        let close = |code: u16, reason: &[u8]| [&code.to_be_bytes()[..], reason].concat();
        assert_eq!(close_payload_error(&[]), None, "no code at all is valid");
        assert_eq!(close_payload_error(&[0x03]), Some(PROTOCOL_ERROR));
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            assert_eq!(close_payload_error(&close(code, b"bye")), None, "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                close_payload_error(&close(code, b"")),
                Some(PROTOCOL_ERROR),
                "{code}"
            );
        }
        let not_utf8 = close(1000, &[0xce, 0xba, 0xed, 0xa0, 0x80]);
        assert_eq!(close_payload_error(&not_utf8), Some(INVALID_PAYLOAD));
        assert_eq!(close_payload_error(&close(1000, "κόσμε".as_bytes())), None);
    }

    #[test]
    fn encoded_close_carries_code_and_reason() {
        let frame = encode_close(GOING_AWAY, "idle timeout", None);
        assert_eq!(&frame[..4], &[0x88, 14, 0x03, 0xE9]);
        assert_eq!(&frame[4..], b"idle timeout");
        let mut relay = FrameRelay::new(true, false);
        let masked = encode_close(GOING_AWAY, "bye", Some([1, 2, 3, 4]));
        let (_, controls) = relay_all(&mut relay, &[&masked]).unwrap();
        assert_eq!(controls[0].payload, [&[0x03, 0xE9][..], b"bye"].concat());
    }
}
