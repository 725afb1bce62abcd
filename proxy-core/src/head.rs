//! Collecting a message head (start-line + fields) from a byte stream split anywhere.
//!
//! RFC 9112 §2.2: a head is lines ended by CRLF, then an empty line. A recipient MAY
//! accept a bare LF as a line end; a proxy that does so while the upstream does not
//! invites desynchronisation, so a bare LF anywhere in a head is an error here.

use bytes::{Bytes, BytesMut};
use std::mem::MaybeUninit;
use std::ops::Range;

use crate::field_name::FieldName;
use crate::hop_by_hop::ConnectionOptions;

/// The part of a head still open when it ran past `max_head_size`: a request gets a
/// different status for each (501, 414, 431).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// The first token (a request's method): no SP yet.
    FirstToken,
    /// The rest of the start-line (a request's target): no LF yet.
    StartLine,
    /// The fields.
    Fields,
}

/// Why a head could not be collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// More than `max_head_size` bytes without the empty line; what was still open.
    TooLarge(Overflow),
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

/// Looks for the empty line from `from` on, checking every LF has its CR; eight
/// bytes at a time, as a head is mostly long lines.
fn scan(buf: &[u8], from: usize, max_head_size: usize) -> Scan {
    let rest = buf.get(from..).unwrap_or_default();
    let mut words = rest.chunks_exact(8);
    let mut offset = from;
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let x = word ^ splat(b'\n');
        // Nonzero exactly when some byte is a LF (its bits may be inexact).
        if x.wrapping_sub(splat(0x01)) & !x & splat(0x80) != 0 {
            // A byte's high bit ends up clear only if it is zero.
            let mut lfs = !(((x & splat(0x7f)) + splat(0x7f)) | x | splat(0x7f));
            while lfs != 0 {
                let lf = offset + (lfs.trailing_zeros() / 8) as usize;
                lfs &= lfs - 1;
                if let Some(scan) = at_line_end(buf, lf, max_head_size) {
                    return scan;
                }
            }
        }
        offset += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b'\n' {
            if let Some(scan) = at_line_end(buf, offset + i, max_head_size) {
                return scan;
            }
        }
    }
    if buf.len() > max_head_size {
        return Scan::Error(too_large(buf));
    }
    Scan::Incomplete
}

/// The verdict at the LF at `lf`, if it gives one: a bare LF, or the head's end.
fn at_line_end(buf: &[u8], lf: usize, max_head_size: usize) -> Option<Scan> {
    if lf == 0 || buf.get(lf - 1) != Some(&b'\r') {
        return Some(Scan::Error(HeadError::BareLineFeed));
    }
    if lf >= 3 && buf.get(lf - 3) == Some(&b'\r') && buf.get(lf - 2) == Some(&b'\n') {
        let end = lf + 1;
        if end > max_head_size {
            return Some(Scan::Error(too_large(buf)));
        }
        return Some(Scan::Complete(end));
    }
    None
}

/// Eight copies of a byte, for testing eight bytes at once.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

fn too_large(buf: &[u8]) -> HeadError {
    HeadError::TooLarge(if buf.contains(&b'\n') {
        Overflow::Fields
    } else if buf.contains(&b' ') {
        Overflow::StartLine
    } else {
        Overflow::FirstToken
    })
}

/// One field line of a parsed head, as positions in the head (32 bits: a head is
/// refused before it gets near 4 GiB, see [`MAX_LOCATABLE`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldRange {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
    /// The name, recognised once.
    kind: FieldName,
    /// Whether the line is exactly `name ": " value CRLF`, as the proxy would write
    /// it, so that forwarding it unchanged is copying it.
    canonical: bool,
}

impl FieldRange {
    fn name(&self) -> Range<usize> {
        let start = self.name_start as usize;
        start..start + self.name_len as usize
    }

    fn value(&self) -> Range<usize> {
        let start = self.value_start as usize;
        start..start + self.value_len as usize
    }
}

/// The longest head whose fields [`Fields::locate`] can place.
pub(crate) const MAX_LOCATABLE: usize = u32::MAX as usize - 2;

/// One field of a parsed head, as [`Fields::iter`] gives it.
#[derive(Clone, Debug)]
pub(crate) struct Field<'a> {
    pub(crate) kind: FieldName,
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
    /// Its whole line in the head, when that is how the proxy would write it.
    pub(crate) line: Option<Range<usize>>,
}

/// Room for a head's field positions, kept by a session from one head to the next
/// so that locating fields allocates nothing once it has seen a head as large.
#[derive(Debug, Default)]
pub(crate) struct FieldRoom(Vec<FieldRange>);

/// A complete head with its fields located; names and values are read from `bytes`.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    pub(crate) bytes: Bytes,
    ranges: Vec<FieldRange>,
    /// The [`FieldName::bit`]s of the names present: a rule whose field is absent
    /// costs one test.
    present: u32,
    /// What its `Connection` fields say.
    pub(crate) connection: ConnectionOptions,
}

impl Fields {
    /// Locates httparse's borrowed fields inside `bytes` (at most [`MAX_LOCATABLE`]
    /// long) and recognises their names.
    ///
    /// RFC 9110 §5.5: a value is VCHAR, obs-text, SP and HTAB. httparse refuses every
    /// other byte in a value (an error before this is reached), so values are not
    /// scanned again here; the test `every_control_byte_and_del_in_a_field_value_is_refused`
    /// holds httparse to it.
    pub(crate) fn locate(
        bytes: Bytes,
        headers: &[httparse::Header<'_>],
        room: FieldRoom,
    ) -> Fields {
        let base = bytes.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base) as u32;
        let mut present = 0;
        let mut connection = ConnectionOptions::default();
        let mut ranges = room.0;
        ranges.clear();
        ranges.reserve(headers.len());
        for h in headers {
            let (name, value) = (h.name.as_bytes(), trim_ows(h.value));
            let kind = FieldName::of(name);
            present |= kind.bit();
            if kind == FieldName::Connection {
                connection.add(value);
            }
            let mut range = FieldRange {
                name_start: offset(name),
                name_len: name.len() as u32,
                value_start: offset(value),
                value_len: value.len() as u32,
                kind,
                canonical: false,
            };
            let (name, value) = (range.name(), range.value());
            range.canonical = value.start == name.end + 2
                && bytes.get(name.end) == Some(&b':')
                && bytes.get(name.end + 1) == Some(&b' ')
                && bytes.get(value.end) == Some(&b'\r')
                && bytes.get(value.end + 1) == Some(&b'\n');
            ranges.push(range);
        }
        Fields {
            bytes,
            ranges,
            present,
            connection,
        }
    }

    /// Gives back the room its field positions took, for the next head.
    pub(crate) fn into_room(self) -> FieldRoom {
        FieldRoom(self.ranges)
    }

    /// Every field in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        self.ranges.iter().map(move |r| {
            let (name, value) = (r.name(), r.value());
            Field {
                kind: r.kind,
                line: r.canonical.then(|| name.start..value.end + 2),
                name: self.bytes.get(name).unwrap_or_default(),
                value: self.bytes.get(value).unwrap_or_default(),
            }
        })
    }

    /// The first field whose name spells a recognised one with `_` for `-`, as the
    /// name it spells (see [`FieldName::underscored`]). Only requests are checked (CGI
    /// maps a request's fields), in a pass of their own, so a response head costs
    /// nothing more.
    pub(crate) fn underscored(&self) -> Option<FieldName> {
        self.ranges
            .iter()
            .filter(|r| r.kind == FieldName::Other)
            .find_map(|r| FieldName::underscored(self.bytes.get(r.name())?))
    }

    /// Whether a field with this name is present.
    pub(crate) fn has(&self, name: FieldName) -> bool {
        self.present & name.bit() != 0
    }

    /// The field positions to look through for `name`: none if it is absent.
    fn ranges_for(&self, name: FieldName) -> &[FieldRange] {
        match self.has(name) {
            true => &self.ranges,
            false => &[],
        }
    }

    /// Values of every field with this name.
    pub(crate) fn values(&self, name: FieldName) -> impl Iterator<Item = &[u8]> + '_ {
        self.ranges_for(name)
            .iter()
            .filter(move |r| r.kind == name)
            .map(|r| self.bytes.get(r.value()).unwrap_or_default())
    }

    /// Comma-separated list elements of every field with this name (RFC 9110 §5.6.1),
    /// trimmed, empty elements skipped.
    pub(crate) fn list(&self, name: FieldName) -> impl Iterator<Item = &[u8]> + '_ {
        List {
            fields: self,
            name,
            ranges: self.ranges_for(name).iter(),
            elements: ListElements(&[]),
        }
    }

    /// Whether any list element of field `name` equals `token`, ignoring case.
    pub(crate) fn has_token(&self, name: FieldName, token: &str) -> bool {
        self.list(name)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// [`Fields::list`]: the elements of each value in turn.
struct List<'a> {
    fields: &'a Fields,
    name: FieldName,
    ranges: std::slice::Iter<'a, FieldRange>,
    elements: ListElements<'a>,
}

impl<'a> Iterator for List<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(element) = self.elements.next() {
                return Some(element);
            }
            let range = self.ranges.find(|r| r.kind == self.name)?;
            let value = self.fields.bytes.get(range.value()).unwrap_or_default();
            self.elements = ListElements(value);
        }
    }
}

/// The elements of one list value (RFC 9110 §5.6.1), trimmed, empty ones skipped.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    ListElements(value)
}

/// The elements of one list value, trimmed, empty ones skipped.
struct ListElements<'a>(&'a [u8]);

impl<'a> Iterator for ListElements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.0.is_empty() {
            let (element, rest) = match self.0.iter().position(|&b| b == b',') {
                Some(comma) => (&self.0[..comma], &self.0[comma + 1..]),
                None => (self.0, &b""[..]),
            };
            self.0 = rest;
            let element = trim_ows(element);
            if !element.is_empty() {
                return Some(element);
            }
        }
        None
    }
}

/// Strips optional whitespace (SP / HTAB) at both ends (RFC 9110 §5.6.3).
#[inline]
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    match (s.first(), s.last()) {
        (Some(b' ' | b'\t'), _) | (_, Some(b' ' | b'\t')) => trim_ows_slowly(s),
        _ => s,
    }
}

/// [`trim_ows`] when there is something to trim.
fn trim_ows_slowly(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |last| last + 1);
    s.get(start..end).unwrap_or_default()
}

/// Whether `b` is optional whitespace, SP or HTAB (RFC 9110 §5.6.3; BWS is the same).
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

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

/// Whether `s` is a non-empty token (RFC 9110 §5.6.2).
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `b` may appear in a token (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `tchar` (RFC 9110 §5.6.2) as a table: one load per byte.
static TCHAR: [bool; 256] = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// A byte class as a table: ASCII letters and digits plus `extra`. Built when compiling.
pub(crate) const fn alphanumeric_and(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}
