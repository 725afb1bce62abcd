//! The soak and fault harness (issue 11): one subcommand per scenario, each run
//! against one proxy, each printing (and appending to `--out`) one JSON [`Record`] with
//! the figures measured and a pass/fail per target. `bench/soak.sh` starts the proxies
//! exactly as `bench/run.sh` does (same backend, same pinning) and runs every scenario
//! against switchyard, nginx and HAProxy; `soak report` turns the records into the
//! side-by-side table.
//!
//! Every wait here is bounded: a proxy that never answers, never closes or never
//! recovers shows up as a figure ("not closed", "no answer") and a failed target, not
//! as a harness that hangs.

mod backend_death;
mod churn;
mod fd_limit;
mod malformed;
mod many;
mod normal;
mod report;
mod slow_readers;
mod slowloris;
mod unreachable;

use crate::http::{head_end, invalid, parse_head};
use crate::load;
use crate::procfs;
use crate::ws::{self, write_header};
use bytes::{Buf, BytesMut};
use clap::Subcommand;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The scenarios, and the report.
#[derive(Subcommand)]
pub enum Soak {
    /// WebSocket open → one 32 B echo → close handshake, many times over, from a pool of
    /// workers: failures, open fds and RSS before/after, cycles/s.
    Churn {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: churn::Options,
    },
    /// As many concurrent WebSocket tunnels as the proxy's open-file limit allows, every
    /// one echoing: RSS and kernel socket memory per tunnel.
    Many {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: many::Options,
    },
    /// Slowloris: connections sending a request head one byte per second, while normal
    /// clients measure their rate; when (and how) the proxy closes the slow ones.
    Slowloris {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: slowloris::Options,
    },
    /// Clients that request a large response and never read it, while normal clients
    /// measure their rate: the proxy's RSS against its flow-control bound.
    SlowReaders {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: slow_readers::Options,
    },
    /// Open tunnels and requests in flight, then the backend (a child process started
    /// here) is killed with SIGKILL: what each client receives, and when.
    BackendDeath {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: backend_death::Options,
    },
    /// Upstreams refused, blackholed (accepts, never answers) and unreachable (SYNs
    /// dropped by a full accept queue): the status and the time to it.
    Unreachable {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: unreachable::Options,
    },
    /// The proxy runs under a low open-file limit and gets more connections than it can
    /// hold: accept-error logging, CPU at the limit, tunnels, recovery.
    FdLimit {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: fd_limit::Options,
    },
    /// Connections of random bytes and truncated heads: each must get a 400 or a close,
    /// the backend nothing, and RSS must come back.
    Malformed {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        options: malformed::Options,
    },
    /// The side-by-side table (markdown) from the scenarios' JSON lines.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        markdown: PathBuf,
        /// A file whose text goes under the title (how and where it was run).
        #[arg(long)]
        notes: Option<PathBuf>,
    },
}

/// Runs one subcommand.
pub fn run(soak: Soak) -> io::Result<()> {
    let (common, record) = match soak {
        Soak::Report {
            input,
            markdown,
            notes,
        } => {
            let notes = notes.map(std::fs::read_to_string).transpose()?;
            let text = report::run(&input, &markdown, notes.as_deref())?;
            print!("{text}");
            return Ok(());
        }
        Soak::Churn { common, options } => {
            let record = crate::block_on(churn::run(&common, options));
            (common, record)
        }
        Soak::Many { common, options } => {
            let record = crate::block_on(many::run(&common, options));
            (common, record)
        }
        Soak::Slowloris { common, options } => {
            let record = crate::block_on(slowloris::run(&common, options));
            (common, record)
        }
        Soak::SlowReaders { common, options } => {
            let record = crate::block_on(slow_readers::run(&common, options));
            (common, record)
        }
        Soak::BackendDeath { common, options } => {
            let record = crate::block_on(backend_death::run(&common, options));
            (common, record)
        }
        Soak::Unreachable { common, options } => {
            let record = crate::block_on(unreachable::run(&common, options));
            (common, record)
        }
        Soak::FdLimit { common, options } => {
            let record = crate::block_on(fd_limit::run(&common, options));
            (common, record)
        }
        Soak::Malformed { common, options } => {
            let record = crate::block_on(malformed::run(&common, options));
            (common, record)
        }
    };
    let mut record = record?;
    record.notes.splice(0..0, common.notes.iter().cloned());
    record.emit(&common)
}

/// Options every scenario takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// The proxy's listening address.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Name of the proxy, for the report (nginx, haproxy, switchyard).
    #[arg(long, default_value = "switchyard")]
    pub target: String,
    /// Processes whose RSS, CPU and open fds are the proxy's (nginx: the worker).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Append the JSON record to this file (it is always printed too).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A note to carry in the record (how this proxy was set up for the scenario);
    /// repeat for several.
    #[arg(long = "note")]
    pub notes: Vec<String>,
}

impl Common {
    /// The proxy's processes; the scenarios that read its RSS, CPU or fds need them.
    pub fn proxy(&self) -> io::Result<Proxy> {
        if self.pids.is_empty() {
            return Err(io::Error::other("this scenario needs --pid of the proxy"));
        }
        Ok(Proxy {
            pids: self.pids.clone(),
        })
    }
}

/// What a scenario reads about the proxy, from /proc.
#[derive(Clone, Debug)]
pub struct Proxy {
    pids: Vec<u32>,
}

impl Proxy {
    /// VmRSS over all its processes, in KiB.
    pub fn rss_kib(&self) -> io::Result<f64> {
        Ok(procfs::rss_all(&self.pids)? as f64 / 1024.0)
    }

    /// Open file descriptors over all its processes.
    pub fn fds(&self) -> io::Result<usize> {
        self.pids.iter().map(|&pid| procfs::open_fds(pid)).sum()
    }

    /// CPU seconds so far (user + system).
    pub fn cpu(&self) -> f64 {
        procfs::cpu_seconds_all(&self.pids)
    }

    /// The smallest soft open-file limit of its processes.
    pub fn nofile_limit(&self) -> Option<u64> {
        self.pids
            .iter()
            .filter_map(|&pid| procfs::nofile_limit(pid))
            .min()
    }

    /// Whether every process is still there.
    pub fn alive(&self) -> bool {
        self.pids
            .iter()
            .all(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Its CPU use over the next `seconds`, in cores (1.0 = one core busy).
    pub async fn cpu_over(&self, seconds: f64) -> f64 {
        let (start, before) = (std::time::Instant::now(), self.cpu());
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        (self.cpu() - before) / start.elapsed().as_secs_f64()
    }
}

// ---------------------------------------------------------------- the record

/// One scenario run against one proxy.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Record {
    pub scenario: String,
    pub target: String,
    /// What the scenario was asked to do (counts, timeouts).
    pub settings: Figures,
    /// What was measured, in the order the report shows it.
    pub figures: Figures,
    /// The targets, each checked against this run.
    pub checks: Vec<Check>,
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Record {
    pub fn new(scenario: &str, common: &Common) -> Record {
        Record {
            scenario: scenario.to_owned(),
            target: common.target.clone(),
            ..Record::default()
        }
    }

    pub fn setting(&mut self, name: &str, value: impl Into<Value>) {
        self.settings.0.push((name.to_owned(), value.into()));
    }

    pub fn figure(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.0.push((name.to_owned(), value.into()));
    }

    /// A figure rounded to `digits` decimals (JSON lines stay readable).
    pub fn number(&mut self, name: &str, value: f64, digits: i32) {
        self.figure(name, round(value, digits));
    }

    /// The proxy's RSS fresh, before and after the run (KiB), and its growth from
    /// before to after, which it returns (as a fraction: 0.05 is +5%).
    pub fn rss_figures(&mut self, fresh: f64, before: f64, after: f64) -> f64 {
        self.number("rss_fresh_kib", fresh, 0);
        self.number("rss_before_kib", before, 0);
        self.number("rss_after_kib", after, 0);
        let growth = after / before - 1.0;
        self.number("rss_growth_pct", growth * 100.0, 1);
        growth
    }

    pub fn check(&mut self, target: &str, measured: impl Into<String>, pass: bool) {
        self.checks.push(Check {
            target: target.to_owned(),
            measured: measured.into(),
            pass,
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the record as one JSON line and appends it to `--out`; a one-line verdict
    /// goes to stderr for whoever watches the run.
    pub fn emit(&self, common: &Common) -> io::Result<()> {
        crate::load::print_json_line(self, common.out.as_deref())?;
        for check in &self.checks {
            eprintln!(
                "  {} {}: {} ({})",
                if check.pass { "PASS" } else { "FAIL" },
                self.target,
                check.target,
                check.measured
            );
        }
        Ok(())
    }
}

/// A target and how this run did against it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Check {
    /// The target as the issue states it ("0 failures", "RSS per tunnel ≤ 2 KiB").
    pub target: String,
    /// What was measured, for the table.
    pub measured: String,
    pub pass: bool,
}

/// Named values in a fixed order, written as one JSON object (a `BTreeMap` would sort
/// them, and the report shows them in the order the scenario measured them).
#[derive(Debug, Clone, Default)]
pub struct Figures(pub Vec<(String, Value)>);

impl Figures {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl Serialize for Figures {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Figures {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Figures, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Figures;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of figures")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Figures, A::Error> {
                let mut figures = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    figures.push(entry);
                }
                Ok(Figures(figures))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// `value` rounded to `digits` decimals; non-finite values become JSON null.
pub fn round(value: f64, digits: i32) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    let scale = 10f64.powi(digits);
    serde_json::Number::from_f64((value * scale).round() / scale).map_or(Value::Null, Value::Number)
}

// ---------------------------------------------------------------- shared helpers

/// The `q` quantile (0..=1) of `sorted` (nearest rank); NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Sorts `values` (NaN-free) and returns them.
pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// A masked client Close frame with `code`.
pub fn close_frame(code: u16, mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8);
    write_header(&mut frame, true, ws::OP_CLOSE, 2, Some(mask));
    let at = frame.len();
    frame.extend_from_slice(&code.to_be_bytes());
    ws::apply_mask(&mut frame[at..], mask, 0);
    frame
}

/// The status code of an HTTP response head at the start of `buf`, if there is one.
pub fn status_of(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.")?;
    std::str::from_utf8(rest.get(2..5)?).ok()?.parse().ok()
}

/// How an exchange with the proxy ended, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A response head with this status.
    Status(u16),
    /// EOF before any response byte.
    Closed,
    /// A reset (or a write that failed) before any response byte.
    Reset,
    /// Neither within the time allowed.
    Nothing,
}

impl Answer {
    pub fn label(self) -> String {
        match self {
            Answer::Status(code) => code.to_string(),
            Answer::Closed => "close".to_owned(),
            Answer::Reset => "reset".to_owned(),
            Answer::Nothing => "no answer".to_owned(),
        }
    }
}

/// Reads until a response status line, EOF or an error, for at most `within`.
pub async fn await_answer(stream: &mut TcpStream, within: Duration) -> Answer {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if buf.len() >= 12 || head_end(&buf).is_some() {
                return match status_of(&buf) {
                    Some(code) => Answer::Status(code),
                    None => Answer::Status(0),
                };
            }
            buf.reserve(1024);
            match stream.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => return Answer::Closed,
                Ok(0) => return status_of(&buf).map_or(Answer::Status(0), Answer::Status),
                Ok(_) => {}
                Err(_) if buf.is_empty() => return Answer::Reset,
                Err(_) => return status_of(&buf).map_or(Answer::Status(0), Answer::Status),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or(Answer::Nothing)
}

/// Sends one `GET path` on a new connection and waits for the answer (at most
/// `within`, connecting included).
pub async fn one_request(addr: SocketAddr, path: &str, within: Duration) -> Answer {
    let attempt = async {
        let Ok(mut stream) = load::connect(addr).await else {
            return Answer::Reset;
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).await.is_err() {
            return Answer::Reset;
        }
        await_answer(&mut stream, within).await
    };
    tokio::time::timeout(within, attempt)
        .await
        .unwrap_or(Answer::Nothing)
}

/// Reads a JSON body with `GET path` straight from `addr` (the backend's `/stats`).
pub async fn get_json(addr: SocketAddr, path: &str) -> io::Result<Value> {
    let fetch = async {
        let mut stream = load::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            crate::http::read_more(&mut stream, &mut buf).await?;
        };
        let head = parse_head(&buf[..end])?;
        let length = head
            .content_length
            .ok_or_else(|| invalid("no content-length"))?;
        while buf.len() < end + length {
            crate::http::read_more(&mut stream, &mut buf).await?;
        }
        buf.advance(end);
        serde_json::from_slice(&buf[..length]).map_err(io::Error::other)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| io::Error::other(format!("{addr}{path}: no answer within 5 s")))?
}

/// Starts a backend of this scenario's own (`switchyard-bench backend`, a child of this
/// process, so on this process's core) and waits until it listens. Dropping the child
/// kills it.
pub async fn spawn_backend(
    listen: SocketAddr,
    sndbuf: Option<u32>,
) -> io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.args(["backend", "--listen", &listen.to_string()]);
    if let Some(size) = sndbuf {
        command.args(["--sndbuf", &size.to_string()]);
    }
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_listening(listen, Duration::from_secs(10)).await?;
    Ok(child)
}

/// Waits until `addr` accepts connections (at most `within`).
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> io::Result<()> {
    let give_up = tokio::time::Instant::now() + within;
    loop {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= give_up => {
                return Err(io::Error::other(format!("{addr} not accepting: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A WebSocket opened through the proxy and checked with one echo of `payload`
/// (handshake and echo within `within`).
pub async fn open_tunnel(
    addr: SocketAddr,
    salt: u64,
    payload: &[u8],
    within: Duration,
) -> io::Result<Tunnel> {
    let open = async {
        let mut rng = ws::Rng::from_time(salt);
        let (mut stream, mut buf) = load::ws_connect(addr, &mut rng).await?;
        let mask = (rng.next() as u32).to_ne_bytes();
        let frame = load::client_frame(payload, mask);
        load::echo_once(&mut stream, &mut buf, &frame, payload).await?;
        Ok(Tunnel { stream, buf, mask })
    };
    tokio::time::timeout(within, open)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "tunnel: no echo in time"))?
}

/// An open WebSocket through the proxy.
pub struct Tunnel {
    pub stream: TcpStream,
    /// Bytes read past the last frame.
    pub buf: BytesMut,
    pub mask: [u8; 4],
}

impl Tunnel {
    /// One more echo of `payload`, within `within`.
    pub async fn echo(&mut self, payload: &[u8], within: Duration) -> io::Result<()> {
        let frame = load::client_frame(payload, self.mask);
        tokio::time::timeout(
            within,
            load::echo_once(&mut self.stream, &mut self.buf, &frame, payload),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no echo in time"))?
    }
}

/// The payload every tunnel check echoes (the 32 B message).
pub const PAYLOAD: [u8; 32] = *b"switchyard soak: 32 bytes echo!!";

/// Opens `count` tunnels, `concurrency` handshakes at a time, each checked with one
/// echo. Returns the open ones, how many failed, and the first failure's reason.
pub async fn open_tunnels(
    addr: SocketAddr,
    count: usize,
    concurrency: usize,
    within: Duration,
) -> (Vec<Tunnel>, usize, Option<String>) {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(io::Error::other)?;
            open_tunnel(addr, i as u64, &PAYLOAD, within).await
        });
    }
    let (mut open, mut failed, mut first) = (Vec::with_capacity(count), 0, None);
    while let Some(joined) = set.join_next().await {
        match joined.map_err(io::Error::other).and_then(|r| r) {
            Ok(tunnel) => open.push(tunnel),
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (open, failed, first)
}

/// One more echo on every tunnel, `concurrency` at a time. Returns the tunnels that
/// echoed (still open) and how many did not.
pub async fn echo_all(
    tunnels: Vec<Tunnel>,
    concurrency: usize,
    within: Duration,
) -> (Vec<Tunnel>, usize) {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for mut tunnel in tunnels {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            tunnel.echo(&PAYLOAD, within).await.ok().map(|()| tunnel)
        });
    }
    let (mut fine, mut failed) = (Vec::new(), 0);
    while let Some(joined) = set.join_next().await {
        match joined.ok().flatten() {
            Some(tunnel) => fine.push(tunnel),
            None => failed += 1,
        }
    }
    (fine, failed)
}
