//! Backends the proxy forwards to.
//!
//! [`Backend`] is a raw-TCP server that records, per accepted connection, every byte it
//! received and sent in order (so a test can prove that a rejected request reached it
//! not at all, or that tunnel bytes arrived only after its `101`), and answers with a
//! scripted behaviour: a handler that gets the connection.
//!
//! [`WsEcho`] is a real WebSocket server (tokio-tungstenite) that echoes messages and
//! Close frames.

use crate::http::{self, Conn, Head, Recorder, Request};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// One thing that happened on a backend connection, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bytes read from the proxy.
    Recv(Vec<u8>),
    /// Bytes the backend wrote to the proxy.
    Sent(Vec<u8>),
    /// The proxy shut down its write half (or closed).
    Eof,
}

/// Everything recorded on one backend connection.
#[derive(Clone, Debug, Default)]
pub struct ConnLog {
    /// Reads, writes and EOF in order.
    pub events: Vec<Event>,
    /// Requests the handler parsed completely.
    pub requests: Vec<Request>,
    /// The handler returned (the connection is over from the backend's side).
    pub finished: bool,
    /// The error the handler returned, if any.
    pub error: Option<String>,
}

impl ConnLog {
    /// Every byte received, concatenated.
    pub fn received(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Recv(b) => Some(b.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// Bytes received before the first write of the backend, and after it.
    pub fn received_before_and_after_first_send(&self) -> (Vec<u8>, Vec<u8>) {
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut sent = false;
        for e in &self.events {
            match e {
                Event::Sent(_) => sent = true,
                Event::Recv(b) if sent => after.extend_from_slice(b),
                Event::Recv(b) => before.extend_from_slice(b),
                Event::Eof => {}
            }
        }
        (before, after)
    }

    /// Whether the proxy's EOF was seen.
    pub fn saw_eof(&self) -> bool {
        self.events.contains(&Event::Eof)
    }
}

#[derive(Default)]
struct LogCell(Mutex<ConnLog>);

impl Recorder for LogCell {
    fn received(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .events
            .push(Event::Recv(bytes.to_vec()));
    }
    fn sent(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .events
            .push(Event::Sent(bytes.to_vec()));
    }
    fn eof(&self) {
        self.0.lock().unwrap().events.push(Event::Eof);
    }
}

/// The connection a backend handler gets: a recorded [`Conn`].
pub struct BackendConn {
    /// The recorded connection to the proxy.
    pub conn: Conn,
    log: Arc<LogCell>,
}

impl BackendConn {
    /// Reads one whole request and records it; `Ok(None)` at a clean EOF.
    pub async fn read_request(&mut self) -> io::Result<Option<Request>> {
        let req = self.conn.read_request().await?;
        if let Some(r) = &req {
            self.log.0.lock().unwrap().requests.push(r.clone());
        }
        Ok(req)
    }

    /// Reads a head only (for handlers that answer before the body, e.g. 100-continue).
    pub async fn read_head(&mut self) -> io::Result<Option<Head>> {
        self.conn.read_head().await
    }

    /// Writes bytes to the proxy.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.conn.write(bytes).await
    }

    /// Reads and discards until EOF (or reset); returns what arrived.
    pub async fn drain_to_eof(&mut self) -> Vec<u8> {
        let mut all = self.conn.take_buffered();
        loop {
            match self.conn.fill().await {
                Ok(0) | Err(_) => break,
                Ok(_) => all.extend(self.conn.take_buffered()),
            }
        }
        all
    }

    /// Keeps reading (recording) for `quiet` after the last byte, then returns what arrived.
    pub async fn read_for(&mut self, quiet: Duration) -> Vec<u8> {
        let mut all = self.conn.take_buffered();
        while let Ok(Ok(n)) = tokio::time::timeout(quiet, self.conn.fill()).await {
            if n == 0 {
                break;
            }
            all.extend(self.conn.take_buffered());
        }
        all
    }

    /// Echoes every byte back until EOF, then shuts down the write half.
    pub async fn echo_until_eof(&mut self) -> io::Result<()> {
        let pending = self.conn.take_buffered();
        if !pending.is_empty() {
            self.write(&pending).await?;
        }
        loop {
            if self.conn.fill().await? == 0 {
                break;
            }
            let bytes = self.conn.take_buffered();
            self.write(&bytes).await?;
        }
        self.conn.shutdown_write().await
    }
}

/// A handler runs once per accepted connection.
pub type Handler = Arc<dyn Fn(BackendConn) -> BoxFuture<'static, io::Result<()>> + Send + Sync>;

/// A recording raw-TCP backend; see the module docs.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<Arc<LogCell>>>>,
    accept: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What an HTTP backend does with one request.
pub enum Reply {
    /// Write these bytes (a whole response, or several) and read the next request.
    Bytes(Vec<u8>),
    /// Write these bytes, then close the connection.
    BytesThenClose(Vec<u8>),
    /// Write these bytes, wait, then read the next request (a slow backend).
    Delayed(Duration, Vec<u8>),
    /// Close without answering.
    Close,
    /// Never answer; keep reading (and recording) until the proxy closes.
    Silent,
}

impl Backend {
    /// Starts a backend running `handler` for every connection.
    pub async fn start<F, Fut>(handler: F) -> Backend
    where
        F: Fn(BackendConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |c| Box::pin(handler(c)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let logs: Arc<Mutex<Vec<Arc<LogCell>>>> = Arc::default();
        let logs2 = logs.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let log = Arc::new(LogCell::default());
                logs2.lock().unwrap().push(log.clone());
                let conn = BackendConn {
                    conn: Conn::recorded(stream, log.clone()),
                    log: log.clone(),
                };
                let fut = handler(conn);
                tokio::spawn(async move {
                    let result = fut.await;
                    let mut l = log.0.lock().unwrap();
                    l.finished = true;
                    l.error = result.err().map(|e| e.to_string());
                });
            }
        });
        Backend { addr, logs, accept }
    }

    /// An HTTP/1.1 backend: reads requests one after another on each connection and
    /// answers each with `reply(&request)`.
    pub async fn http<F>(reply: F) -> Backend
    where
        F: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        let reply = Arc::new(reply);
        Backend::start(move |mut c| {
            let reply = reply.clone();
            async move {
                while let Some(req) = c.read_request().await? {
                    match reply(&req) {
                        Reply::Bytes(b) => c.write(&b).await?,
                        Reply::BytesThenClose(b) => {
                            c.write(&b).await?;
                            return Ok(());
                        }
                        Reply::Delayed(d, b) => {
                            tokio::time::sleep(d).await;
                            c.write(&b).await?;
                        }
                        Reply::Close => return Ok(()),
                        Reply::Silent => {
                            c.drain_to_eof().await;
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }
        })
        .await
    }

    /// Answers every request with `200 OK` and the body `<METHOD> <target>`.
    pub async fn ok() -> Backend {
        Backend::http(|r| Reply::Bytes(http::ok(format!("{} {}", r.method, r.target).as_bytes())))
            .await
    }

    /// Answers every request with `200 OK` echoing the request body.
    pub async fn echo_body() -> Backend {
        Backend::http(|r| Reply::Bytes(http::ok(&r.body))).await
    }

    /// Answers every request with `200 OK` and the hex SHA-256 of the request body.
    pub async fn sha256_body() -> Backend {
        Backend::http(|r| Reply::Bytes(http::ok(http::sha256_hex(&r.body).as_bytes()))).await
    }

    /// Answers every request with these fixed bytes.
    pub async fn fixed(bytes: &[u8]) -> Backend {
        let bytes = bytes.to_vec();
        Backend::http(move |_| Reply::Bytes(bytes.clone())).await
    }

    /// Reads requests and never answers.
    pub async fn silent() -> Backend {
        Backend::http(|_| Reply::Silent).await
    }

    /// Closes every connection as soon as it is accepted.
    pub async fn close_immediately() -> Backend {
        Backend::start(|_c| async { Ok(()) }).await
    }

    /// Honours `Expect: 100-continue`: sends the interim `100 Continue` after the head,
    /// then reads the body and echoes it in a `200`.
    pub async fn continue_100() -> Backend {
        Backend::start(|mut c| async move {
            while let Some(head) = c.read_head().await? {
                if head.has_token("expect", "100-continue") {
                    c.write(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                }
                let body = c.conn.read_request_body(&head).await?;
                c.write(&http::ok(&body)).await?;
            }
            Ok(())
        })
        .await
    }

    /// Answers with a body delimited by closing the connection (no length, no chunking).
    pub async fn read_until_close(body: Vec<u8>) -> Backend {
        Backend::http(move |_| {
            let mut b =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
            b.extend_from_slice(&body);
            Reply::BytesThenClose(b)
        })
        .await
    }

    /// Answers an upgrade request with a `101` built by `response(&request)`, then
    /// echoes every tunnel byte until EOF. Before sending the `101` it keeps reading for
    /// `hold` so that bytes the proxy forwarded too early are recorded *before* it.
    pub async fn upgrade_then_echo<F>(hold: Duration, response: F) -> Backend
    where
        F: Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
    {
        let response = Arc::new(response);
        Backend::start(move |mut c| {
            let response = response.clone();
            async move {
                let Some(req) = c.read_request().await? else {
                    return Ok(());
                };
                if !hold.is_zero() {
                    // Anything that arrives now arrived before the 101: record it.
                    let early = c.read_for(hold).await;
                    if !early.is_empty() {
                        // put it back so that it is echoed like tunnel bytes
                        c.write(&response(&req)).await?;
                        c.write(&early).await?;
                        return c.echo_until_eof().await;
                    }
                }
                c.write(&response(&req)).await?;
                c.echo_until_eof().await
            }
        })
        .await
    }

    /// A correct WebSocket `101` for `req`, then echo.
    pub async fn websocket_raw_echo(hold: Duration) -> Backend {
        Backend::upgrade_then_echo(hold, switching_protocols).await
    }

    /// Serves both: WebSocket upgrades get a correct `101` and a WebSocket echo
    /// (tungstenite), other requests `200 OK` with the body `<METHOD> <target>`.
    pub async fn http_and_websocket() -> Backend {
        Backend::start(|mut c| async move {
            while let Some(req) = c.read_request().await? {
                if req.head.has_token("upgrade", "websocket") {
                    c.write(&switching_protocols(&req)).await?;
                    let (stream, rest) = c.conn.into_parts();
                    let mut ws = tokio_tungstenite::WebSocketStream::from_partially_read(
                        stream,
                        rest,
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() || msg.is_binary() {
                            ws.send(msg).await.map_err(io::Error::other)?;
                        }
                    }
                    return Ok(());
                }
                c.write(&http::ok(
                    format!("{} {}", req.method, req.target).as_bytes(),
                ))
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// Snapshots of every connection accepted so far, in accept order.
    pub fn connections(&self) -> Vec<ConnLog> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.0.lock().unwrap().clone())
            .collect()
    }

    /// Every byte received on every connection.
    pub fn received_all(&self) -> Vec<u8> {
        self.connections()
            .iter()
            .flat_map(|c| c.received())
            .collect()
    }

    /// Every complete request parsed, in order, across connections.
    pub fn requests(&self) -> Vec<Request> {
        self.connections()
            .into_iter()
            .flat_map(|c| c.requests)
            .collect()
    }

    /// Waits until every accepted connection's handler finished, or `max` passed.
    /// Returns whether they all finished.
    pub async fn settle(&self, max: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.connections().iter().all(|c| c.finished) {
                return true;
            }
            if start.elapsed() >= max {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `n` connections were accepted, or `max` passed.
    pub async fn wait_connections(&self, n: usize, max: Duration) -> bool {
        let start = Instant::now();
        while self.connections().len() < n {
            if start.elapsed() >= max {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// `101 Switching Protocols` answering a WebSocket upgrade request correctly.
pub fn switching_protocols(req: &Request) -> Vec<u8> {
    let key = req.header("sec-websocket-key").unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// A raw WebSocket upgrade request for `/ws` (fixed key `dGhlIHNhbXBsZSBub25jZQ==`).
pub fn upgrade_request(host: &str) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// An upgrade request to an opaque (non-WebSocket) protocol, `echo-test/1`, whose
/// tunnel the proxy relays byte for byte.
pub fn opaque_upgrade_request(host: &str) -> Vec<u8> {
    format!(
        "GET /raw HTTP/1.1\r\nHost: {host}\r\nUpgrade: echo-test/1\r\nConnection: upgrade\r\n\r\n"
    )
    .into_bytes()
}

/// The `101` accepting [`opaque_upgrade_request`].
pub fn opaque_switching_protocols(_req: &Request) -> Vec<u8> {
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo-test/1\r\n\r\n"
        .to_vec()
}

/// The `Sec-WebSocket-Accept` for [`upgrade_request`]'s key (RFC 6455 §1.3's example).
pub const UPGRADE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What the WebSocket echo server saw.
#[derive(Clone, Debug, Default)]
pub struct WsLog {
    /// Heads of the upgrade requests it accepted.
    pub handshakes: Vec<Vec<(String, String)>>,
    /// Close frames received (code, reason); `None` for a Close without a body.
    pub closes: Vec<Option<(u16, String)>>,
    /// Messages received (text and binary), count only.
    pub messages: usize,
    /// Payloads of the Pings received.
    pub pings: Vec<Vec<u8>>,
    /// Payloads of the Pongs received.
    pub pongs: Vec<Vec<u8>>,
    /// Connections that ended with an error (not a clean close).
    pub errors: Vec<String>,
    /// TCP connections accepted.
    pub accepted: usize,
    /// Accepted connections whose handler has ended and whose socket is closed.
    pub ended: usize,
}

impl WsLog {
    /// Connections accepted and not yet ended (sockets the server still holds).
    pub fn open(&self) -> usize {
        self.accepted - self.ended
    }
}

/// A WebSocket echo server: echoes Text and Binary messages, answers a Close with the
/// same code and reason (tungstenite's reply), and on the text message
/// `close:<code>:<reason>` starts the closing handshake itself.
pub struct WsEcho {
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<WsLog>>,
    accept: JoinHandle<()>,
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl WsEcho {
    /// Starts the server.
    pub async fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind ws backend");
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<WsLog>> = Arc::default();
        let log2 = log.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log2.clone();
                log.lock().unwrap().accepted += 1;
                tokio::spawn(async move {
                    // `serve_ws` owns the stream: it is closed when it returns
                    let result = serve_ws(stream, log.clone()).await;
                    let mut l = log.lock().unwrap();
                    if let Err(e) = result {
                        l.errors.push(e.to_string());
                    }
                    l.ended += 1;
                });
            }
        });
        WsEcho { addr, log, accept }
    }

    /// What it saw so far.
    pub fn log(&self) -> WsLog {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `pred` holds on the log, or `max` passed; returns the last log.
    pub async fn wait_for(&self, max: Duration, pred: impl Fn(&WsLog) -> bool) -> WsLog {
        let start = Instant::now();
        loop {
            let log = self.log();
            if pred(&log) || start.elapsed() >= max {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// How many body bytes each `/large` response of [`Backend::large_body`] managed to
/// write so far, one counter per response in the order they started.
#[derive(Clone, Default)]
pub struct LargeWrites(Arc<Mutex<Vec<Arc<AtomicU64>>>>);

impl LargeWrites {
    /// Bytes of body written so far, per `/large` response.
    pub fn written(&self) -> Vec<u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

impl Backend {
    /// `GET /large…` is answered with `200` and a body of `body_len` bytes, written in
    /// 64 KiB pieces for as long as the proxy takes them (what was written is counted in
    /// the [`LargeWrites`]); every other request gets `200` with `<METHOD> <target>`.
    /// The accepted sockets' send buffers are set to `send_buffer` bytes (if given) so
    /// that what the kernel holds on the backend's side is small and known.
    pub async fn large_body(body_len: u64, send_buffer: Option<u32>) -> (Backend, LargeWrites) {
        let writes = LargeWrites::default();
        let registry = writes.clone();
        let backend = Backend::start(move |mut c| {
            let registry = registry.clone();
            async move {
                if let Some(size) = send_buffer {
                    crate::set_send_buffer(c.conn.stream(), size)?;
                }
                while let Some(req) = c.read_request().await? {
                    if !req.target.starts_with("/large") {
                        c.write(&http::ok(
                            format!("{} {}", req.method, req.target).as_bytes(),
                        ))
                        .await?;
                        continue;
                    }
                    let written = Arc::new(AtomicU64::new(0));
                    registry.0.lock().unwrap().push(written.clone());
                    c.write(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\n\r\n").as_bytes(),
                    )
                    .await?;
                    let chunk = vec![b'z'; 64 * 1024];
                    let mut left = body_len;
                    while left > 0 {
                        let piece = &chunk[..chunk.len().min(left as usize)];
                        // not through `c.write`: the body is not recorded
                        let n = tokio::io::AsyncWriteExt::write(c.conn.stream(), piece).await?;
                        if n == 0 {
                            return Err(io::ErrorKind::WriteZero.into());
                        }
                        written.fetch_add(n as u64, Ordering::Relaxed);
                        left -= n as u64;
                    }
                }
                Ok(())
            }
        })
        .await;
        (backend, writes)
    }
}

/// A WebSocket (and HTTP) backend that can die as a killed process does: [`Mortal::kill`]
/// closes its listener and every connection at once with a TCP reset (`SO_LINGER` 0),
/// without a WebSocket Close or an HTTP answer.
///
/// WebSocket upgrades get a correct `101` and a tungstenite echo; any other request is
/// read and held unanswered (to have a request in flight when the backend dies).
pub struct Mortal {
    /// Where it listens (until killed).
    pub addr: SocketAddr,
    kill: tokio::sync::watch::Sender<bool>,
    counts: Arc<MortalCounts>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct MortalCounts {
    /// WebSocket tunnels established (after the 101).
    tunnels: AtomicUsize,
    /// Plain requests read and held.
    held: AtomicUsize,
    /// Connection tasks still holding their socket.
    live: AtomicUsize,
}

impl Drop for Mortal {
    fn drop(&mut self) {
        let _ = self.kill.send(true);
        self.accept.abort();
    }
}

impl Mortal {
    /// Starts the backend.
    pub async fn start() -> Mortal {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mortal backend");
        let addr = listener.local_addr().unwrap();
        let (kill, killed) = tokio::sync::watch::channel(false);
        let counts = Arc::new(MortalCounts::default());
        let counts2 = counts.clone();
        let accept = tokio::spawn(async move {
            let mut dead = killed.clone();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = dead.wait_for(|k| *k) => return, // drops the listener
                };
                let _ = stream.set_nodelay(true);
                // every close of this socket is now a reset
                let _ = stream.set_zero_linger();
                counts2.live.fetch_add(1, Ordering::SeqCst);
                let counts = counts2.clone();
                let mut dead = killed.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve_mortal(stream, counts.clone()) => {}
                        _ = dead.wait_for(|k| *k) => {}
                    }
                    counts.live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Mortal {
            addr,
            kill,
            counts,
            accept,
        }
    }

    /// WebSocket tunnels established so far.
    pub fn tunnels(&self) -> usize {
        self.counts.tunnels.load(Ordering::SeqCst)
    }

    /// Plain requests read and held so far.
    pub fn held(&self) -> usize {
        self.counts.held.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds, or `max` passed; returns whether it held.
    pub async fn wait(&self, max: Duration, pred: impl Fn(&Mortal) -> bool) -> bool {
        let start = Instant::now();
        while !pred(self) {
            if start.elapsed() >= max {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Kills the backend: the listener is closed and every connection reset. Returns
    /// once every socket is closed (at most 2 s; whether they all were).
    pub async fn kill(&self) -> bool {
        let _ = self.kill.send(true);
        self.accept.abort();
        self.wait(Duration::from_secs(2), |m| {
            m.counts.live.load(Ordering::SeqCst) == 0
        })
        .await
    }
}

async fn serve_mortal(stream: tokio::net::TcpStream, counts: Arc<MortalCounts>) {
    let mut c = Conn::new(stream);
    let Ok(Some(req)) = c.read_request().await else {
        return;
    };
    if !req.head.has_token("upgrade", "websocket") {
        counts.held.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    if c.write(&switching_protocols(&req)).await.is_err() {
        return;
    }
    let (stream, rest) = c.into_parts();
    let mut ws = tokio_tungstenite::WebSocketStream::from_partially_read(
        stream,
        rest,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        None,
    )
    .await;
    counts.tunnels.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

#[allow(clippy::result_large_err)] // the handshake callback's signature is tungstenite's
async fn serve_ws(
    stream: tokio::net::TcpStream,
    log: Arc<Mutex<WsLog>>,
) -> Result<(), Box<dyn std::error::Error>> {
    use tokio_tungstenite::tungstenite::handshake::server::{
        Request as WsRequest, Response as WsResponse,
    };
    let log_hs = log.clone();
    let callback = move |req: &WsRequest, resp: WsResponse| {
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        log_hs.lock().unwrap().handshakes.push(headers);
        Ok(resp)
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    let mut ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Text(t) => {
                log.lock().unwrap().messages += 1;
                if let Some(rest) = t.as_str().strip_prefix("close:") {
                    let (code, reason) = rest.split_once(':').unwrap_or((rest, ""));
                    let code: u16 = code.parse().unwrap_or(1000);
                    ws.close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.to_string().into(),
                    }))
                    .await?;
                } else {
                    ws.send(Message::Text(t)).await?;
                }
            }
            Message::Binary(b) => {
                log.lock().unwrap().messages += 1;
                ws.send(Message::Binary(b)).await?;
            }
            Message::Close(frame) => {
                // tungstenite queues the reply (same code and reason) itself; it is
                // flushed by the next poll, which then ends the stream.
                log.lock()
                    .unwrap()
                    .closes
                    .push(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            // tungstenite answers Pings itself
            Message::Ping(p) => log.lock().unwrap().pings.push(p.to_vec()),
            Message::Pong(p) => log.lock().unwrap().pongs.push(p.to_vec()),
            Message::Frame(_) => {}
        }
    }
    Ok(())
}
