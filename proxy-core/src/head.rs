//! Collecting a message head (start-line + fields) from a byte stream split anywhere.
//!
//! RFC 9112 §2.2: a head is lines ended by CRLF, then an empty line. A recipient MAY
//! accept a bare LF as a line end; a proxy that does so while the upstream does not
//! invites desynchronisation, so a bare LF anywhere in a head is an error here.

use bytes::{Bytes, BytesMut};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Why a head could not be collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// More than `max_head_size` bytes without the empty line. `start_line_open` says
    /// whether the start-line itself was unfinished (for a request, then a 414).
    TooLarge { start_line_open: bool },
    /// A LF not preceded by CR.
    BareLineFeed,
    /// A request that does not begin with a method token.
    NotAMethod,
}

/// Accumulates bytes until the end of a head; holds nothing once it is idle.
#[derive(Debug, Default)]
pub(crate) struct HeadReader {
    buf: BytesMut,
    /// Bytes of `buf` already scanned for line ends.
    scanned: usize,
    /// Whether empty lines before the start-line are skipped (requests, RFC 9112 §2.2).
    skip_leading_empty_lines: bool,
}

impl HeadReader {
    pub(crate) fn for_requests() -> Self {
        HeadReader {
            skip_leading_empty_lines: true,
            ..Default::default()
        }
    }

    pub(crate) fn for_responses() -> Self {
        HeadReader::default()
    }

    /// Bytes held for an incomplete head.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes from `input`. Returns the whole head (ending with the empty line)
    /// once complete, leaving what follows it in `input`. The result does not depend on
    /// how the bytes were split across calls.
    pub(crate) fn read(
        &mut self,
        input: &mut Bytes,
        max_head_size: usize,
    ) -> Result<Option<Bytes>, HeadError> {
        let requests = self.skip_leading_empty_lines;
        if self.buf.is_empty() {
            if requests {
                while input.starts_with(b"\r\n") {
                    let _ = input.split_to(2);
                }
            }
            // Fast path: the whole head is in this read; slice it out without copying.
            if !(requests && input.as_ref() == b"\r") {
                // Look no further than the buffered path could hold, so that the
                // verdict does not depend on how the bytes were split.
                let window = &input[..input.len().min(max_head_size.saturating_add(1))];
                if requests && !starts_like_a_method(window) {
                    return Err(HeadError::NotAMethod);
                }
                match scan(window, 0, max_head_size) {
                    Scan::Complete(end) => return Ok(Some(input.split_to(end))),
                    Scan::Error(e) => return Err(e),
                    Scan::Incomplete => {}
                }
            }
        }
        let room = max_head_size
            .saturating_add(1)
            .saturating_sub(self.buf.len());
        let take = input.len().min(room);
        self.buf.extend_from_slice(&input[..take]);
        let _ = input.split_to(take);
        if requests {
            // An empty line split as "\r" | "\n" before the request-line.
            while self.buf.starts_with(b"\r\n") {
                let _ = self.buf.split_to(2);
                self.scanned = 0;
            }
            if self.buf.as_ref() != b"\r" && !starts_like_a_method(&self.buf) {
                return Err(HeadError::NotAMethod);
            }
        }
        match scan(&self.buf, self.scanned.saturating_sub(3), max_head_size) {
            Scan::Complete(end) => {
                let head = self.buf.split_to(end).freeze();
                // Give back what followed the head, ahead of what is still unread.
                let rest = std::mem::take(&mut self.buf).freeze();
                if !rest.is_empty() {
                    let mut joined = BytesMut::with_capacity(rest.len() + input.len());
                    joined.extend_from_slice(&rest);
                    joined.extend_from_slice(input);
                    *input = joined.freeze();
                }
                self.scanned = 0;
                Ok(Some(head))
            }
            Scan::Incomplete => {
                self.scanned = self.buf.len();
                Ok(None)
            }
            Scan::Error(e) => Err(e),
        }
    }
}

/// Whether bytes could still begin `method SP` (a token; RFC 9112 §3.1), so that
/// garbage is refused at once rather than at the head timeout.
fn starts_like_a_method(bytes: &[u8]) -> bool {
    let method = bytes.split(|&b| b == b' ').next().unwrap_or_default();
    method.is_empty() || is_token(method)
}

enum Scan {
    Complete(usize),
    Incomplete,
    Error(HeadError),
}

/// Looks for the empty line from `from` on, checking every LF has its CR.
fn scan(buf: &[u8], from: usize, max_head_size: usize) -> Scan {
    let mut i = from;
    while let Some(offset) = buf[i..].iter().position(|&b| b == b'\n') {
        let lf = i + offset;
        if lf == 0 || buf[lf - 1] != b'\r' {
            return Scan::Error(HeadError::BareLineFeed);
        }
        if lf >= 3 && &buf[lf - 3..=lf] == b"\r\n\r\n" {
            let end = lf + 1;
            if end > max_head_size {
                return Scan::Error(too_large(buf));
            }
            return Scan::Complete(end);
        }
        i = lf + 1;
    }
    if buf.len() > max_head_size {
        return Scan::Error(too_large(buf));
    }
    Scan::Incomplete
}

fn too_large(buf: &[u8]) -> HeadError {
    HeadError::TooLarge {
        start_line_open: !buf.contains(&b'\n'),
    }
}

/// One field line of a parsed head, as byte ranges into the head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldRange {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// A complete head with its fields located; names and values are read from `bytes`.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    pub(crate) bytes: Bytes,
    pub(crate) ranges: Vec<FieldRange>,
}

impl Fields {
    /// Locates httparse's borrowed fields inside `bytes`.
    pub(crate) fn locate(bytes: Bytes, headers: &[httparse::Header<'_>]) -> Fields {
        let base = bytes.as_ptr() as usize;
        let range = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        let ranges = headers
            .iter()
            .map(|h| FieldRange {
                name: range(h.name.as_bytes()),
                value: range(trim_ows(h.value)),
            })
            .collect();
        Fields { bytes, ranges }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.ranges
            .iter()
            .map(move |r| (&self.bytes[r.name.clone()], &self.bytes[r.value.clone()]))
    }

    /// Values of every field with this (lowercase) name.
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Comma-separated list elements of every field with this name (RFC 9110 §5.6.1),
    /// trimmed, empty elements skipped.
    pub(crate) fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim_ows)
            .filter(|e| !e.is_empty())
    }

    /// Whether any list element of field `name` equals `token`, ignoring case.
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// Strips optional whitespace (SP / HTAB) at both ends (RFC 9110 §5.6.3).
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether `b` may appear in a field value (RFC 9110 §5.5: VCHAR, obs-text, SP, HTAB).
/// Up to this many headers are parsed into room on the stack: a head costs no
/// allocation, and nothing is zeroed first.
const STACK_HEADERS: usize = 128;

/// Uninitialised room on the stack for the headers httparse parses.
pub(crate) type HeaderRoom<'b> = [MaybeUninit<httparse::Header<'b>>; STACK_HEADERS];

/// An empty [`HeaderRoom`].
pub(crate) fn header_room<'b>() -> HeaderRoom<'b> {
    [MaybeUninit::uninit(); STACK_HEADERS]
}

/// `n` headers' worth of `stack`, or of `heap` if `n` is over [`STACK_HEADERS`].
pub(crate) fn headers_up_to<'a, 'b>(
    stack: &'a mut HeaderRoom<'b>,
    heap: &'a mut Vec<MaybeUninit<httparse::Header<'b>>>,
    n: usize,
) -> &'a mut [MaybeUninit<httparse::Header<'b>>] {
    match stack.get_mut(..n) {
        Some(room) => room,
        None => {
            heap.resize(n, MaybeUninit::uninit());
            heap
        }
    }
}

pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Whether `s` is a non-empty token (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
