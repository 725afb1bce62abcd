//! The benchmark's upstream: a keep-alive HTTP/1.1 server answering every request with
//! a 13-byte body, and a WebSocket echo server on the same port (any request with
//! `Upgrade: websocket`). One thread, so that it leaves the load generator's core
//! mostly to the load generator.

use crate::http::{head_end, invalid, parse_head};
use crate::ws::{self, apply_mask, parse_header, write_header};
use bytes::{Buf, BytesMut};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
const CLOSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nHello, world!";

/// Largest single read on a WebSocket.
const WS_READ: usize = 64 * 1024;

pub async fn run(listen: SocketAddr) -> io::Result<()> {
    let listener = crate::bind(listen)?;
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
            buf.advance(total);
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

/// Echoes every data frame back unmasked, answers Ping with Pong, answers Close with
/// Close. Payload is streamed: a 64 KiB message is never held whole.
async fn echo(mut stream: TcpStream, mut buf: BytesMut) -> io::Result<()> {
    let mut out: Vec<u8> = Vec::with_capacity(WS_READ + 16);
    let mut frame: Option<Frame> = None;
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
