//! Minimal HTTP/1.1 head handling for the benchmark's own peers. The proxies under test
//! are the ones that must be strict; these only need to be correct for well-formed
//! traffic and cheap.

use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The fields of a head the benchmark cares about.
#[derive(Debug, Default)]
pub struct Head {
    /// The status code of a response (0 for a request).
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub upgrade_websocket: bool,
    pub connection_close: bool,
    pub ws_key: Option<String>,
    pub ws_accept: Option<String>,
}

/// Where the head in `buf` ends (the index after the blank line), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|at| at + 4)
}

/// Parses a complete head (`buf` up to and including the blank line).
pub fn parse_head(buf: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(buf).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut head = Head::default();
    if let Some(rest) = start.strip_prefix("HTTP/1.") {
        head.status = rest
            .get(2..5)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| invalid("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            head.connection_close = value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            head.ws_key = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.ws_accept = Some(value.to_owned());
        }
    }
    Ok(head)
}

/// Reads one response (head and `Content-Length` body) from `stream`, using and
/// leaving over-read bytes in `buf`. Returns the status code.
pub async fn read_response(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<u16> {
    loop {
        if let Some(end) = head_end(buf) {
            let head = parse_head(&buf[..end])?;
            if head.chunked {
                return Err(invalid("chunked responses are not expected here"));
            }
            let total = end
                + head
                    .content_length
                    .ok_or_else(|| invalid("response without content-length"))?;
            while buf.len() < total {
                // A large body is read in large pieces, as a real client would.
                buf.reserve((total - buf.len()).min(256 * 1024));
                read_more(stream, buf).await?;
            }
            buf.advance(total);
            return Ok(head.status);
        }
        read_more(stream, buf).await?;
    }
}

/// Reads whatever is there into `buf`; EOF is an error.
pub async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<()> {
    buf.reserve(4096);
    match stream.read_buf(buf).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

pub fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_it_needs() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\
                    Connection: keep-alive, Close\r\nSec-WebSocket-Accept: abc\r\n\
                    content-length: 13\r\n\r\n";
        let end = head_end(raw).unwrap();
        assert_eq!(end, raw.len());
        let head = parse_head(&raw[..end]).unwrap();
        assert_eq!(head.status, 101);
        assert!(head.upgrade_websocket && head.connection_close);
        assert_eq!(head.content_length, Some(13));
        assert_eq!(head.ws_accept.as_deref(), Some("abc"));
    }
}
