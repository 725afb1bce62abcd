//! Reliability, CI-sized (issue 11): churn, many tunnels at once, slow and hostile
//! clients, dying, refusing and silent upstreams. Each scenario is bounded to a few
//! seconds and asserts what a client (or the backend, or `/metrics` where the runtime
//! serves it) can observe; the long side-by-side soak runs live in `bench/`.

mod churn;
mod failures;
mod malformed;
mod slow;

pub use churn::*;
pub use failures::*;
pub use malformed::*;
pub use slow::*;

use super::metrics::scrape;
use super::tls::setup_with;
use crate::backend::upgrade_request;
use crate::http::Conn;
use crate::ws::{self, Frame};
use crate::{Config, ListenMode, ProxyUnderTest, RunningProxy};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long one step of a healthy exchange may take on a loaded machine.
pub(crate) const STEP: Duration = Duration::from_secs(3);

/// A proxy and, where the runtime serves one, its admin listener (`/metrics`).
pub(crate) struct Observed {
    pub proxy: RunningProxy,
    pub admin: Option<SocketAddr>,
}

/// Starts the proxy through `start_setup` (with an admin listener) when the runtime
/// has it, else through `start`.
pub(crate) async fn start_observed(p: &dyn ProxyUnderTest, config: Config) -> Observed {
    match p
        .start_setup(setup_with(config.clone(), ListenMode::Http, None))
        .await
    {
        Some(setup) => Observed {
            admin: Some(setup.admin),
            proxy: setup.proxy,
        },
        None => Observed {
            proxy: p.start(config).await,
            admin: None,
        },
    }
}

/// The value of the metric line starting with `name ` in a `/metrics` text.
pub(crate) fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `switchyard_connections_open` and `switchyard_tunnels_open`.
pub(crate) async fn gauges(admin: SocketAddr) -> (u64, u64, String) {
    let (status, text) = scrape(admin).await;
    assert_eq!(status, 200, "GET /metrics");
    let open = metric(&text, "switchyard_connections_open").expect("connections_open");
    let tunnels = metric(&text, "switchyard_tunnels_open").expect("tunnels_open");
    (open, tunnels, text)
}

/// Waits (at most `within`) until the proxy reports no open client connection and no
/// open tunnel; `Ok` at once for a runtime without `/metrics`.
pub(crate) async fn wait_proxy_idle(o: &Observed, within: Duration) -> Result<(), String> {
    let Some(admin) = o.admin else {
        return Ok(());
    };
    let start = Instant::now();
    loop {
        let (open, tunnels, _) = gauges(admin).await;
        if open == 0 && tunnels == 0 {
            return Ok(());
        }
        if start.elapsed() >= within {
            return Err(format!(
                "after {within:?} the proxy still reports {open} open connections and {tunnels} open tunnels"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a raw WebSocket through the proxy at `addr` (upgrade request for `/ws`,
/// `101` checked).
pub(crate) async fn ws_open(addr: SocketAddr) -> Result<Conn, String> {
    let mut c = tokio::time::timeout(STEP, Conn::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    c.write(&upgrade_request("example.test"))
        .await
        .map_err(|e| format!("write upgrade request: {e}"))?;
    let r = tokio::time::timeout(STEP, c.read_response("GET"))
        .await
        .map_err(|_| format!("no answer to the upgrade within {STEP:?}"))?
        .map_err(|e| format!("reading the upgrade answer: {e}"))?;
    if r.status != 101 {
        return Err(format!("upgrade answered with {:?}", r.head.start_line));
    }
    Ok(c)
}

/// Sends one masked frame (the mask derived from `seed`).
pub(crate) async fn ws_send(
    c: &mut Conn,
    opcode: u8,
    payload: &[u8],
    seed: usize,
) -> Result<(), String> {
    let mask = (seed as u32).wrapping_mul(0x9e37_79b9).to_be_bytes();
    c.write(&ws::frame(opcode, payload, Some(mask)))
        .await
        .map_err(|e| format!("send frame: {e}"))
}

/// Reads one frame within `within`; EOF, a reset or a timeout is an `Err`.
pub(crate) async fn ws_recv(c: &mut Conn, within: Duration) -> Result<Frame, String> {
    match tokio::time::timeout(within, ws::read_frame(c)).await {
        Err(_) => Err(format!("no frame within {within:?}")),
        Ok(Err(e)) => Err(format!("reading a frame: {e}")),
        Ok(Ok(None)) => Err("EOF instead of a frame".into()),
        Ok(Ok(Some(f))) => Ok(f),
    }
}

/// The payload of a Close frame.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// Min, median and max of some durations, for messages.
pub(crate) fn spread(mut d: Vec<Duration>) -> String {
    if d.is_empty() {
        return "none".into();
    }
    d.sort();
    format!(
        "min {:?}, median {:?}, max {:?} (n = {})",
        d[0],
        d[d.len() / 2],
        d[d.len() - 1],
        d.len()
    )
}

/// Runs `f(i)` for every `i` in `0..n` on spawned tasks, at most `at_once` at a time;
/// the results in order of `i`.
pub(crate) async fn bounded<T, F, Fut>(n: usize, at_once: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let fut = f(i);
        tasks.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task panicked"));
    }
    out
}
