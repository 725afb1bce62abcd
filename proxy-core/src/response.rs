//! Response heads: parse strictly (RFC 9112 §4, §6.3) and write the head the client gets.

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::Limits;
use crate::error::ProxyError;
use crate::framing::{self, BodyKind};
use crate::head::{header_room, headers_up_to, is_field_value_byte, Fields};
use crate::hop_by_hop;
use crate::request::put_field;

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
        let fields = Fields::locate(head.clone(), response.headers);
        if fields
            .iter()
            .any(|(_, v)| !v.iter().all(|&b| is_field_value_byte(b)))
        {
            return Err(ProxyError::MalformedResponse);
        }
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

    /// How the body is delimited, given whether the request was HEAD.
    pub fn body(&self, request_was_head: bool) -> Result<BodyKind, ProxyError> {
        framing::response_body(&self.fields, self.status, request_was_head)
    }

    /// Whether the upstream connection may carry another request after this response
    /// (RFC 9112 §9.3), provided the body is read to its framed end.
    pub fn upstream_keep_alive(&self) -> bool {
        let close = self.fields.has_token("connection", "close");
        if self.http10 {
            !close && self.fields.has_token("connection", "keep-alive")
        } else {
            !close
        }
    }

    /// The head the client gets: `HTTP/1.1` with the status and reason byte-exact,
    /// end-to-end fields byte-exact and in order, hop-by-hop fields removed, and the
    /// proxy's own `Connection`.
    pub fn forward(&self, framing: ClientFraming) -> Bytes {
        let options = hop_by_hop::connection_options(&self.fields);
        let mut out = BytesMut::with_capacity(self.fields.bytes.len() + 32);
        out.put_slice(b"HTTP/1.1 ");
        out.put_slice(&self.status_and_reason);
        out.put_slice(b"\r\n");
        let mut length_written = false;
        for (name, value) in self.fields.iter() {
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if hop_by_hop::is_hop_by_hop(name, &options) {
                // The proxy re-encodes chunked bodies, so the codings still hold, except
                // for an HTTP/1.0 client, which gets the body decoded.
                if is("transfer-encoding") && !framing.client_http10 {
                    put_field(&mut out, name, value);
                }
            } else if is("content-length") {
                if !length_written {
                    put_field(&mut out, name, value);
                    length_written = true;
                }
            } else {
                put_field(&mut out, name, value);
            }
        }
        if (100..200).contains(&self.status) {
            // Interim responses carry no connection management of their own.
        } else if !framing.keep_alive {
            put_field(&mut out, b"Connection", b"close");
        } else if framing.client_http10 {
            put_field(&mut out, b"Connection", b"keep-alive");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }
}
