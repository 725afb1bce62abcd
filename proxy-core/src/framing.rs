//! Message body length (RFC 9112 §6): how the end of each body is found, and how the
//! proxy carries the body on.
//!
//! The decision is made once per message from its head, strictly: anything ambiguous
//! is an error, because an intermediary that guesses differently from the next hop is
//! how request smuggling works.

use bytes::Bytes;

use crate::chunked::{self, Chunk, ChunkedDecoder};
use crate::error::ProxyError;
use crate::field_name::FieldName;
use crate::head::Fields;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (also `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes (responses only).
    UntilClose,
}

/// Transfer codings a message may carry (RFC 9110 §8.4.1, RFC 9112 §7). Any other name
/// is refused both ways: it is most often `chunked` misspelt to be read two ways
/// (`chunk`, `ch1unked`), and a peer could not decode it anyway.
const KNOWN_CODINGS: [&str; 6] = [
    "chunked",
    "gzip",
    "x-gzip",
    "deflate",
    "compress",
    "x-compress",
];

/// The framing of a request, RFC 9112 §6.1–§6.3, with no leniency:
/// `Transfer-Encoding` must end in a single `chunked` and name only known codings,
/// must not come with `Content-Length` or in HTTP/1.0; `Content-Length` values must be
/// decimal and agree.
pub(crate) fn request_body(fields: &Fields, http10: bool) -> Result<BodyKind, ProxyError> {
    let has_te = fields.has(FieldName::TransferEncoding);
    let length = content_length(fields)?;
    if has_te {
        if http10 {
            return Err(ProxyError::TransferEncodingInHttp10);
        }
        if length.is_some() {
            return Err(ProxyError::ContentLengthWithTransferEncoding);
        }
        let mut codings = 0;
        for coding in fields.list(FieldName::TransferEncoding) {
            if !is_known_coding(coding) {
                return Err(ProxyError::UnknownTransferCoding);
            }
            codings += 1;
        }
        return match chunked_position(fields) {
            Some(position) if position + 1 == codings && count_chunked(fields) == 1 => {
                Ok(BodyKind::Chunked)
            }
            _ => Err(ProxyError::ChunkedNotFinal),
        };
    }
    Ok(match length {
        None | Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
    })
}

/// Whether `coding` is one of `KNOWN_CODINGS`, in any case.
fn is_known_coding(coding: &[u8]) -> bool {
    KNOWN_CODINGS
        .iter()
        .any(|known| coding.eq_ignore_ascii_case(known.as_bytes()))
}

/// The framing of a response, RFC 9112 §6.3: no body after HEAD, for 1xx, 204 and 304;
/// else a final `chunked`, else `Content-Length`, else until the upstream closes.
/// Contradictory fields are an error (the proxy does not pick a winner), and so are an
/// unknown or missing transfer coding and `Transfer-Encoding` in HTTP/1.0, as in a
/// request (§6.1: its sender knows no transfer codings, so part of what follows may be
/// another message; §6.3: a proxy answers faulty response framing with 502).
pub(crate) fn response_body(
    fields: &Fields,
    status: u16,
    http10: bool,
    request_was_head: bool,
) -> Result<BodyKind, ProxyError> {
    let has_te = fields.has(FieldName::TransferEncoding);
    if has_te && http10 {
        return Err(ProxyError::InvalidResponseFraming);
    }
    let length = content_length(fields).map_err(|_| ProxyError::InvalidResponseFraming)?;
    // The framing fields are checked even when the status says there is no body: the
    // client gets them forwarded and must not see a contradiction (RFC 9112 §6.2).
    let chunked = if has_te {
        if length.is_some()
            || fields
                .list(FieldName::TransferEncoding)
                .any(|c| !is_known_coding(c))
            || count_chunked(fields) > 1
        {
            return Err(ProxyError::InvalidResponseFraming);
        }
        let codings = fields.list(FieldName::TransferEncoding).count();
        match chunked_position(fields) {
            Some(position) if position + 1 == codings => true,
            // Chunked, but not last.
            Some(_) => return Err(ProxyError::InvalidResponseFraming),
            // A field with no coding in it, which readers take as no field or refuse.
            None if codings == 0 => return Err(ProxyError::InvalidResponseFraming),
            None => false,
        }
    } else {
        false
    };
    if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyKind::Empty);
    }
    if has_te {
        return Ok(if chunked {
            BodyKind::Chunked
        } else {
            BodyKind::UntilClose
        });
    }
    Ok(match length {
        Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
        None => BodyKind::UntilClose,
    })
}

fn chunked_position(fields: &Fields) -> Option<usize> {
    fields
        .list(FieldName::TransferEncoding)
        .position(|c| c.eq_ignore_ascii_case(b"chunked"))
}

fn count_chunked(fields: &Fields) -> usize {
    fields
        .list(FieldName::TransferEncoding)
        .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
        .count()
}

/// The value of `Content-Length`, if any: every field and list element must be
/// `1*DIGIT`, fit 64 bits, and all must be equal (RFC 9112 §6.3 rule 5).
pub(crate) fn content_length(fields: &Fields) -> Result<Option<u64>, ProxyError> {
    let mut found = None;
    for value in fields.values(FieldName::ContentLength) {
        for element in value.split(|&b| b == b',') {
            let element = crate::head::trim_ows(element);
            let n = parse_decimal(element).ok_or(ProxyError::InvalidContentLength)?;
            match found {
                Some(previous) if previous != n => {
                    return Err(ProxyError::ConflictingContentLength)
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// The largest body length or chunk size accepted: what a signed 64-bit integer holds.
/// A larger one, though valid HTTP, would be read differently by a server that parses
/// it into an `i64` (or wraps it), which is the disagreement smuggling lives on.
pub(crate) const MAX_LENGTH: u64 = i64::MAX as u64;

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .filter(|&n| n <= MAX_LENGTH)
}

/// Reads one body off a byte stream and produces what to forward.
///
/// Length-delimited and close-delimited bodies are forwarded as the same `Bytes`
/// slices that were read. Chunked bodies are decoded and re-encoded with the same
/// chunk sizes (or, towards an HTTP/1.0 client, sent as plain data).
#[derive(Clone, Debug)]
pub(crate) enum BodyReader {
    Length(u64),
    Chunked {
        decoder: ChunkedDecoder,
        reencode: bool,
        /// Most payload bytes allowed (`u64::MAX`: no limit): a chunk that would go
        /// past it is an error before any of it is forwarded.
        limit: u64,
    },
    UntilClose,
    Done,
}

impl BodyReader {
    pub(crate) fn new(kind: BodyKind, reencode_chunked: bool) -> Self {
        match kind {
            BodyKind::Empty | BodyKind::Length(0) => BodyReader::Done,
            BodyKind::Length(n) => BodyReader::Length(n),
            BodyKind::Chunked => BodyReader::Chunked {
                decoder: ChunkedDecoder::new(),
                reencode: reencode_chunked,
                limit: u64::MAX,
            },
            BodyKind::UntilClose => BodyReader::UntilClose,
        }
    }

    /// The reader of a request body of at most `max` bytes (0: no limit): a longer
    /// `Content-Length` is refused here, a chunked body once a chunk would cross it
    /// ([`ProxyError::RequestBodyTooLarge`] either way).
    pub(crate) fn request(kind: BodyKind, max: u64) -> Result<Self, ProxyError> {
        let max = if max == 0 { u64::MAX } else { max };
        if matches!(kind, BodyKind::Length(n) if n > max) {
            return Err(ProxyError::RequestBodyTooLarge);
        }
        let mut reader = BodyReader::new(kind, true);
        if let BodyReader::Chunked { limit, .. } = &mut reader {
            *limit = max;
        }
        Ok(reader)
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// Takes body bytes from the front of `input`, calling `forward` with each piece
    /// to send on and adding the payload bytes carried to `payload` (also when an
    /// error stops it part way, so the count does not depend on read splits). Bytes
    /// after the body's end stay in `input`.
    pub(crate) fn read(
        &mut self,
        input: &mut Bytes,
        payload: &mut u64,
        mut forward: impl FnMut(Bytes),
    ) -> Result<(), ProxyError> {
        match self {
            BodyReader::Length(remaining) => {
                let take = (*remaining).min(input.len() as u64);
                if take > 0 {
                    forward(input.split_to(take as usize));
                }
                *remaining -= take;
                *payload += take;
                if *remaining == 0 {
                    *self = BodyReader::Done;
                }
            }
            BodyReader::UntilClose => {
                if !input.is_empty() {
                    *payload += input.len() as u64;
                    forward(std::mem::take(input));
                }
            }
            BodyReader::Chunked {
                decoder,
                reencode,
                limit,
            } => {
                while let Some(step) = decoder.decode(input)? {
                    match step {
                        Chunk::Start(size) if size > limit.saturating_sub(*payload) => {
                            return Err(ProxyError::RequestBodyTooLarge)
                        }
                        Chunk::Start(size) if *reencode => {
                            forward(chunked::encode_chunk_start(size))
                        }
                        Chunk::Data(data) => {
                            *payload += data.len() as u64;
                            forward(data);
                        }
                        Chunk::End if *reencode => forward(chunked::CHUNK_END),
                        Chunk::Last => {
                            if *reencode {
                                forward(chunked::LAST_CHUNK);
                            }
                            *self = BodyReader::Done;
                            break;
                        }
                        Chunk::Start(_) | Chunk::End => {}
                    }
                }
            }
            BodyReader::Done => {}
        }
        Ok(())
    }

    /// How many of the next bytes are body bytes that go on exactly as they came:
    /// the rest of a `Content-Length` body, or all of a close-delimited one. A chunked
    /// body is decoded and encoded again, so none of it can pass unseen.
    pub(crate) fn verbatim_ahead(&self) -> u64 {
        match self {
            BodyReader::Length(remaining) => *remaining,
            BodyReader::UntilClose => u64::MAX,
            BodyReader::Chunked { .. } | BodyReader::Done => 0,
        }
    }

    /// `n` body bytes went on unseen (at most [`verbatim_ahead`](Self::verbatim_ahead)):
    /// counted in `payload`, and the body is done when a length runs out.
    pub(crate) fn passed(&mut self, n: u64, payload: &mut u64) {
        let n = n.min(self.verbatim_ahead());
        *payload += n;
        if let BodyReader::Length(remaining) = self {
            *remaining -= n;
            if *remaining == 0 {
                *self = BodyReader::Done;
            }
        }
    }

    /// The peer closed: a close-delimited body is complete, any other is truncated.
    pub(crate) fn finish_at_eof(&mut self) -> bool {
        match self {
            BodyReader::UntilClose | BodyReader::Done => {
                *self = BodyReader::Done;
                true
            }
            _ => false,
        }
    }
}
