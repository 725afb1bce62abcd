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
