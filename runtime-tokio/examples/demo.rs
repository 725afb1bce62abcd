//! Switchyard in front of a tiny HTTP + WebSocket echo backend.
//!
//! ```text
//! cargo run -p runtime-tokio --example demo
//! ```
//!
//! Starts the backend on a free port, the proxy on 127.0.0.1:8080 (or a free port if
//! that is taken), checks both paths once through the proxy, prints what to try, and
//! runs until Ctrl-C. `GET /` is a page that opens a WebSocket back to the same origin;
//! any other path answers with the request as the backend saw it (look for the
//! `X-Forwarded-*` fields the proxy added).

use futures_util::{SinkExt, StreamExt};
use runtime_tokio::proxy_core::Config;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

#[tokio::main]
async fn main() -> io::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_addr = backend.local_addr()?;
    tokio::spawn(backend::run(backend));

    let proxy = match TcpListener::bind("127.0.0.1:8080").await {
        Ok(listener) => listener,
        Err(_) => TcpListener::bind("127.0.0.1:0").await?,
    };
    let proxy_addr = proxy.local_addr()?;
    let config = Config {
        upstream: backend_addr.to_string(),
        ..Config::default()
    };

    let check = tokio::spawn(self_check(proxy_addr));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let serving = tokio::spawn(runtime_tokio::serve(proxy, Arc::new(config), shutdown));

    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(Ok(()))) => println!("\nself-check through the proxy: HTTP ok, WebSocket echo ok"),
        Ok(Ok(Err(e))) => println!("\nself-check through the proxy FAILED: {e}"),
        _ => println!("\nself-check through the proxy FAILED: no answer within 5 s"),
    }
    let port = proxy_addr.port();
    println!(
        r#"
Switchyard demo
  backend (HTTP + WebSocket echo)  http://{backend_addr}
  proxy in front of it             http://{proxy_addr}

Try:
  open http://{proxy_addr}/ in a browser (the page talks to the echo over a WebSocket)
  curl -i http://{proxy_addr}/hello
  websocat ws://{proxy_addr}/ws
  python3 -c "import socket,os,base64;s=socket.create_connection(('127.0.0.1',{port}));s.send(b'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: '+base64.b64encode(os.urandom(16))+b'\r\n\r\n');print(s.recv(4096).decode());m=b'hello';k=os.urandom(4);s.send(bytes([129,128|len(m)])+k+bytes(b^k[i%4] for i,b in enumerate(m)));print(s.recv(4096))"

Ctrl-C stops (connections are drained first)."#
    );
    serving.await.map_err(io::Error::other)?
}

/// One GET and one WebSocket echo through the proxy.
async fn self_check(proxy: SocketAddr) -> Result<(), String> {
    let mut http = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = "GET /self-check HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n";
    http.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    http.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    if !response.starts_with("HTTP/1.1 200 ") {
        return Err(format!(
            "GET answered {:?}",
            response.lines().next().unwrap_or("nothing")
        ));
    }
    let stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let url = format!("ws://{proxy}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("WebSocket: {e}"))?;
    ws.send(Message::text("ping"))
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.as_str() == "ping" => {}
        other => return Err(format!("WebSocket echo answered {other:?}")),
    }
    ws.close(None).await.map_err(|e| e.to_string())
}

/// The backend: keep-alive HTTP/1.1 with `Content-Length` bodies, and WebSocket echo
/// on any request that asks to upgrade.
mod backend {
    use super::*;

    pub async fn run(listener: TcpListener) {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Err(e) = connection(stream).await {
                        tracing::debug!(error = %e, "backend connection");
                    }
                });
            }
        }
    }

    async fn connection(mut stream: TcpStream) -> io::Result<()> {
        let mut buf = Vec::new(); // bytes read and not yet used
        loop {
            let Some(end) = read_head(&mut stream, &mut buf).await? else {
                return Ok(());
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let request = Request::parse(&head);
            if request
                .header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
            {
                return echo_websocket(stream, &request, buf).await;
            }
            let body_len: usize = request
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < body_len {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
            }
            buf.drain(..body_len);
            let (content_type, body) = match request.path.as_str() {
                "/" => ("text/html; charset=utf-8", PAGE.to_string()),
                _ => (
                    "text/plain; charset=utf-8",
                    format!("Hello from the backend. It received:\n\n{head}"),
                ),
            };
            let close = request
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                || request.version == "HTTP/1.0"
                || request.header("transfer-encoding").is_some();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "Connection: close\r\n" } else { "" },
            );
            stream.write_all(response.as_bytes()).await?;
            if close {
                return Ok(());
            }
        }
    }

    /// Reads until `buf` holds a whole head; returns its length, `None` at a clean EOF.
    async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(Some(at + 4));
            }
            if buf.len() > 64 * 1024 {
                return Err(io::Error::other("request head too large"));
            }
            if stream.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn echo_websocket(
        mut stream: TcpStream,
        request: &Request,
        rest: Vec<u8>,
    ) -> io::Result<()> {
        let key = request.header("sec-websocket-key").unwrap_or_default();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        stream.write_all(response.as_bytes()).await?;
        let mut ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, None).await;
        // Pings are answered and closes completed by tungstenite itself.
        while let Some(message) = ws.next().await {
            let message = message.map_err(io::Error::other)?;
            if message.is_text() || message.is_binary() {
                ws.send(message).await.map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    struct Request {
        path: String,
        version: String,
        headers: Vec<(String, String)>,
    }

    impl Request {
        fn parse(head: &str) -> Request {
            let mut lines = head.split("\r\n");
            let mut start = lines.next().unwrap_or_default().split(' ');
            let (_method, path, version) = (start.next(), start.next(), start.next());
            let headers = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            Request {
                path: path.unwrap_or("/").to_owned(),
                version: version.unwrap_or_default().to_owned(),
                headers,
            }
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Switchyard demo</title>
<style>body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; } pre { background: #f4f4f4; padding: 1em; }</style>
<h1>Switchyard demo</h1>
<p>This page came from the backend through the proxy. The box below talks to the
backend's WebSocket echo, through the proxy as well.</p>
<form id="form"><input id="message" value="hello, switchyard" size="30" autocomplete="off"> <button>send</button></form>
<pre id="log"></pre>
<script>
const log = (text) => { document.getElementById("log").textContent += text + "\n"; };
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
ws.onopen = () => log("connected");
ws.onmessage = (event) => log("echo: " + event.data);
ws.onclose = (event) => log("closed: " + event.code + " " + event.reason);
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  ws.send(document.getElementById("message").value);
  log("sent: " + document.getElementById("message").value);
};
</script>
"#;
}
