//! Invariant: `ChunkedDecoder` fed in any split agrees with the reference model step for step (same chunks and data, an error at the same byte, the same end and leftover), valid encodings decode to their body, and the proxy's re-encoding of what it decoded is valid and carries the same body.
//!
//! Input: `header`, then `(header >> 1) & 0x0f` piece lengths (one byte each), then
//! the payload. `header & 1` = 0: the payload is the encoded body itself (arbitrary
//! bytes). `header & 1` = 1: the payload drives a generator of valid encodings (sizes
//! in any case with leading zeros, extensions, trailers, then bytes of a next message)
//! whose body must come out intact.

use bytes::Bytes;
use proxy_core::chunked::{encode_chunk_start, Chunk, ChunkedDecoder, CHUNK_END, LAST_CHUNK};

use crate::http::{
    body_of, chunked_model, is_tchar, push_event, ChunkEnd, ChunkEvent, ChunkModel,
};
use crate::input::{piece_lengths, show, split, Reader};

/// What the decoder under test did with some pieces.
#[derive(Debug)]
pub struct Decoded {
    /// Steps, adjacent data joined.
    pub events: Vec<ChunkEvent>,
    /// How it ended, in the model's terms.
    pub end: ChunkEnd,
    /// Bytes left untouched after the last chunk (rest of that piece and later pieces).
    pub leftover: Vec<u8>,
}

/// Feeds `pieces` to a fresh decoder, checking the decoder's own contract on the way
/// (data is a slice of the input, `None` means the input is used up or the body
/// ended, nothing is consumed once done).
pub fn decode_pieces(pieces: &[&[u8]]) -> Decoded {
    let mut decoder = ChunkedDecoder::new();
    let mut events = Vec::new();
    let mut offset = 0usize;
    let mut done_at = None;
    let mut leftover = Vec::new();
    for piece in pieces {
        let mut input = Bytes::copy_from_slice(piece);
        let base = input.as_ptr() as usize;
        if done_at.is_some() {
            assert!(
                matches!(decoder.decode(&mut input), Ok(None)),
                "decoder produced a step after Last"
            );
            assert_eq!(
                input.len(),
                piece.len(),
                "decoder consumed bytes after Last"
            );
            leftover.extend_from_slice(piece);
            continue;
        }
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(step)) => {
                    let event = match step {
                        Chunk::Start(n) => {
                            assert!(n > 0, "Chunk::Start(0)");
                            ChunkEvent::Start(n)
                        }
                        Chunk::Data(data) => {
                            assert!(!data.is_empty(), "empty Chunk::Data");
                            let start = data.as_ptr() as usize;
                            assert!(
                                start >= base && start + data.len() <= base + piece.len(),
                                "Chunk::Data is not a slice of the input"
                            );
                            ChunkEvent::Data(data.to_vec())
                        }
                        Chunk::End => ChunkEvent::End,
                        Chunk::Last => ChunkEvent::Last,
                    };
                    push_event(&mut events, event);
                }
                Ok(None) => {
                    if decoder.is_done() {
                        done_at = Some(offset + piece.len() - input.len());
                        leftover.extend_from_slice(&input);
                    } else {
                        assert!(
                            input.is_empty(),
                            "decode returned None with input left and the body not done"
                        );
                    }
                    break;
                }
                Err(_) => {
                    let at = offset + piece.len() - input.len() - 1;
                    return Decoded {
                        events,
                        end: ChunkEnd::Error { at },
                        leftover,
                    };
                }
            }
        }
        assert_eq!(
            decoder.is_done(),
            events.last() == Some(&ChunkEvent::Last),
            "is_done disagrees with the steps produced"
        );
        offset += piece.len();
    }
    let end = match done_at {
        Some(consumed) => ChunkEnd::Done { consumed },
        None => ChunkEnd::Incomplete,
    };
    Decoded {
        events,
        end,
        leftover,
    }
}

/// The decoder against the model on `bytes` cut into `pieces`.
pub fn compare(bytes: &[u8], pieces: &[&[u8]]) -> ChunkModel {
    let model = chunked_model(bytes);
    let got = decode_pieces(pieces);
    let context = || {
        format!(
            "input {}\n pieces {:?}\n model: {:?} {:?}\n decoder: {:?} {:?}",
            show(bytes),
            pieces.iter().map(|p| show(p)).collect::<Vec<_>>(),
            model.end,
            model.events,
            got.end,
            got.events
        )
    };
    assert_eq!(
        got.end,
        model.end,
        "decoder and model end differently\n {}",
        context()
    );
    assert_eq!(
        got.events,
        model.events,
        "decoder and model produce different steps\n {}",
        context()
    );
    if let ChunkEnd::Done { consumed } = model.end {
        assert_eq!(
            got.leftover,
            &bytes[consumed..],
            "bytes after the body were not left untouched\n {}",
            context()
        );
    }
    model
}

/// What the proxy forwards for decoded steps (`framing::BodyReader` with re-encoding).
pub fn reencode(events: &[ChunkEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        match event {
            ChunkEvent::Start(n) => out.extend_from_slice(&encode_chunk_start(*n)),
            ChunkEvent::Data(d) => out.extend_from_slice(d),
            ChunkEvent::End => out.extend_from_slice(&CHUNK_END),
            ChunkEvent::Last => out.extend_from_slice(&LAST_CHUNK),
        }
    }
    out
}

/// Re-encoding what was decoded must give a valid encoding, no longer than the
/// original, with the same chunks (so the same body), and nothing after its end.
fn check_reencoding(model: &ChunkModel, original_len: usize) {
    let encoded = reencode(&model.events);
    let again = chunked_model(&encoded);
    match (model.end, again.end) {
        (ChunkEnd::Done { consumed }, ChunkEnd::Done { consumed: n }) => {
            assert_eq!(n, encoded.len(), "re-encoding has bytes after its end");
            assert!(
                n <= consumed,
                "re-encoding grew the body: {} > {consumed}",
                n
            );
        }
        (ChunkEnd::Done { .. }, other) => panic!(
            "re-encoding of a complete body ended {other:?}: {}",
            show(&encoded)
        ),
        (_, ChunkEnd::Error { at }) => {
            panic!("re-encoding is invalid at byte {at}: {}", show(&encoded))
        }
        _ => {}
    }
    if !matches!(again.end, ChunkEnd::Error { .. }) {
        assert_eq!(
            again.events,
            model.events,
            "re-encoding decodes to other steps: {}",
            show(&encoded)
        );
    }
    assert!(
        encoded.len() <= original_len + 2,
        "re-encoding grew the stream"
    );
}

/// A valid encoding generated from `reader`: (bytes, body, chunk sizes, its length).
pub fn generate(reader: &mut Reader<'_>) -> (Vec<u8>, Vec<u8>, Vec<u64>, usize) {
    let mut out = Vec::new();
    let mut body = Vec::new();
    let mut sizes = Vec::new();
    let chunks = reader.u8() % 8;
    let hex = |n: u64, style: u8| -> String {
        let digits = if style & 1 == 0 {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        "0".repeat(usize::from((style >> 1) % 4)) + &digits
    };
    // 0 to 3 extensions: `;` [blanks] name [ [blanks] `=` [blanks] token-or-quoted ].
    let extension = |reader: &mut Reader<'_>, out: &mut Vec<u8>| {
        let blanks = |reader: &mut Reader<'_>, out: &mut Vec<u8>| {
            for _ in 0..(reader.u8() % 3) {
                out.push(if reader.u8() & 1 == 0 { b' ' } else { b'\t' });
            }
        };
        let token = |reader: &mut Reader<'_>, out: &mut Vec<u8>| {
            for _ in 0..=(reader.u8() % 8) {
                let b = reader.u8();
                out.push(if is_tchar(b) { b } else { b'e' });
            }
        };
        for _ in 0..(reader.u8() % 4) {
            out.push(b';');
            blanks(reader, out);
            token(reader, out);
            // A name alone, `= token`, or `= "quoted"`.
            let shape = reader.u8() % 3;
            if shape == 0 {
                continue;
            }
            blanks(reader, out);
            out.push(b'=');
            blanks(reader, out);
            if shape == 1 {
                token(reader, out);
                continue;
            }
            out.push(b'"');
            for _ in 0..(reader.u8() % 12) {
                match reader.u8() {
                    b @ (b'"' | b'\\') => out.extend_from_slice(&[b'\\', b]),
                    b if b == b'\t' || (b >= 0x20 && b != 0x7f) => out.push(b),
                    _ => out.push(b'q'),
                }
            }
            out.push(b'"');
        }
    };
    for _ in 0..chunks {
        let size = 1 + u64::from(reader.u16() % 600);
        let style = reader.u8();
        out.extend_from_slice(hex(size, style).as_bytes());
        extension(reader, &mut out);
        out.extend_from_slice(b"\r\n");
        let data: Vec<u8> = (0..size)
            .map(|i| reader.u8().wrapping_add(i as u8))
            .collect();
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
        sizes.push(size);
    }
    let style = reader.u8();
    out.extend_from_slice(hex(0, style).as_bytes());
    extension(reader, &mut out);
    out.extend_from_slice(b"\r\n");
    for i in 0..(reader.u8() % 4) {
        out.extend_from_slice(format!("X-Trailer-{i}: ").as_bytes());
        for _ in 0..(reader.u8() % 16) {
            let b = reader.u8();
            out.push(if b >= 0x20 && b != 0x7f { b } else { b'v' });
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let len = out.len();
    out.extend_from_slice(reader.rest()); // the next message, left untouched
    (out, body, sizes, len)
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut reader = Reader::new(data);
    let header = reader.u8();
    let lengths = piece_lengths(&mut reader, usize::from((header >> 1) & 0x0f));
    if header & 1 == 0 {
        let bytes = reader.rest();
        let model = compare(bytes, &[bytes]);
        compare(bytes, &split(bytes, &lengths));
        check_reencoding(&model, bytes.len());
    } else {
        let (bytes, body, sizes, len) = generate(&mut reader);
        let model = compare(&bytes, &split(&bytes, &lengths));
        assert_eq!(
            model.end,
            ChunkEnd::Done { consumed: len },
            "a valid encoding did not decode: {}",
            show(&bytes)
        );
        assert_eq!(body_of(&model.events), body, "the body changed");
        let starts: Vec<u64> = model
            .events
            .iter()
            .filter_map(|e| {
                if let ChunkEvent::Start(n) = e {
                    Some(*n)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(starts, sizes, "chunk sizes changed");
        compare(&bytes, &[&bytes]);
        check_reencoding(&model, len);
    }
}
