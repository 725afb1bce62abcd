//! Invariant: `FrameRelay` (masked and unmasked directions, with and without extensions) fed a stream cut anywhere agrees with a whole-buffer reference decoder (RFC 6455 §5.2): the same frames at the same byte boundaries, data forwarded as soon as it arrives and never across a frame boundary (but whole data frames read together may go on together), control frames delivered whole (raw bytes and unmasked payload) once their last byte arrives, `at_boundary` exactly between frames, and an error the reference also finds, reported when the offending header's last byte is read; what was forwarded, concatenated, is the input up to that header.
//!
//! Input: `header`, then `(header >> 3) & 0x0f` piece lengths (one byte each), then
//! the payload. `header & 1`: the direction is client to server (frames must be
//! masked); `header & 2`: an extension was negotiated (RSV bits allowed); `header & 4`:
//! the payload drives a generator of mostly valid frame streams ([`generate`]) instead
//! of being the stream itself; `header & 0x80`: also feed the stream a byte at a time
//! (streams up to 1 KiB).
//! The stream is always also fed in one piece. Every run is made twice: with no
//! message size limit, and with a limit of 8 × the input's last byte (so 0–2,040
//! bytes, which the generated frames' lengths straddle).
//!
//! The reference decoder ([`decode`]) reads the whole stream at once, frame by frame,
//! and lists every rule a header breaks: reserved opcode (3–7, 11–15), RSV bits with
//! no extension, a control frame (8–10) longer than 125 bytes or not final, a mask
//! bit that does not match the direction, a 64-bit length with its most significant
//! bit set, a continuation with no message open or a new text/binary frame inside
//! one, a data frame that takes its message's payload (all its frames so far) past
//! the size limit. RFC 6455 gives no order among them, so the relay may report any one of the
//! rules broken. Not checked here, as the relay leaves them to the endpoints: minimal
//! length encoding, close codes and UTF-8 in text frames.

use bytes::Bytes;
use proxy_core::websocket::{FrameError, FrameRelay, Step, NO_MESSAGE_LIMIT};

use crate::input::{piece_lengths, show, split, Reader};

/// One frame as the reference decoder sees it in the whole stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text, binary or continuation frame: its header is `start..header_end`, its
    /// payload runs to `end` (which may lie past the end of the stream).
    Data {
        /// First byte of the header.
        start: usize,
        /// First byte of the payload.
        header_end: usize,
        /// One past the last payload byte, as declared.
        end: u64,
    },
    /// A complete Close, Ping or Pong frame at `start..end`.
    Control {
        /// First byte of the header.
        start: usize,
        /// One past the last payload byte.
        end: usize,
        /// 8, 9 or 10.
        opcode: u8,
        /// The payload, unmasked.
        payload: Vec<u8>,
    },
}

impl Frame {
    fn start(&self) -> usize {
        match *self {
            Frame::Data { start, .. } | Frame::Control { start, .. } => start,
        }
    }

    fn end(&self) -> u64 {
        match *self {
            Frame::Data { end, .. } => end,
            Frame::Control { end, .. } => end as u64,
        }
    }
}

/// How the reference decoder stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// No error in the stream. Bytes from `held_from` on are an incomplete header or
    /// control frame, which a relay holds (the stream's length when nothing is held).
    Open {
        /// Where the held bytes begin.
        held_from: usize,
    },
    /// The header at `start..header_end` breaks every rule in `errors`.
    Error {
        /// First byte of the offending header.
        start: usize,
        /// One past its last byte.
        header_end: usize,
        /// The rules it breaks (never empty).
        errors: Vec<FrameError>,
    },
}

/// What the reference decoder made of a whole stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Frames before the end, in order (the last data frame may be incomplete).
    pub frames: Vec<Frame>,
    /// How it ended.
    pub end: End,
}

impl Reference {
    /// The frame containing byte `at` (its start included, its end not). Frames are
    /// contiguous and in order, so this is a binary search.
    fn frame_at(&self, at: usize) -> Option<&Frame> {
        let after = self.frames.partition_point(|f| f.start() <= at);
        let frame = self.frames.get(after.checked_sub(1)?)?;
        ((at as u64) < frame.end()).then_some(frame)
    }

    /// How many bytes a relay must have passed on (forwarded, or delivered as control
    /// frames) once it has read the first `read` bytes of the stream: everything but
    /// an incomplete header or control frame (or the offending header).
    pub fn emitted_by(&self, read: usize) -> usize {
        match self.frame_at(read) {
            Some(&Frame::Data {
                start, header_end, ..
            }) => {
                if read < header_end {
                    start
                } else {
                    read
                }
            }
            Some(&Frame::Control { start, .. }) => start,
            // Past every frame: all of them are passed on; what follows (held bytes,
            // the offending header) begins where the last one ends.
            None => self.frames.last().map_or(0, |f| f.end() as usize),
        }
    }

    /// Whether `at` lies strictly inside a data frame (so not at a boundary).
    fn inside_data(&self, at: usize) -> bool {
        matches!(self.frame_at(at), Some(&Frame::Data { start, .. }) if start < at)
    }
}

/// Reads `stream` as a whole, frame by frame: the reference the relay is judged by.
/// `masked`: frames must carry a mask (client to server); `extensions`: RSV bits
/// are allowed; `max_message`: the most payload bytes a message may carry.
pub fn decode(stream: &[u8], masked: bool, extensions: bool, max_message: u64) -> Reference {
    let mut frames = Vec::new();
    let mut at = 0usize;
    let mut in_message = false;
    let mut message_len = 0u64;
    loop {
        let rest = &stream[at..];
        if rest.len() < 2 {
            return Reference {
                frames,
                end: End::Open { held_from: at },
            };
        }
        let fin = rest[0] & 0x80 != 0;
        let rsv = rest[0] & 0x70;
        let opcode = rest[0] & 0x0f;
        let has_mask = rest[1] & 0x80 != 0;
        let length_code = rest[1] & 0x7f;
        let extended = match length_code {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + extended + if has_mask { 4 } else { 0 };
        if rest.len() < header_len {
            return Reference {
                frames,
                end: End::Open { held_from: at },
            };
        }
        let length = match length_code {
            126 => u64::from(u16::from_be_bytes([rest[2], rest[3]])),
            127 => u64::from_be_bytes(rest[2..10].try_into().unwrap()),
            n => u64::from(n),
        };
        let key: Option<[u8; 4]> =
            has_mask.then(|| rest[2 + extended..6 + extended].try_into().unwrap());
        let is_control = matches!(opcode, 8..=10);
        let is_data = matches!(opcode, 0..=2);
        let mut errors = Vec::new();
        if !is_control && !is_data {
            errors.push(FrameError::ReservedOpcode);
        }
        if rsv != 0 && !extensions {
            errors.push(FrameError::ReservedBits);
        }
        if is_control && (!fin || length > 125) {
            errors.push(FrameError::InvalidControlFrame);
        }
        if has_mask != masked {
            errors.push(FrameError::WrongMasking);
        }
        if length_code == 127 && length >> 63 == 1 {
            errors.push(FrameError::LengthTooLarge);
        }
        if (opcode == 0 && !in_message) || (matches!(opcode, 1 | 2) && in_message) {
            errors.push(FrameError::BadFragmentation);
        }
        let message_so_far = match opcode {
            0 => message_len.saturating_add(length),
            _ => length,
        };
        if is_data && message_so_far > max_message {
            errors.push(FrameError::MessageTooBig);
        }
        let header_end = at + header_len;
        if !errors.is_empty() {
            return Reference {
                frames,
                end: End::Error {
                    start: at,
                    header_end,
                    errors,
                },
            };
        }
        if is_control {
            let end = header_end + length as usize;
            if stream.len() < end {
                return Reference {
                    frames,
                    end: End::Open { held_from: at },
                };
            }
            let mut payload = stream[header_end..end].to_vec();
            if let Some(key) = key {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i % 4];
                }
            }
            frames.push(Frame::Control {
                start: at,
                end,
                opcode,
                payload,
            });
            at = end;
        } else {
            in_message = !fin;
            message_len = message_so_far;
            let end = header_end as u64 + length;
            frames.push(Frame::Data {
                start: at,
                header_end,
                end,
            });
            if end > stream.len() as u64 {
                return Reference {
                    frames,
                    end: End::Open {
                        held_from: stream.len(),
                    },
                };
            }
            at = end as usize;
        }
    }
}

/// What the relay did with a stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Relayed {
    /// Bytes passed on (forwarded, and control frames' raw bytes), in order.
    pub emitted: Vec<u8>,
    /// The error, and how many stream bytes had been read when it was returned.
    pub error: Option<(FrameError, usize)>,
}

/// Feeds `pieces` (the stream, cut) to a fresh relay and checks every step against
/// `reference` as it happens; panics with a description on the first disagreement.
pub fn relay_pieces(
    stream: &[u8],
    pieces: &[&[u8]],
    masked: bool,
    extensions: bool,
    max_message: u64,
    reference: &Reference,
) -> Relayed {
    let context = || {
        format!(
            "masked {masked}, extensions {extensions}, max_message {max_message}\n stream {}\n pieces {:?}\n reference {:?}",
            show(stream),
            pieces.iter().map(|p| show(p)).collect::<Vec<_>>(),
            reference
        )
    };
    let mut relay = FrameRelay::new(masked, extensions);
    let mut emitted: Vec<u8> = Vec::new();
    let mut read_before = 0usize;
    for piece in pieces {
        let mut input = Bytes::copy_from_slice(piece);
        let base = input.as_ptr() as usize;
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(
                steps <= 2 * piece.len() + 4,
                "the relay keeps returning steps for a {}-byte piece\n{}",
                piece.len(),
                context()
            );
            let at = emitted.len();
            let step = match relay.next(&mut input, max_message) {
                Ok(Some(step)) => step,
                Ok(None) => {
                    assert!(
                        input.is_empty(),
                        "next returned None with {} bytes of input left\n{}",
                        input.len(),
                        context()
                    );
                    break;
                }
                Err(error) => {
                    let read = read_before + piece.len() - input.len();
                    return Relayed {
                        emitted,
                        error: Some((error, read)),
                    };
                }
            };
            let read = read_before + piece.len() - input.len();
            match step {
                Step::Forward(bytes) => {
                    let frame = reference.frame_at(at);
                    let Some(&Frame::Data {
                        header_end, end, ..
                    }) = frame
                    else {
                        panic!(
                            "Forward of {} at byte {at}, which does not begin or continue a data frame ({frame:?})\n{}",
                            show(&bytes),
                            context()
                        )
                    };
                    let Some(&Frame::Data { start, .. }) = frame else {
                        unreachable!()
                    };
                    if (at + bytes.len()) as u64 > end {
                        // Several frames at once: whole data frames only.
                        let mut next = end;
                        while next < (at + bytes.len()) as u64 {
                            match reference.frame_at(next as usize) {
                                Some(&Frame::Data { end, .. }) => next = end,
                                other => panic!(
                                    "Forward of {} bytes at byte {at} runs into {other:?}\n{}",
                                    bytes.len(),
                                    context()
                                ),
                            }
                        }
                        assert!(
                            at == start && next == (at + bytes.len()) as u64,
                            "Forward of {} bytes at byte {at} runs past its frame ({start}..{end}) without covering whole frames\n{}",
                            bytes.len(),
                            context()
                        );
                    }
                    assert!(
                        stream.get(at..at + bytes.len()) == Some(&bytes[..]),
                        "Forward at byte {at} is not the stream's bytes: {}\n{}",
                        show(&bytes),
                        context()
                    );
                    // Payload goes out as the slices that were read, never copied.
                    if at >= header_end && !bytes.is_empty() {
                        let start = bytes.as_ptr() as usize;
                        assert!(
                            start >= base && start + bytes.len() <= base + piece.len(),
                            "payload at byte {at} was copied, not sliced from the input\n{}",
                            context()
                        );
                    }
                    emitted.extend_from_slice(&bytes);
                }
                Step::Control(control) => {
                    let frame = reference.frame_at(at);
                    let Some(Frame::Control {
                        start,
                        end,
                        opcode,
                        payload,
                    }) = frame
                    else {
                        panic!(
                            "Control {control:?} at byte {at}, where the reference has {frame:?}\n{}",
                            context()
                        )
                    };
                    assert!(
                        *start == at
                            && control.raw[..] == stream[*start..*end]
                            && control.opcode == *opcode
                            && control.payload == *payload,
                        "Control at byte {at} is {control:?}, the reference has {frame:?}\n{}",
                        context()
                    );
                    emitted.extend_from_slice(&control.raw);
                }
            }
            assert!(
                emitted.len() <= reference.emitted_by(read),
                "after reading {read} bytes the relay passed on {}, more than the {} it could know\n{}",
                emitted.len(),
                reference.emitted_by(read),
                context()
            );
            assert_eq!(
                relay.at_boundary(),
                !reference.inside_data(emitted.len()),
                "at_boundary() after passing on {} bytes\n{}",
                emitted.len(),
                context()
            );
        }
        read_before += piece.len();
        // Nothing is held that could be passed on.
        assert_eq!(
            emitted.len(),
            reference.emitted_by(read_before),
            "after reading {read_before} bytes the relay passed on {} of them\n{}",
            emitted.len(),
            context()
        );
        assert_eq!(
            relay.at_boundary(),
            !reference.inside_data(emitted.len()),
            "at_boundary() after passing on {} bytes\n{}",
            emitted.len(),
            context()
        );
    }
    Relayed {
        emitted,
        error: None,
    }
}

/// Runs the relay over `pieces` and compares the whole outcome with the reference.
pub fn check_pieces(
    stream: &[u8],
    pieces: &[&[u8]],
    masked: bool,
    extensions: bool,
    max_message: u64,
) {
    let reference = decode(stream, masked, extensions, max_message);
    let relayed = relay_pieces(stream, pieces, masked, extensions, max_message, &reference);
    let context = || {
        format!(
            "masked {masked}, extensions {extensions}, max_message {max_message}\n stream {}\n pieces {:?}\n reference {:?}\n relay passed on {} then {:?}",
            show(stream),
            pieces.iter().map(|p| show(p)).collect::<Vec<_>>(),
            reference,
            show(&relayed.emitted),
            relayed.error
        )
    };
    match (&reference.end, relayed.error) {
        (End::Open { held_from }, None) => assert!(
            relayed.emitted == stream[..*held_from],
            "the relay passed on other bytes than the stream up to its held tail\n{}",
            context()
        ),
        (
            End::Error {
                start,
                header_end,
                errors,
            },
            Some((error, read)),
        ) => {
            assert!(
                errors.contains(&error),
                "the relay reported {error:?}, the header breaks {errors:?}\n{}",
                context()
            );
            assert_eq!(
                read,
                *header_end,
                "the error came after reading {read} bytes, the offending header ends at {header_end}\n{}",
                context()
            );
            assert!(
                relayed.emitted == stream[..*start],
                "what the relay passed on is not the stream up to the offending header\n{}",
                context()
            );
        }
        (End::Open { .. }, Some(_)) => {
            panic!(
                "the relay reported an error the reference does not find\n{}",
                context()
            )
        }
        (End::Error { .. }, None) => {
            panic!("the relay missed an error\n{}", context())
        }
    }
}

/// Builds a frame stream from fuzz bytes: mostly valid for the direction (masked or
/// not, fragmentation in order, control frames final and short), each frame with a
/// small chance of one rule broken or the stream cut inside it.
///
/// Per frame three bytes: `kind` (opcode family), `size` (bits 6–7: 7-bit, 16-bit or
/// 64-bit length encoding, minimal or not; bits 0–5: the length), `mutation`
/// (0–223 none, then one of: FIN flipped, an RSV bit, mask flipped, a reserved
/// opcode, a control frame over 125 bytes, a 64-bit length with the top bit set, the
/// wrong fragmentation, a huge declared length, a cut inside the frame).
pub fn generate(data: &[u8], masked: bool) -> Vec<u8> {
    let mut reader = Reader::new(data);
    let mut out = Vec::new();
    let mut in_message = false;
    let mut frame_number = 0u8;
    while !reader.is_empty() && out.len() < 4 * 1024 {
        frame_number = frame_number.wrapping_add(1);
        let kind = reader.u8();
        let size = reader.u8();
        let mutation = reader.u8();
        let (mut opcode, mut fin) = match kind % 8 {
            0 => (1, true),
            1 => (2, true),
            2 => (0, true),
            3 => (9, true),
            4 => (10, true),
            5 => (8, true),
            6 => (1, false),
            _ => (0, false),
        };
        // Keep fragmentation in order unless a mutation breaks it.
        if opcode < 8 {
            opcode = match (opcode, in_message) {
                (0, false) => 1 + (kind >> 3) % 2,
                (1 | 2, true) => 0,
                (op, _) => op,
            };
        }
        let mut length = u64::from(size & 0x3f);
        let mut encoding = size >> 6; // 0, 1: 7-bit; 2: 16-bit; 3: 64-bit
        if encoding == 2 && opcode < 8 {
            length += 126 + u64::from(kind >> 3) * 8;
        }
        let mut rsv = 0u8;
        let mut mask = masked;
        let mut cut = None;
        match mutation {
            224..=227 => fin = !fin,
            228..=231 => rsv = 0x10 << (mutation % 3),
            232..=235 => mask = !mask,
            236..=239 => opcode = [3, 7, 11, 15][usize::from(mutation % 4)],
            240..=243 => {
                opcode = 8 + mutation % 3;
                length = 126 + u64::from(size & 0x3f);
                encoding = 2;
            }
            244..=245 => {
                length |= 1 << 63;
                encoding = 3;
            }
            246..=247 => opcode = if in_message { 1 } else { 0 },
            248..=251 => {
                // A declared length far past the end: the rest is all payload.
                length = (1 << 32) + u64::from(size);
                encoding = 3;
            }
            252..=255 => cut = Some(usize::from(size % 16)),
            _ => {}
        }
        if opcode < 8 {
            in_message = !fin;
        }
        let mut frame = vec![(if fin { 0x80 } else { 0 }) | rsv | opcode];
        let mask_bit = if mask { 0x80 } else { 0 };
        match encoding {
            0 | 1 if length <= 125 => frame.push(mask_bit | length as u8),
            0..=2 if length <= 0xffff => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(length as u16).to_be_bytes());
            }
            _ => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&length.to_be_bytes());
            }
        }
        let key = [kind, size ^ 0x5a, frame_number, 0xa5];
        if mask {
            frame.extend_from_slice(&key);
        }
        let body_len = length.min(512) as usize;
        frame.extend((0..body_len).map(|i| (i as u8).wrapping_mul(7) ^ frame_number ^ key[i % 4]));
        if let Some(cut) = cut {
            frame.truncate(cut.min(frame.len()));
            out.extend_from_slice(&frame);
            break;
        }
        out.extend_from_slice(&frame);
        if length > 512 && length != body_len as u64 {
            break; // the declared payload runs past the end of the stream
        }
    }
    out
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut reader = Reader::new(data);
    let header = reader.u8();
    let masked = header & 1 != 0;
    let extensions = header & 2 != 0;
    let lengths = piece_lengths(&mut reader, usize::from((header >> 3) & 0x0f));
    let payload = reader.rest();
    let generated;
    let stream = if header & 4 != 0 {
        generated = generate(payload, masked);
        &generated[..]
    } else {
        payload
    };
    let limit = data.last().map_or(NO_MESSAGE_LIMIT, |&b| u64::from(b) * 8);
    for max_message in [NO_MESSAGE_LIMIT, limit] {
        check_pieces(stream, &[stream], masked, extensions, max_message);
        if !lengths.is_empty() {
            let pieces = split(stream, &lengths);
            check_pieces(stream, &pieces, masked, extensions, max_message);
        }
        if header & 0x80 != 0 && stream.len() <= 1024 {
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            check_pieces(stream, &bytes, masked, extensions, max_message);
        }
    }
}
