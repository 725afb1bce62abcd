//! The benchmark's upstream: a keep-alive HTTP/1.1 server answering every request with
//! a 13-byte body, and a WebSocket echo server on the same port (any request with
//! `Upgrade: websocket`). One thread, so that it leaves the load generator's core
//! mostly to the load generator.
//!
//! The soak harness (`soak`) needs three more answers, chosen by the request-target's
//! start so that the benchmark's `GET /` and `GET /ws` never pay for more than a prefix
//! comparison:
//! - `GET /big?bytes=N`: a body of N bytes, streamed (the slow-reader scenario);
//! - `GET /delay?ms=N`: the usual answer after N ms (requests in flight when the
//!   backend is killed);
//! - `GET /stats`: `{"connections":C,"requests":R}`, what this backend has accepted and
//!   parsed so far, `/stats` itself not counted among the requests (the malformed flood
//!   proves that nothing reached the backend).

use crate::http::{head_end, invalid, parse_head};
use crate::ws::{self, apply_mask, parse_header, write_header};
use crate::zero_copy;
use bytes::{Buf, BytesMut};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
const CLOSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nHello, world!";

/// Largest single read on a WebSocket.
const WS_READ: usize = 64 * 1024;

/// Connections accepted so far (read with `GET /stats`).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// Request heads parsed so far, `GET /stats` excepted.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Largest `/delay` honoured, so that a typo cannot park a connection for hours.
const MAX_DELAY_MS: u64 = 600_000;
/// Chunk of zeros a `/big` body is written from.
static BIG_CHUNK: [u8; 64 * 1024] = [0; 64 * 1024];

pub async fn run(listen: SocketAddr, sndbuf: Option<u32>) -> io::Result<()> {
    let listener = crate::bind_with_sndbuf(listen, sndbuf)?;
    eprintln!("backend: listening on {listen}");
    serve(listener).await
}

async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("backend: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = connection(stream).await {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) {
                    eprintln!("backend: connection: {e}");
                }
            }
        });
    }
}

/// HTTP requests until EOF or an upgrade; pipelined requests are answered in one write.
async fn connection(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(512);
    loop {
        let mut close = false;
        while let Some(end) = head_end(&buf) {
            let head = parse_head(&buf[..end])?;
            if head.chunked {
                return Err(invalid("chunked request bodies are not supported"));
            }
            let total = end + head.content_length.unwrap_or(0);
            if buf.len() < total {
                break;
            }
            let special = Special::of(&buf[..end]);
            buf.advance(total);
            if !matches!(special, Some(Special::Stats)) {
                REQUESTS.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(special) = special {
                // Answered in order: whatever was already due goes first.
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                special.answer(&mut stream).await?;
                if head.connection_close {
                    return stream.shutdown().await;
                }
                continue;
            }
            if head.upgrade_websocket {
                let key = head.ws_key.ok_or_else(|| invalid("no Sec-WebSocket-Key"))?;
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                        ws::accept_key(&key)
                    )
                    .as_bytes(),
                );
                stream.write_all(&out).await?;
                return echo(stream, buf).await;
            }
            if head.connection_close {
                out.extend_from_slice(CLOSE_RESPONSE);
                close = true;
                break;
            }
            out.extend_from_slice(RESPONSE);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            return stream.shutdown().await;
        }
        buf.reserve(4096);
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// The soak harness's requests (see the module docs).
#[derive(Debug, PartialEq, Eq)]
enum Special {
    Big(u64),
    /// `bytes` of body in chunks of 64 KiB (`Transfer-Encoding: chunked`).
    Chunked(u64),
    Delay(u64),
    Stats,
}

impl Special {
    /// Which special request `head` is, from its request line; `None` for every other.
    fn of(head: &[u8]) -> Option<Special> {
        let target = head.strip_prefix(b"GET /")?;
        let number = |rest: &[u8]| -> Option<u64> {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
        };
        if let Some(rest) = target.strip_prefix(b"big?bytes=") {
            number(rest).map(Special::Big)
        } else if let Some(rest) = target.strip_prefix(b"chunked?bytes=") {
            number(rest).map(Special::Chunked)
        } else if let Some(rest) = target.strip_prefix(b"delay?ms=") {
            number(rest).map(|ms| Special::Delay(ms.min(MAX_DELAY_MS)))
        } else if target.starts_with(b"stats ") {
            Some(Special::Stats)
        } else {
            None
        }
    }

    async fn answer(self, stream: &mut TcpStream) -> io::Result<()> {
        match self {
            Special::Big(bytes) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {bytes}\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                );
                stream.write_all(head.as_bytes()).await?;
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(BIG_CHUNK.len() as u64) as usize;
                    stream.write_all(&BIG_CHUNK[..n]).await?;
                    left -= n as u64;
                }
                Ok(())
            }
            Special::Chunked(bytes) => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await?;
                let mut left = bytes;
                let mut chunk = Vec::with_capacity(BIG_CHUNK.len() + 16);
                while left > 0 {
                    let n = left.min(BIG_CHUNK.len() as u64) as usize;
                    chunk.clear();
                    chunk.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    chunk.extend_from_slice(&BIG_CHUNK[..n]);
                    chunk.extend_from_slice(b"\r\n");
                    stream.write_all(&chunk).await?;
                    left -= n as u64;
                }
                stream.write_all(b"0\r\n\r\n").await
            }
            Special::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                stream.write_all(RESPONSE).await
            }
            Special::Stats => {
                let body = format!(
                    "{{\"connections\":{},\"requests\":{}}}",
                    CONNECTIONS.load(Ordering::Relaxed),
                    REQUESTS.load(Ordering::Relaxed)
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\
                     Content-Type: application/json\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await
            }
        }
    }
}

/// Where the echo is within the current frame.
struct Frame {
    /// Payload bytes still to come.
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes already seen (for the mask's phase).
    offset: usize,
    /// Echo the payload (false for a Pong, which is consumed).
    echo: bool,
    close: bool,
}

/// Payload left in a frame from which the echo goes through a pipe, when its mask key
/// is zero (the bulk load generator's; unmasked, the bytes are the same).
const ZERO_COPY_MIN: u64 = 16 * 1024;

/// Echoes every data frame back unmasked, answers Ping with Pong, answers Close with
/// Close. Payload is streamed: a 64 KiB message is never held whole.
async fn echo(mut stream: TcpStream, mut buf: BytesMut) -> io::Result<()> {
    let mut out: Vec<u8> = Vec::with_capacity(WS_READ + 16);
    let mut frame: Option<Frame> = None;
    let mut pipe = None;
    loop {
        let mut closing = false;
        loop {
            let current = match frame.as_mut() {
                Some(current) => current,
                None => {
                    let Some((header, n)) = parse_header(&buf) else {
                        break;
                    };
                    buf.advance(n);
                    let echo = header.opcode != ws::OP_PONG;
                    let opcode = match header.opcode {
                        ws::OP_PING => ws::OP_PONG,
                        op => op,
                    };
                    if echo {
                        write_header(&mut out, header.fin, opcode, header.len, None);
                    }
                    frame.insert(Frame {
                        remaining: header.len,
                        mask: header.mask.unwrap_or_default(),
                        offset: 0,
                        echo,
                        close: header.opcode == ws::OP_CLOSE,
                    })
                }
            };
            let take = usize::try_from(current.remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            if take > 0 {
                let payload = &mut buf[..take];
                apply_mask(payload, current.mask, current.offset);
                if current.echo {
                    out.extend_from_slice(payload);
                }
                buf.advance(take);
                current.offset += take;
                current.remaining -= take as u64;
            }
            if current.remaining >= ZERO_COPY_MIN && current.echo && current.mask == [0; 4] {
                // The rest of a large unmasked payload goes back without being read
                // (see `zero_copy`), after what is already here.
                stream.write_all(&out).await?;
                out.clear();
                let pipe = match &pipe {
                    Some(pipe) => pipe,
                    None => pipe.insert(zero_copy::Pipe::new()?),
                };
                pipe.echo(&stream, current.remaining).await?;
                current.remaining = 0;
            }
            if current.remaining > 0 {
                break; // the rest of this frame is still on its way
            }
            closing |= current.close;
            frame = None;
            if closing {
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
            if out.capacity() > 4 * WS_READ {
                out.shrink_to(WS_READ);
            }
        }
        if closing {
            return stream.shutdown().await;
        }
        buf.reserve(WS_READ);
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_requests_are_told_by_their_target() {
        let of = |head: &str| Special::of(head.as_bytes());
        assert_eq!(
            of("GET /big?bytes=10485760 HTTP/1.1\r\n"),
            Some(Special::Big(10 << 20))
        );
        assert_eq!(
            of("GET /delay?ms=250 HTTP/1.1\r\n"),
            Some(Special::Delay(250))
        );
        assert_eq!(of("GET /stats HTTP/1.1\r\n"), Some(Special::Stats));
        assert_eq!(of("GET / HTTP/1.1\r\n"), None);
        assert_eq!(of("GET /ws HTTP/1.1\r\n"), None);
        assert_eq!(of("GET /statsx HTTP/1.1\r\n"), None);
        assert_eq!(of("GET /big?bytes=x HTTP/1.1\r\n"), None);
        assert_eq!(of("POST /stats HTTP/1.1\r\n"), None);
    }
}
