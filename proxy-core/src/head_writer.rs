//! Writing the head the next hop gets. Fields go on byte-exact and in order, so most
//! of a forwarded head is lines of the received one: those are copied in runs of
//! whole lines rather than rebuilt name, colon, value and CRLF at a time.

use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

use crate::field_name::FieldName;
use crate::head::{Field, Fields};

/// A head being written from a received one (`source`).
pub(crate) struct HeadWriter<'a> {
    out: BytesMut,
    source: &'a Fields,
    /// Lines of `source` to copy next, not yet written.
    run: Range<usize>,
}

impl<'a> HeadWriter<'a> {
    /// A writer with room for the received head and `extra` bytes.
    pub(crate) fn new(source: &'a Fields, extra: usize) -> Self {
        HeadWriter {
            out: BytesMut::with_capacity(source.bytes.len() + extra),
            source,
            run: 0..0,
        }
    }

    /// Forwards a line of the received head unchanged (`line` is its range).
    pub(crate) fn keep_line(&mut self, line: Range<usize>) {
        self.flush();
        self.run = line;
    }

    /// Writes bytes of the proxy's own.
    #[inline]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.flush();
        self.out.put_slice(bytes);
    }

    /// Writes a field line.
    #[inline]
    pub(crate) fn field(&mut self, name: &[u8], value: &[u8]) {
        self.flush();
        put_field(&mut self.out, name, value);
    }

    /// Forwards a field of the received head unchanged.
    pub(crate) fn keep(&mut self, field: &Field<'_>) {
        match &field.line {
            Some(line) if line.start == self.run.end => self.run.end = line.end,
            Some(line) => {
                self.flush();
                self.run = line.clone();
            }
            None => self.field(field.name, field.value),
        }
    }

    /// `Transfer-Encoding` of a body the proxy re-chunks, written once, at the first of
    /// its fields: its codings as one list, without the empty elements and spacing the
    /// syntax allows (`, chunked`, `chunked ,`), and `chunked` spelled so. A server
    /// downstream that parses lists more strictly than RFC 9110 §5.6.1 then reads the
    /// framing the proxy read. A plain `chunked` field stays byte-exact.
    pub(crate) fn transfer_encoding(&mut self, field: &Field<'_>, written: &mut bool) {
        if std::mem::replace(written, true) {
            return;
        }
        let codings = self.source.list(FieldName::TransferEncoding);
        let single_field = self
            .source
            .values(FieldName::TransferEncoding)
            .nth(1)
            .is_none();
        if single_field && field.value == b"chunked" {
            return self.keep(field);
        }
        let mut value = Vec::with_capacity(field.value.len());
        for coding in codings {
            match coding.eq_ignore_ascii_case(b"chunked") {
                true => value.extend_from_slice(b"chunked"),
                false => value.extend_from_slice(coding),
            }
            value.extend_from_slice(b", ");
        }
        value.truncate(value.len().saturating_sub(2));
        self.field(field.name, &value);
    }

    /// The head, ended by its empty line.
    pub(crate) fn finish(mut self) -> Bytes {
        self.put(b"\r\n");
        self.out.freeze()
    }

    fn flush(&mut self) {
        let run = std::mem::replace(&mut self.run, 0..0);
        if let Some(lines) = self.source.bytes.get(run) {
            self.out.put_slice(lines);
        }
    }
}

/// `name: value` and CRLF.
#[inline]
pub(crate) fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// `n` in decimal, written at the end of `buf`.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_display_writes_them() {
        for n in [0, 7, 10, 99, 1234567890, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
