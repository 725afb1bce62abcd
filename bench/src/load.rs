//! The load generators. Each runs on one thread (a current-thread tokio runtime), one
//! task per connection, closed loop, and prints one [`Record`] as a JSON line.
//!
//! A run is a warm-up (connections open, caches warm, nothing counted), then a
//! measured window; CPU time of the proxy (`--pid`) and of each core is sampled at the
//! window's edges, so a record also says whether the proxy's core was saturated and how
//! busy the machine was.

use crate::http::{head_end, invalid, parse_head, read_more, read_response};
use crate::pacer::Pacer;
use crate::procfs::{self, CoreTimes};
use crate::ws::{self, apply_mask, parse_header, write_header, Rng};
use crate::zero_copy;
use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// One measured run: what the report aggregates. Fields a measure does not produce
/// are absent.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct Record {
    pub measure: String,
    pub target: String,
    pub round: u32,
    pub connections: usize,
    pub duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_us: Option<f64>,
    /// The response body size an `http-body` run asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kib_per_tunnel: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_after_kib: Option<f64>,
    /// CPU time of the proxy's processes over the window, in cores (1.0 = one core busy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_cpu: Option<f64>,
    /// The user-space part of `proxy_cpu`; the rest is the kernel's work for the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_user_cpu: Option<f64>,
    /// CPU of this load generator, in cores.
    pub load_cpu: f64,
    /// CPU of the `--peer-pid` processes (the backend), in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_cpu: Option<f64>,
    /// Busy fraction of each core over the window (everything on the machine).
    pub cores_busy: Vec<f64>,
    /// Softirq fraction of each core over the window (part of `cores_busy`). With
    /// tick-based accounting it is also in the CPU time of the process it ran in.
    #[serde(default)]
    pub cores_softirq: Vec<f64>,
    pub loadavg: f64,
    pub errors: u64,
}

/// Options every measure takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Where to connect (the proxy, or the backend for `direct`).
    #[arg(long)]
    pub addr: SocketAddr,
    /// Name of what is measured, for the report (direct, nginx, haproxy, relay, switchyard).
    #[arg(long, default_value = "direct")]
    pub target: String,
    /// Round number, for the report.
    #[arg(long, default_value_t = 1)]
    pub round: u32,
    /// Processes whose CPU time (and, for `idle`, RSS) is the proxy's; repeat for several.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Processes on the load generator's core (the backend) whose CPU is recorded too.
    #[arg(long = "peer-pid")]
    pub peer_pids: Vec<u32>,
    /// Append the JSON record to this file (it is always printed too).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Options of the timed measures.
#[derive(clap::Args, Clone, Debug)]
pub struct Timing {
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

// Phase 0 (the default) is the warm-up: nothing is counted.
const MEASURE: u8 = 1;
const DONE: u8 = 2;

/// What all tasks of a run share.
#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }
}

/// CPU and time at one edge of the measured window.
struct Edge {
    at: Instant,
    proxy: procfs::CpuTime,
    peers: f64,
    me: f64,
    cores: CoreTimes,
}

impl Edge {
    fn now(common: &Common) -> Edge {
        Edge {
            at: Instant::now(),
            proxy: procfs::cpu_time_all(&common.pids),
            peers: procfs::cpu_seconds_all(&common.peer_pids),
            me: procfs::cpu_seconds(std::process::id()).unwrap_or(0.0),
            cores: CoreTimes::read(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

impl Record {
    fn new(measure: &str, common: &Common, connections: usize) -> Record {
        Record {
            measure: measure.to_owned(),
            target: common.target.clone(),
            round: common.round,
            connections,
            loadavg: procfs::loadavg(),
            ..Record::default()
        }
    }

    fn window(&mut self, common: &Common, start: &Edge, end: &Edge) {
        let seconds = end.at.duration_since(start.at).as_secs_f64();
        self.duration_s = seconds;
        if !common.pids.is_empty() {
            let proxy = end.proxy - start.proxy;
            self.proxy_cpu = Some(proxy.total() / seconds);
            self.proxy_user_cpu = Some(proxy.user / seconds);
        }
        self.load_cpu = (end.me - start.me) / seconds;
        if !common.peer_pids.is_empty() {
            self.backend_cpu = Some((end.peers - start.peers) / seconds);
        }
        self.cores_busy = start.cores.busy_since(&end.cores);
        self.cores_softirq = start.cores.softirq_since(&end.cores);
    }

    fn latencies(&mut self, histogram: &Histogram<u64>) {
        if histogram.is_empty() {
            return;
        }
        let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        self.p50_us = Some(us(0.50));
        self.p99_us = Some(us(0.99));
        self.p999_us = Some(us(0.999));
    }

    /// Prints the record as one JSON line and appends it to `--out`.
    pub fn emit(&self, common: &Common) -> io::Result<()> {
        print_json_line(self, common.out.as_deref())
    }
}

/// Warms up, measures, stops: returns the window's edges.
async fn run_window(shared: &Shared, timing: &Timing, common: &Common) -> (Edge, Edge) {
    tokio::time::sleep(Duration::from_secs_f64(timing.warmup)).await;
    let start = Edge::now(common);
    shared.phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(timing.duration)).await;
    shared.phase.store(DONE, Ordering::Relaxed);
    let end = Edge::now(common);
    (start, end)
}

/// Collects the tasks' histograms, giving stragglers a moment and then aborting them.
async fn collect(
    tasks: Vec<JoinHandle<io::Result<Histogram<u64>>>>,
    shared: &Shared,
) -> Histogram<u64> {
    let mut all = new_histogram();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(give_up, task).await {
            Ok(Ok(Ok(histogram))) => all.add(&histogram).expect("same bounds"),
            Ok(Ok(Err(e))) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("connection failed: {e}");
            }
            Ok(Err(_)) => {} // aborted or panicked
            Err(_) => abort.abort(),
        }
    }
    all
}

// ---------------------------------------------------------------- HTTP keep-alive GET

pub async fn http(common: Common, timing: Timing, body_bytes: u64) -> io::Result<Record> {
    let shared = Arc::new(Shared::default());
    let path = match body_bytes {
        0 => "/".to_owned(),
        n => format!("/big?bytes={n}"),
    };
    let request: Arc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", common.addr)
        .into_bytes()
        .into();
    let tasks: Vec<_> = (0..timing.connections)
        .map(|_| {
            let (shared, request, addr) = (shared.clone(), request.clone(), common.addr);
            tokio::spawn(async move { http_connection(addr, &request, &shared).await })
        })
        .collect();
    let (start, end) = run_window(&shared, &timing, &common).await;
    let histogram = collect(tasks, &shared).await;
    let measure = match body_bytes {
        0 => "http",
        _ => "http-body",
    };
    let mut record = Record::new(measure, &common, timing.connections);
    record.window(&common, &start, &end);
    let requests_per_s = shared.ops.load(Ordering::Relaxed) as f64 / record.duration_s;
    record.requests_per_s = Some(requests_per_s);
    if body_bytes > 0 {
        record.body_bytes = Some(body_bytes);
        record.mb_per_s = Some(requests_per_s * body_bytes as f64 / 1e6);
    }
    record.latencies(&histogram);
    record.errors = shared.errors.load(Ordering::Relaxed);
    Ok(record)
}

async fn http_connection(
    addr: SocketAddr,
    request: &[u8],
    shared: &Shared,
) -> io::Result<Histogram<u64>> {
    let mut stream = connect(addr).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut histogram = new_histogram();
    let mut done = 0;
    loop {
        let sent = Instant::now();
        stream.write_all(request).await?;
        let status = read_response(&mut stream, &mut buf).await?;
        let phase = shared.phase();
        if phase == MEASURE {
            histogram.saturating_record(sent.elapsed().as_nanos() as u64);
            done += 1;
            if status != 200 {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        } else if phase == DONE {
            shared.ops.fetch_add(done, Ordering::Relaxed);
            return Ok(histogram);
        }
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

// ---------------------------------------------------------------- WebSocket

/// Opens a WebSocket: the handshake, checked. Returns the stream and any bytes that
/// came after the 101's head.
pub(crate) async fn ws_connect(
    addr: SocketAddr,
    rng: &mut Rng,
) -> io::Result<(TcpStream, BytesMut)> {
    let mut stream = connect(addr).await?;
    let key = ws::new_key(rng);
    stream
        .write_all(ws::client_request(&addr.to_string(), &key).as_bytes())
        .await?;
    let mut buf = BytesMut::with_capacity(1024);
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        read_more(&mut stream, &mut buf).await?;
    };
    let head = parse_head(&buf[..end])?;
    if head.status != 101 || head.ws_accept.as_deref() != Some(ws::accept_key(&key).as_str()) {
        return Err(invalid(&format!(
            "handshake failed: status {}",
            head.status
        )));
    }
    buf.advance(end);
    Ok((stream, buf))
}

/// A masked client frame carrying `payload`.
pub(crate) fn client_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    masked_frame(ws::OP_BINARY, payload, mask)
}

/// A masked client frame of any opcode.
fn masked_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    write_header(&mut frame, true, opcode, payload.len() as u64, Some(mask));
    let at = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[at..], mask, 0);
    frame
}

/// Reads one whole server frame other than a Ping; returns its header, with the
/// payload in `buf[..len]` (the caller advances). A Ping (a proxy keeping a quiet
/// tunnel alive) is answered with its Pong, as a browser would.
pub(crate) async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> io::Result<ws::Header> {
    loop {
        if let Some((header, n)) = parse_header(buf) {
            let total = n + header.len as usize;
            if buf.len() >= total {
                buf.advance(n);
                if header.opcode != ws::OP_PING {
                    return Ok(header);
                }
                let payload = buf.split_to(header.len as usize);
                let pong = masked_frame(ws::OP_PONG, &payload, [0x5a, 0x17, 0xc3, 0x88]);
                stream.write_all(&pong).await?;
                continue;
            }
        }
        read_more(stream, buf).await?;
    }
}

/// One echo round trip of `payload`: checks the echo and leaves `buf` past it.
pub(crate) async fn echo_once(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    frame: &[u8],
    payload: &[u8],
) -> io::Result<()> {
    stream.write_all(frame).await?;
    let header = read_frame(stream, buf).await?;
    if header.opcode != ws::OP_BINARY
        || header.mask.is_some()
        || buf.get(..payload.len()) != Some(payload)
        || header.len as usize != payload.len()
    {
        return Err(invalid("echo differs from what was sent"));
    }
    buf.advance(payload.len());
    Ok(())
}

/// Echo round trips over `timing.connections` connections. With `rate` 0, closed
/// loop (each connection sends again as soon as its echo is back: the most messages/s,
/// but the round trip then mostly measures whichever core saturates first). With a
/// `rate`, the connections together send that many messages/s (each on its own
/// schedule), so the round trip measures the proxy's latency at a load every target
/// sustains.
pub async fn ws_echo(common: Common, timing: Timing, size: usize, rate: f64) -> io::Result<Record> {
    let shared = Arc::new(Shared::default());
    let connections = timing.connections.max(1);
    let period = (rate > 0.0).then(|| Duration::from_secs_f64(connections as f64 / rate));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let (shared, addr) = (shared.clone(), common.addr);
            // Spread the first sends over one period.
            let first = period.map(|p| p.mul_f64(i as f64 / connections as f64));
            tokio::spawn(async move {
                echo_connection(addr, size, i as u64, period.zip(first), &shared).await
            })
        })
        .collect();
    let (start, end) = run_window(&shared, &timing, &common).await;
    let histogram = collect(tasks, &shared).await;
    let measure = if rate > 0.0 { "ws-latency" } else { "ws-echo" };
    let mut record = Record::new(measure, &common, timing.connections);
    record.window(&common, &start, &end);
    record.messages_per_s = Some(shared.ops.load(Ordering::Relaxed) as f64 / record.duration_s);
    record.latencies(&histogram);
    record.errors = shared.errors.load(Ordering::Relaxed);
    Ok(record)
}

async fn echo_connection(
    addr: SocketAddr,
    size: usize,
    salt: u64,
    schedule: Option<(Duration, Duration)>,
    shared: &Shared,
) -> io::Result<Histogram<u64>> {
    let mut rng = Rng::from_time(salt);
    let (mut stream, mut buf) = ws_connect(addr, &mut rng).await?;
    let mask = (rng.next() as u32).to_ne_bytes();
    let payload: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_add(salt as u8))
        .collect();
    let frame = client_frame(&payload, mask);
    let mut histogram = new_histogram();
    let mut done = 0;
    let pacer = schedule
        .map(|(period, first)| Pacer::new(first, period))
        .transpose()?;
    loop {
        if let Some(pacer) = &pacer {
            pacer.tick().await?;
        }
        // Timed from the actual send, which a late echo delays past its tick.
        let sent = Instant::now();
        echo_once(&mut stream, &mut buf, &frame, &payload).await?;
        match shared.phase() {
            MEASURE => {
                histogram.saturating_record(sent.elapsed().as_nanos() as u64);
                done += 1;
            }
            DONE => {
                shared.ops.fetch_add(done, Ordering::Relaxed);
                return Ok(histogram);
            }
            _ => {}
        }
    }
}

pub async fn ws_bulk(
    common: Common,
    timing: Timing,
    size: usize,
    in_flight: usize,
) -> io::Result<Record> {
    let shared = Arc::new(Shared::default());
    let mut tasks = Vec::new();
    for i in 0..timing.connections {
        let (shared, addr) = (shared.clone(), common.addr);
        tasks.push(tokio::spawn(async move {
            bulk_connection(addr, size, in_flight, i as u64, shared).await
        }));
    }
    let (start, end) = run_window(&shared, &timing, &common).await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        if let Ok(Err(e)) = task.await {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("connection failed: {e}");
        }
    }
    let mut record = Record::new("ws-bulk", &common, timing.connections);
    record.window(&common, &start, &end);
    let seconds = record.duration_s;
    record.messages_per_s = Some(shared.ops.load(Ordering::Relaxed) as f64 / seconds);
    record.mb_per_s = Some(shared.bytes.load(Ordering::Relaxed) as f64 / seconds / 1e6);
    record.errors = shared.errors.load(Ordering::Relaxed);
    Ok(record)
}

/// Keeps `in_flight` messages of `size` bytes on their way: a writer sends whenever a
/// permit is free, the reader frees one per echo received. Mask key zero: masking is
/// the identity, so neither this process nor the backend spends its core on XOR (the
/// proxies relay the payload without looking at it either way). The payload is sent
/// and dropped without being copied (see [`zero_copy`]); each echo's header is read
/// and checked.
async fn bulk_connection(
    addr: SocketAddr,
    size: usize,
    in_flight: usize,
    salt: u64,
    shared: Arc<Shared>,
) -> io::Result<()> {
    let mut rng = Rng::from_time(salt);
    let (stream, mut buf) = ws_connect(addr, &mut rng).await?;
    let stream = Arc::new(stream);
    let message = zero_copy::Message::new(&client_frame(&vec![0x5A; size], [0; 4]))?;
    let permits = Arc::new(Semaphore::new(in_flight));
    let (writer_permits, writer) = (permits.clone(), stream.clone());
    let writer_task: JoinHandle<io::Result<()>> = tokio::spawn(async move {
        loop {
            let permit = writer_permits.acquire().await.map_err(io::Error::other)?;
            permit.forget();
            message.send(&writer).await?;
        }
    });
    let _abort_writer = AbortOnDrop(writer_task);
    let (pipe, sink) = (zero_copy::Pipe::new()?, zero_copy::sink()?);
    // The echo's header: unmasked, with the length in 0, 2 or 8 more bytes.
    let header_len = match size {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    };
    loop {
        while buf.len() < header_len {
            // No further than the header: the payload behind it is not to be copied.
            let mut more = [0u8; 10];
            let n = read_some(&stream, &mut more[..header_len - buf.len()]).await?;
            buf.extend_from_slice(&more[..n]);
        }
        let Some((header, n)) = parse_header(&buf) else {
            return Err(invalid("unreadable frame header in bulk echo"));
        };
        if n != header_len || header.opcode != ws::OP_BINARY || header.len as usize != size {
            return Err(invalid("unexpected frame in bulk echo"));
        }
        buf.advance(n);
        // Payload that came with the handshake's bytes, if any, then the rest.
        let here = buf.len().min(size);
        buf.advance(here);
        pipe.discard(&stream, &sink, (size - here) as u64).await?;
        permits.add_permits(1);
        if shared.phase() == MEASURE {
            shared.ops.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(size as u64, Ordering::Relaxed);
        }
    }
}

/// Reads at least one byte into `into`; an error at EOF.
async fn read_some(stream: &TcpStream, into: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(into) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---------------------------------------------------------------- idle tunnels

/// Opens `tunnels` WebSockets (each checked with one 32-byte echo), waits `settle`
/// seconds, and reports how much the proxy's RSS grew per tunnel.
pub async fn idle(
    common: Common,
    tunnels: usize,
    concurrency: usize,
    settle: f64,
) -> io::Result<Record> {
    if common.pids.is_empty() {
        return Err(io::Error::other("idle needs --pid of the proxy"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = procfs::rss_all(&common.pids)?;
    let start = Edge::now(&common);
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(tunnels);
    for i in 0..tunnels {
        let (gate, addr) = (gate.clone(), common.addr);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.map_err(io::Error::other)?;
            let mut rng = Rng::from_time(i as u64);
            let (mut stream, mut buf) = ws_connect(addr, &mut rng).await?;
            let payload = [0x42u8; 32];
            let frame = client_frame(&payload, (rng.next() as u32).to_ne_bytes());
            echo_once(&mut stream, &mut buf, &frame, &payload).await?;
            Ok::<_, io::Error>(stream)
        }));
    }
    let mut open = Vec::with_capacity(tunnels);
    let mut errors = 0u64;
    for task in tasks {
        match task.await {
            Ok(Ok(stream)) => open.push(stream),
            Ok(Err(e)) => {
                if errors == 0 {
                    eprintln!("tunnel failed: {e}");
                }
                errors += 1;
            }
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after = procfs::rss_all(&common.pids)?;
    let end = Edge::now(&common);
    let mut record = Record::new("idle", &common, open.len());
    record.window(&common, &start, &end);
    record.rss_before_kib = Some(before as f64 / 1024.0);
    record.rss_after_kib = Some(after as f64 / 1024.0);
    record.kib_per_tunnel =
        Some((after as f64 - before as f64) / 1024.0 / open.len().max(1) as f64);
    record.errors = errors;
    drop(open);
    Ok(record)
}

/// Prints `record` as one JSON line, and appends the line to `out` if given (the
/// raw file every measure and scenario adds to).
pub(crate) fn print_json_line(
    record: &impl serde::Serialize,
    out: Option<&std::path::Path>,
) -> io::Result<()> {
    let line = serde_json::to_string(record).map_err(io::Error::other)?;
    println!("{line}");
    if let Some(path) = out {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn read_frame_answers_a_ping_with_its_pong_and_returns_the_next_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut frames = Vec::new();
            write_header(&mut frames, true, ws::OP_PING, 4, None);
            frames.extend_from_slice(b"beat");
            write_header(&mut frames, true, ws::OP_BINARY, 2, None);
            frames.extend_from_slice(b"hi");
            socket.write_all(&frames).await.unwrap();
            let mut pong = vec![0u8; 2 + 4 + 4];
            socket.read_exact(&mut pong).await.unwrap();
            pong
        });
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut buf = BytesMut::new();
        let header = read_frame(&mut stream, &mut buf).await.unwrap();
        assert_eq!((header.opcode, header.len), (ws::OP_BINARY, 2));
        assert_eq!(&buf[..2], b"hi");
        let pong = server.await.unwrap();
        let (header, n) = parse_header(&pong).expect("a whole Pong header");
        assert_eq!((header.opcode, header.len, n), (ws::OP_PONG, 4, 6));
        let mut payload = pong[n..].to_vec();
        apply_mask(
            &mut payload,
            header.mask.expect("a client frame is masked"),
            0,
        );
        assert_eq!(payload, b"beat");
    }
}
