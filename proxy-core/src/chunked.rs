//! The chunked transfer coding (RFC 9112 §7.1), decoded as a stream.
//!
//! The proxy never forwards a chunked body as it came: it decodes it strictly and
//! writes a fresh encoding (same chunk sizes, no extensions, no trailers). Whatever
//! leniency a peer relies on therefore never reaches the other side.
//!
//! Strictness, each rule an error rather than a guess:
//! - chunk-size is `1*HEXDIG`, at most 16 digits of value (64 bits);
//! - after the size only `;` (an extension) or CRLF; no whitespace (BWS is a known
//!   smuggling lever, so it is refused);
//! - chunk data is followed by CRLF exactly;
//! - an extension is `";" BWS name [ BWS "=" BWS value ]`, the name a token and the
//!   value a token or a quoted-string (RFC 9112 §7.1.1): a bare `;`, a name with a
//!   `@` in it or an unclosed quote is an error, not a byte run skipped to the CR
//!   (readers that skip differently disagree on where the size line ends);
//! - every line ends with CRLF, never a bare LF; no control characters in extensions
//!   or trailers; extensions and trailers are bounded in size;
//! - a trailer line is a field line, `token ":" value` (RFC 9112 §7.1.2, §5): no
//!   line without a colon, no whitespace before it, no obs-fold.
//!
//! Trailer fields are checked for syntax and dropped (RFC 9110 §6.5.1 lets a recipient
//! that removes the chunked coding discard them; merging them is how trailers smuggle).

use bytes::Bytes;

use crate::error::ProxyError;
use crate::head::{is_ows, is_tchar};

/// Longest chunk extension, and largest trailer section, accepted.
const MAX_METADATA: usize = 16 * 1024;

/// One step of a decoded chunked body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// A data chunk of this many bytes starts (never 0).
    Start(u64),
    /// Data of the current chunk: a slice of the input, not a copy.
    Data(Bytes),
    /// The current chunk's data ended (its CRLF was read).
    End,
    /// The last chunk and the trailer section were read: the body is complete.
    Last,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size { digits: u8, value: u64 },
    Extension { value: u64, at: Ext },
    SizeLf { value: u64 },
    Data { remaining: u64 },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    LastLf,
    Done,
}

/// Where in a chunk extension (RFC 9112 §7.1.1) the decoder is:
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// After `;`: whitespace, then the name.
    BeforeName,
    /// In the name (a token).
    Name,
    /// Whitespace after the name: `=` or `;` must follow.
    AfterName,
    /// After `=`: whitespace, then the value.
    BeforeValue,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    QuotedPair,
    /// Right after a quoted-string's closing quote.
    Closed,
    /// Whitespace after the value: `;` must follow.
    AfterValue,
}

/// Streaming, allocation-free chunked decoder.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    metadata: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size {
                digits: 0,
                value: 0,
            },
            metadata: 0,
        }
    }

    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes from the front of `input` and returns the next step, or `None`
    /// when `input` is used up. After [`Chunk::Last`], bytes of the next message are
    /// left in `input` untouched.
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<Chunk>, ProxyError> {
        while !input.is_empty() {
            if let State::Data { remaining } = self.state {
                let take = remaining.min(input.len() as u64) as usize;
                let data = input.split_to(take);
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                return Ok(Some(Chunk::Data(data)));
            }
            if self.state == State::Done {
                return Ok(None);
            }
            let byte = input[0];
            let _ = input.split_to(1);
            if let Some(chunk) = self.step(byte)? {
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }

    /// One control byte (anything outside chunk data).
    fn step(&mut self, byte: u8) -> Result<Option<Chunk>, ProxyError> {
        use State::*;
        match self.state {
            Size { digits, value } => match (byte as char).to_digit(16) {
                Some(d) => {
                    let value = value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(u64::from(d)))
                        .filter(|&v| v <= crate::framing::MAX_LENGTH)
                        .ok_or(ProxyError::ChunkSizeOverflow)?;
                    self.state = Size {
                        digits: digits.saturating_add(1),
                        value,
                    };
                }
                None if digits > 0 && byte == b';' => {
                    self.state = Extension {
                        value,
                        at: Ext::BeforeName,
                    }
                }
                None if digits > 0 && byte == b'\r' => self.state = SizeLf { value },
                None => return Err(ProxyError::InvalidChunkSize),
            },
            Extension { value, at } => {
                if byte == b'\r' && matches!(at, Ext::Name | Ext::Token | Ext::Closed) {
                    self.state = SizeLf { value };
                    return Ok(None);
                }
                self.count_metadata()?;
                let at = extension_step(at, byte).ok_or(ProxyError::InvalidChunkMetadata)?;
                self.state = Extension { value, at };
            }
            SizeLf { value } => {
                if byte != b'\n' {
                    return Err(ProxyError::InvalidChunkSize);
                }
                self.metadata = 0;
                if value == 0 {
                    self.state = TrailerLineStart;
                } else {
                    self.state = Data { remaining: value };
                    return Ok(Some(Chunk::Start(value)));
                }
            }
            DataCr if byte == b'\r' => self.state = DataLf,
            DataLf if byte == b'\n' => {
                self.state = Size {
                    digits: 0,
                    value: 0,
                };
                return Ok(Some(Chunk::End));
            }
            DataCr | DataLf => return Err(ProxyError::MissingChunkDataCrlf),
            TrailerLineStart if byte == b'\r' => self.state = LastLf,
            TrailerLineStart | TrailerName if is_tchar(byte) => {
                self.count_metadata()?;
                self.state = TrailerName;
            }
            TrailerName if byte == b':' => {
                self.count_metadata()?;
                self.state = TrailerValue;
            }
            TrailerValue if byte == b'\r' => self.state = TrailerLf,
            TrailerValue if is_metadata_byte(byte) => self.count_metadata()?,
            TrailerLineStart | TrailerName | TrailerValue => {
                return Err(ProxyError::InvalidChunkMetadata)
            }
            TrailerLf if byte == b'\n' => self.state = TrailerLineStart,
            LastLf if byte == b'\n' => {
                self.state = Done;
                return Ok(Some(Chunk::Last));
            }
            TrailerLf | LastLf => return Err(ProxyError::InvalidChunkMetadata),
            // `decode` handles data and the end itself; nothing to do here.
            Data { .. } | Done => {}
        }
        Ok(None)
    }

    fn count_metadata(&mut self) -> Result<(), ProxyError> {
        self.metadata += 1;
        if self.metadata > MAX_METADATA {
            return Err(ProxyError::InvalidChunkMetadata);
        }
        Ok(())
    }
}

/// The extension state after `byte`, or `None` where the grammar has no place for it.
/// A CR that ends the line is handled by the caller.
fn extension_step(at: Ext, byte: u8) -> Option<Ext> {
    let blank = is_ows(byte);
    Some(match at {
        Ext::BeforeName | Ext::Name if is_tchar(byte) => Ext::Name,
        Ext::BeforeName if blank => Ext::BeforeName,
        Ext::Name | Ext::AfterName if blank => Ext::AfterName,
        Ext::Name | Ext::AfterName if byte == b'=' => Ext::BeforeValue,
        Ext::BeforeValue if blank => Ext::BeforeValue,
        Ext::BeforeValue if byte == b'"' => Ext::Quoted,
        Ext::BeforeValue | Ext::Token if is_tchar(byte) => Ext::Token,
        Ext::Quoted if byte == b'"' => Ext::Closed,
        Ext::Quoted if byte == b'\\' => Ext::QuotedPair,
        // qdtext and quoted-pair: HTAB, SP, visible ASCII, obs-text.
        Ext::Quoted | Ext::QuotedPair if is_metadata_byte(byte) => Ext::Quoted,
        Ext::Token | Ext::Closed | Ext::AfterValue if blank => Ext::AfterValue,
        Ext::Name | Ext::AfterName | Ext::Token | Ext::Closed | Ext::AfterValue if byte == b';' => {
            Ext::BeforeName
        }
        _ => return None,
    })
}

/// Bytes allowed in extensions and trailer lines: no controls but HTAB.
fn is_metadata_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Writes the size line that starts a data chunk of `size` bytes.
pub fn encode_chunk_start(size: u64) -> Bytes {
    Bytes::from(format!("{size:x}\r\n"))
}

/// The CRLF that ends a chunk's data.
pub const CHUNK_END: Bytes = Bytes::from_static(b"\r\n");

/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: Bytes = Bytes::from_static(b"0\r\n\r\n");
