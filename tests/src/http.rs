//! A tiny, strict, hand-written HTTP/1.1 reader and writer for the test side of a
//! connection: the client that talks to the proxy and the backend the proxy talks to.
//!
//! It is written independently of the proxy's own parser on purpose, so that a parser
//! bug in the core is not mirrored here. It keeps every byte it read, so tests can
//! assert on exactly what crossed the wire.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest head this reader accepts before it calls the peer broken.
const MAX_HEAD: usize = 1 << 20;

/// A parsed message head (request or response), with its raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The first line without its CRLF: `GET / HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start_line: String,
    /// Fields in the order received, name and value byte-exact (value without the
    /// surrounding optional whitespace).
    pub headers: Vec<(String, String)>,
    /// The whole head as received, including the final empty line.
    pub raw: Vec<u8>,
}

impl Head {
    /// The first field with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field with this name (case-insensitive), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a field with this name is present.
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether the comma-separated list in field `name` contains `token`
    /// (case-insensitive), across every field line of that name.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// `Content-Length` as a number, if present and valid.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// Whether the message is chunked (last transfer coding is `chunked`).
    pub fn is_chunked(&self) -> bool {
        self.all("transfer-encoding")
            .iter()
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    }

    /// Names of the fields, in order.
    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Parses one head from the front of `buf`; `Ok(None)` if it is not complete yet.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(invalid("head too large"));
        }
        return Ok(None);
    };
    let raw = buf[..end + 4].to_vec();
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines {
        let Some(colon) = line.find(':') else {
            return Err(invalid(&format!("header line without colon: {line:?}")));
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_matches(|c| c == ' ' || c == '\t');
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(Some((
        Head {
            start_line,
            headers,
            raw,
        },
        end + 4,
    )))
}

/// A response as read by [`Conn::read_response`].
#[derive(Clone, Debug)]
pub struct Response {
    /// `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// The head.
    pub head: Head,
    /// The decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// The body was delimited by the connection closing.
    pub until_close: bool,
}

impl Response {
    /// The first field with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response tells the client the connection will close.
    pub fn closes(&self) -> bool {
        self.until_close
            || self.head.has_token("connection", "close")
            || (self.version == "HTTP/1.0" && !self.head.has_token("connection", "keep-alive"))
    }
}

/// A request as read by [`Conn::read_request`].
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Request-target.
    pub target: String,
    /// `HTTP/1.1`.
    pub version: String,
    /// The head.
    pub head: Head,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first field with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// Where a [`Conn`] reports what it reads and writes (used by the backend's recorder).
pub trait Recorder: Send + Sync {
    /// Bytes were read.
    fn received(&self, bytes: &[u8]);
    /// Bytes were written.
    fn sent(&self, bytes: &[u8]);
    /// The peer closed its write half.
    fn eof(&self);
}

/// One TCP connection with a read buffer, used by test clients and backends.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    recorder: Option<Arc<dyn Recorder>>,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn::new(stream))
    }

    /// Wraps an accepted or connected stream.
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            recorder: None,
        }
    }

    /// Wraps a stream and reports every read and write to `recorder`.
    pub fn recorded(stream: TcpStream, recorder: Arc<dyn Recorder>) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            recorder: Some(recorder),
        }
    }

    /// The stream and the bytes read from it but not consumed.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// The underlying stream.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Bytes read but not yet consumed by a parse.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Puts bytes back in front of the read buffer.
    pub fn unread(&mut self, bytes: &[u8]) {
        self.buf.splice(0..0, bytes.iter().copied());
    }

    /// Takes the bytes read but not yet consumed.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Reads once more from the socket into the buffer; returns 0 at EOF.
    pub async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if let Some(r) = &self.recorder {
            if n == 0 {
                r.eof();
            } else {
                r.received(&chunk[..n]);
            }
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Writes all of `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(r) = &self.recorder {
            r.sent(bytes);
        }
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Shuts down the write half (sends FIN).
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    /// Reads a head; `Ok(None)` on a clean EOF before its first byte.
    pub async fn read_head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some((head, used)) = parse_head(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(head));
            }
            if self.fill().await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(eof(&format!(
                    "EOF inside a head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                )));
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(eof(&format!("EOF after {} of {n} bytes", self.buf.len())));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            if self.fill().await? == 0 {
                return Err(eof("EOF inside a line"));
            }
        }
    }

    /// Reads a chunked body and its trailer section; returns the decoded body.
    pub async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let line = String::from_utf8_lossy(&line).into_owned();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(&format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // trailer section
                loop {
                    if self.read_line().await?.is_empty() {
                        return Ok(body);
                    }
                }
            }
            body.extend(self.read_exact(size).await?);
            if self.read_exact(2).await? != b"\r\n" {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }

    /// Reads until the peer closes (or resets after sending everything).
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? != 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads the body that `head` announces for a request.
    pub async fn read_request_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        if head.is_chunked() {
            self.read_chunked().await
        } else if let Some(n) = head.content_length() {
            self.read_exact(n as usize).await
        } else {
            Ok(Vec::new())
        }
    }

    /// Reads one complete request; `Ok(None)` on a clean EOF between requests.
    pub async fn read_request(&mut self) -> io::Result<Option<Request>> {
        let Some(head) = self.read_head().await? else {
            return Ok(None);
        };
        let mut parts = head.start_line.splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let version = parts.next().unwrap_or_default().to_string();
        let body = self.read_request_body(&head).await?;
        Ok(Some(Request {
            method,
            target,
            version,
            head,
            body,
        }))
    }

    /// Reads one response (interim `1xx` included) to a request with `method`.
    pub async fn read_response(&mut self, method: &str) -> io::Result<Response> {
        let head = self
            .read_head()
            .await?
            .ok_or_else(|| eof("EOF instead of a response"))?;
        let mut parts = head.start_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(&format!("bad status line {:?}", head.start_line)))?;
        let reason = parts.next().unwrap_or_default().to_string();
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(&format!("bad status line {:?}", head.start_line)));
        }
        let mut until_close = false;
        let body =
            if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
                Vec::new()
            } else if head.is_chunked() {
                self.read_chunked().await?
            } else if let Some(n) = head.content_length() {
                self.read_exact(n as usize).await?
            } else {
                until_close = true;
                self.read_to_end().await?
            };
        Ok(Response {
            version,
            status,
            reason,
            head,
            body,
            until_close,
        })
    }

    /// Reads the final response, skipping interim `1xx` responses; returns the
    /// interim ones too.
    pub async fn read_final_response(
        &mut self,
        method: &str,
    ) -> io::Result<(Vec<Response>, Response)> {
        let mut interim = Vec::new();
        loop {
            let r = self.read_response(method).await?;
            if (100..200).contains(&r.status) && r.status != 101 {
                interim.push(r);
            } else {
                return Ok((interim, r));
            }
        }
    }

    /// Waits up to `within` for the peer to close: `Ok(bytes)` with whatever arrived
    /// before EOF (a reset after all data counts as a close too), `Err` if the
    /// connection is still open after `within`.
    pub async fn expect_close(&mut self, within: Duration) -> Result<Vec<u8>, String> {
        let result = tokio::time::timeout(within, async {
            loop {
                match self.fill().await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) if is_reset(&e) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(std::mem::take(&mut self.buf)),
            Ok(Err(e)) => Err(format!("read error while waiting for close: {e}")),
            Err(_) => Err(format!(
                "connection still open after {within:?}; received meanwhile: {:?}",
                String::from_utf8_lossy(&self.buf)
            )),
        }
    }

    /// Asserts that nothing arrives and the connection stays open for `quiet`.
    pub async fn expect_open_and_quiet(&mut self, quiet: Duration) -> Result<(), String> {
        match tokio::time::timeout(quiet, self.fill()).await {
            Err(_) => Ok(()),
            Ok(Ok(0)) => Err("connection closed".into()),
            Ok(Ok(_)) => Err(format!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&self.buf)
            )),
            Ok(Err(e)) => Err(format!("read error: {e}")),
        }
    }
}

/// Whether an IO error is a connection reset or abort (the peer closed with unread data).
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Index of the first occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// A `Content-Length` response with this status and body.
pub fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `200 OK` with this body.
pub fn ok(body: &[u8]) -> Vec<u8> {
    response(200, "OK", &[], body)
}

/// Encodes `body` as chunks of at most `chunk` bytes, with the last-chunk.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 8 + 16);
    for part in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), so large bodies are not all zeros.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string())
}
