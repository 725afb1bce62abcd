//! Response heads: parse strictly (RFC 9112 §4, §6.3) and write the head the client gets.

use bytes::Bytes;

use crate::config::Limits;
use crate::error::ProxyError;
use crate::field_name::FieldName;
use crate::framing::{self, BodyKind};
use crate::head::{header_room, headers_up_to, FieldRoom, Fields, MAX_LOCATABLE};
use crate::head_writer::{self, HeadWriter};
use crate::WallClock;

/// A checked response head.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    fields: Fields,
    status: u16,
    /// `status-code SP reason-phrase` exactly as received.
    status_and_reason: Bytes,
    http10: bool,
}

/// What the client-facing head must say about the connection and the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientFraming {
    /// The body as the upstream framed it.
    pub body: BodyKind,
    /// The client speaks HTTP/1.0: a chunked body is sent decoded, close-delimited.
    pub client_http10: bool,
    /// The proxy keeps the client connection open after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// Parses and checks a complete head.
    pub fn parse(head: Bytes, limits: &Limits) -> Result<ResponseHead, ProxyError> {
        ResponseHead::parse_in(head, limits, FieldRoom::default())
    }

    /// [`parse`](Self::parse), with `room` for the field positions.
    pub(crate) fn parse_in(
        head: Bytes,
        limits: &Limits,
        room: FieldRoom,
    ) -> Result<ResponseHead, ProxyError> {
        if head.len() > MAX_LOCATABLE {
            return Err(ProxyError::ResponseHeadTooLarge);
        }
        let (mut stack, mut heap) = (header_room(), Vec::new());
        let headers = headers_up_to(&mut stack, &mut heap, limits.max_headers);
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            &head,
            headers,
        );
        let (status, http10) = match parsed {
            Ok(httparse::Status::Complete(_)) => (
                response.code.unwrap_or_default(),
                response.version == Some(0),
            ),
            Ok(httparse::Status::Partial) => return Err(ProxyError::MalformedResponse),
            Err(httparse::Error::TooManyHeaders) => return Err(ProxyError::ResponseHeadTooLarge),
            Err(_) => return Err(ProxyError::MalformedResponse),
        };
        if !(100..=599).contains(&status) {
            return Err(ProxyError::MalformedResponse);
        }
        let fields = Fields::locate(head.clone(), response.headers, room);
        // httparse skips empty lines before the status line; so does this. Then
        // "HTTP/1.x " is 9 bytes, and the rest of the line is status and reason.
        let start = head.chunks_exact(2).take_while(|w| *w == b"\r\n").count() * 2;
        let line = &head[start..];
        let line_end = start + line.iter().position(|&b| b == b'\r').unwrap_or(9).max(9);
        let status_and_reason = head.slice((start + 9).min(line_end)..line_end);
        Ok(ResponseHead {
            fields,
            status,
            status_and_reason,
            http10,
        })
    }

    /// Gives back the room its field positions took.
    pub(crate) fn into_room(self) -> FieldRoom {
        self.fields.into_room()
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The head exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.fields.bytes
    }

    /// Fields, for the upgrade check.
    pub(crate) fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Whether the body is in a transfer coding other than `chunked` alone (which the
    /// proxy removes and puts back itself).
    pub(crate) fn has_coding_beyond_chunked(&self) -> bool {
        let mut codings = self.fields.list(FieldName::TransferEncoding);
        match (codings.next(), codings.next()) {
            (None, _) => false,
            (Some(only), None) => !only.eq_ignore_ascii_case(b"chunked"),
            (Some(_), Some(_)) => true,
        }
    }

    /// How the body is delimited, given whether the request was HEAD.
    pub fn body(&self, request_was_head: bool) -> Result<BodyKind, ProxyError> {
        framing::response_body(&self.fields, self.status, self.http10, request_was_head)
    }

    /// Whether the upstream connection may carry another request after this response
    /// (RFC 9112 §9.3), provided the body is read to its framed end.
    pub fn upstream_keep_alive(&self) -> bool {
        let close = self.fields.connection.close;
        if self.http10 {
            !close && self.fields.connection.keep_alive
        } else {
            !close
        }
    }

    /// The head the client gets: `HTTP/1.1` with the status and reason byte-exact,
    /// end-to-end fields byte-exact and in order, hop-by-hop fields removed, and the
    /// proxy's own `Connection`.
    /// A final response without `Date` gets one from `clock`, if it is set (RFC 9110
    /// §6.6.1).
    pub fn forward(&self, framing: ClientFraming, clock: &WallClock) -> Bytes {
        // Room for what the proxy may add: `Connection` and a `Date` line (37 bytes).
        let mut out = HeadWriter::new(&self.fields, 80);
        out.put(b"HTTP/1.1 ");
        out.put(&self.status_and_reason);
        if self.status_and_reason.len() == 3 {
            // `HTTP/1.1 200` without its SP: the line needs one even with no reason
            // (RFC 9112 §4), which lenient upstreams leave out.
            out.put(b" ");
        }
        out.put(b"\r\n");
        let (mut length_written, mut te_written) = (false, false);
        for field in self.fields.iter() {
            match field.kind {
                // The proxy re-encodes chunked bodies, so the codings still hold, except
                // for an HTTP/1.0 client, which gets the body decoded, and in a 1xx or
                // 204, which must not have it (RFC 9112 §6.1).
                FieldName::TransferEncoding
                    if !framing.client_http10 && self.status >= 200 && self.status != 204 =>
                {
                    out.transfer_encoding(&field, &mut te_written)
                }
                kind if self.fields.is_hop_by_hop(kind, field.name) => {}
                // One field, one value (a list of equal values was accepted as one); none
                // in a 1xx or 204, which must not have it (RFC 9110 §8.6).
                FieldName::ContentLength if self.status < 200 || self.status == 204 => {}
                FieldName::ContentLength => {
                    if !length_written {
                        let list = match field.value.iter().all(u8::is_ascii_digit) {
                            true => None,
                            false => crate::framing::content_length(&self.fields).ok().flatten(),
                        };
                        match list {
                            Some(n) => {
                                let mut digits = [0u8; 20];
                                out.field(field.name, head_writer::decimal(n, &mut digits));
                            }
                            None => out.keep(&field),
                        }
                        length_written = true;
                    }
                }
                _ => out.keep(&field),
            }
        }
        if self.status >= 200 && !self.fields.has(FieldName::Date) {
            if let Some(date) = clock.date() {
                out.field(b"Date", &date);
            }
        }
        if (100..200).contains(&self.status) {
            // Interim responses carry no connection management of their own.
        } else if !framing.keep_alive {
            out.field(b"Connection", b"close");
        } else if framing.client_http10 {
            out.field(b"Connection", b"keep-alive");
        }
        out.finish()
    }
}
