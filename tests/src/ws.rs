//! The WebSocket client side: tokio-tungstenite over a plain TCP connection to the proxy.

use futures_util::StreamExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A client WebSocket through the proxy.
pub type Client = WebSocketStream<TcpStream>;

/// Opens `ws://addr/ws` with tokio-tungstenite; panics (with the handshake error) if
/// the upgrade through the proxy fails.
pub async fn connect(addr: SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
    stream.set_nodelay(true).unwrap();
    let url = format!("ws://{addr}/ws");
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(WebSocketConfig::default()))
            .await
            .unwrap_or_else(|e| panic!("WebSocket handshake through the proxy failed: {e}"));
    assert_eq!(response.status().as_u16(), 101, "handshake status");
    ws
}

/// Opens `ws://addr/ws` as a browser page at `origin` would (with `Origin: origin`):
/// the WebSocket, or the status the handshake was refused with.
pub async fn connect_from(addr: SocketAddr, origin: &str) -> Result<Client, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Origin", origin.parse().expect("an Origin value"));
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("WebSocket handshake failed without a status: {e}"),
    }
}

/// The next data or close message, skipping pings and pongs; `None` when the stream
/// ended. Panics after `within`.
pub async fn next(ws: &mut Client, within: Duration) -> Option<Result<Message, String>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let item = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket message within {within:?}"));
        match item {
            None => return None,
            Some(Err(e)) => return Some(Err(e.to_string())),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(Ok(m)),
        }
    }
}

/// How a WebSocket stream ended, as seen by [`wait_end`].
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// A Close frame arrived (code, reason), then the stream ended or errored.
    Close(Option<(u16, String)>),
    /// The stream ended without a Close frame (bare TCP close).
    Eof,
    /// The stream failed (e.g. reset) without a Close frame.
    Error(String),
}

/// Reads until the stream ends; data messages are an error. `Err` if it has not ended
/// within `within`.
pub async fn wait_end(ws: &mut Client, within: Duration) -> Result<End, String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut close = None;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(format!("WebSocket still open after {within:?}")),
            Ok(None) => return Ok(close.map(End::Close).unwrap_or(End::Eof)),
            Ok(Some(Err(e))) => {
                return Ok(close.map(End::Close).unwrap_or(End::Error(e.to_string())))
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                close = Some(f.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(Some(Ok(m))) => {
                return Err(format!(
                    "unexpected message while waiting for the end: {m:?}"
                ))
            }
        }
    }
}

/// Encodes one final frame; `mask` for client-to-server frames.
pub fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Opcodes.
pub const TEXT: u8 = 0x1;
/// Binary opcode.
pub const BINARY: u8 = 0x2;
/// Close opcode.
pub const CLOSE: u8 = 0x8;
/// Ping opcode.
pub const PING: u8 = 0x9;
/// Pong opcode.
pub const PONG: u8 = 0xA;

/// One frame read by [`read_frame`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Opcode.
    pub opcode: u8,
    /// Payload, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// For a Close frame: its code and reason.
    pub fn close(&self) -> Option<(u16, String)> {
        (self.opcode == CLOSE && self.payload.len() >= 2).then(|| {
            (
                u16::from_be_bytes([self.payload[0], self.payload[1]]),
                String::from_utf8_lossy(&self.payload[2..]).into_owned(),
            )
        })
    }
}

/// Reads one frame from a raw connection; `Ok(None)` at EOF before a frame starts.
pub async fn read_frame(c: &mut crate::http::Conn) -> std::io::Result<Option<Frame>> {
    while c.buffered().len() < 2 {
        if c.fill().await? == 0 {
            return if c.buffered().is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
    let head = c.read_exact(2).await?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u16::from_be_bytes(c.read_exact(2).await?.try_into().unwrap()) as usize,
        127 => u64::from_be_bytes(c.read_exact(8).await?.try_into().unwrap()) as usize,
        n => n as usize,
    };
    let key = if masked {
        Some(c.read_exact(4).await?)
    } else {
        None
    };
    let mut payload = c.read_exact(len).await?;
    if let Some(key) = key {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Ok(Some(Frame { opcode, payload }))
}
