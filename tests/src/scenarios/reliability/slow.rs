//! Slow clients: slowloris heads and readers that never read.

use super::{spread, start_observed, wait_proxy_idle, STEP};
use crate::backend::Backend;
use crate::http::{parse_head, Conn};
use crate::scenarios::get;
use crate::{test_config, ProxyUnderTest, RunningProxy};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on a fresh connection: asserts `200` and the backend's body, returns
/// how long it took.
async fn normal_request(proxy: &RunningProxy, n: usize, what: &str) -> Duration {
    let start = Instant::now();
    let target = format!("/normal/{n}");
    let mut c = Conn::connect(proxy.addr)
        .await
        .unwrap_or_else(|e| panic!("{what}: connect for normal request {n}: {e}"));
    c.write(&get(&target)).await.unwrap();
    let r = tokio::time::timeout(STEP, c.read_response("GET"))
        .await
        .unwrap_or_else(|_| panic!("{what}: normal request {n} unanswered after {STEP:?}"))
        .unwrap_or_else(|e| panic!("{what}: normal request {n}: {e}"));
    assert_eq!(
        (r.status, r.text()),
        (200, format!("GET {target}")),
        "{what}: normal request {n}"
    );
    start.elapsed()
}

/// Slowloris clients, the head deadline, and the byte interval.
const SLOW_CLIENTS: usize = 50;
const CLIENT_HEAD: Duration = Duration::from_secs(2);
const BYTE_EVERY: Duration = Duration::from_millis(200);

/// What one slowloris client saw: the status, when it came and when the connection
/// closed, both measured from its first byte.
struct Slow {
    status: u16,
    answered: Duration,
    closed: Duration,
}

/// Sends a request head one byte every 200 ms (it would take ~20 s to finish) and
/// keeps sending after the answer; reads the answer and waits for the close.
async fn slowloris(addr: SocketAddr, i: usize) -> Result<Slow, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "GET /slow/{i} HTTP/1.1\r\nHost: example.test\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(40)
    )
    .into_bytes();
    wr.write_all(&head[..1])
        .await
        .map_err(|e| format!("first byte: {e}"))?;
    let first = Instant::now();
    let writer = tokio::spawn(async move {
        for b in &head[1..] {
            tokio::time::sleep(BYTE_EVERY).await;
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await; // dropping the half would send a FIN
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + CLIENT_HEAD + Duration::from_secs(3);
    let result = async {
        let head = loop {
            if let Some((head, _)) = parse_head(&buf).map_err(|e| e.to_string())? {
                break head;
            }
            match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
                Err(_) => {
                    return Err(format!(
                        "no answer {:?} after the first byte",
                        first.elapsed()
                    ))
                }
                Ok(Ok(0)) => {
                    return Err(format!(
                        "closed without an answer after {:?}",
                        first.elapsed()
                    ))
                }
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(format!("read: {e}")),
            }
        };
        let answered = first.elapsed();
        let status = head
            .start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {:?}", head.start_line))?;
        loop {
            match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
                Err(_) => {
                    return Err(format!(
                        "answered {status} at {answered:?} but still open at {:?}",
                        first.elapsed()
                    ))
                }
                Ok(Ok(0)) | Ok(Err(_)) => break, // EOF, or a reset after the answer
                Ok(Ok(_)) => {}
            }
        }
        Ok(Slow {
            status,
            answered,
            closed: first.elapsed(),
        })
    }
    .await;
    writer.abort();
    result
}

/// 50 slowloris clients send a request head one byte every 200 ms with
/// `client_head = 2s`: each gets a `408` at 2 s (± tolerance) after its first byte —
/// the deadline is not pushed back by each byte — and its connection is closed soon
/// after, although it keeps sending. Meanwhile a normal client, on a fresh connection
/// every 50 ms, keeps getting its `200`s within a bounded time, and the backend sees
/// only the normal requests. Afterwards `/metrics` (where served) shows nothing open.
pub async fn slowloris_gets_408_at_client_head_while_others_are_served(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let mut config = test_config(backend.addr);
    config.timeouts.client_head = CLIENT_HEAD;
    let o = start_observed(p, config).await;
    let (proxy, addr) = (&o.proxy, o.proxy.addr);
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|i| tokio::spawn(slowloris(addr, i)))
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < CLIENT_HEAD + Duration::from_millis(500) {
        let n = latencies.len();
        latencies.push(normal_request(proxy, n, "during the slowloris").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answered = Vec::new();
    let mut closed = Vec::new();
    for (i, s) in slow.into_iter().enumerate() {
        let s = s
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("slow client {i}: {e}"));
        assert_eq!(s.status, 408, "slow client {i}");
        assert!(
            s.answered >= CLIENT_HEAD - Duration::from_millis(100)
                && s.answered <= CLIENT_HEAD + Duration::from_millis(900),
            "slow client {i}: 408 {:?} after its first byte; client_head is {CLIENT_HEAD:?}",
            s.answered
        );
        assert!(
            s.closed <= s.answered + Duration::from_secs(1),
            "slow client {i}: closed {:?} after the 408 (linger is 300 ms)",
            s.closed - s.answered
        );
        answered.push(s.answered);
        closed.push(s.closed);
    }
    let max_latency = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "slowloris: 408 at {}; closed at {}; normal requests meanwhile: {}",
        spread(answered),
        spread(closed),
        spread(latencies.clone())
    );
    assert!(
        latencies.len() >= 10,
        "only {} normal requests in {:?}",
        latencies.len(),
        started.elapsed()
    );
    assert!(
        max_latency <= Duration::from_secs(1),
        "a normal request took {max_latency:?} during the slowloris"
    );
    let targets: Vec<String> = backend.requests().into_iter().map(|r| r.target).collect();
    assert!(
        targets.iter().all(|t| t.starts_with("/normal/")),
        "a slow head reached the backend: {targets:?}"
    );
    assert_eq!(targets.len(), latencies.len(), "requests the backend got");
    wait_proxy_idle(&o, STEP).await.unwrap();
}

/// Readers that never read, the size of what they ask for, and the buffers of the
/// sockets at both ends (the proxy's own are left to the kernel).
const SLOW_READERS: usize = 20;
const LARGE: u64 = 64 << 20;
const SOCKET_BUFFER: u32 = 64 * 1024;

/// 20 clients ask for a 64 MiB response and never read it: each response's upstream
/// writes stall (no progress for 500 ms: the proxy stops reading the upstream when
/// the client does not take what it has), short of the whole body and within what the
/// sockets' kernel buffers can hold — the proxy itself holds at most its
/// `buffer_size`. Meanwhile normal clients keep getting their responses within 1 s.
/// When the readers close, the proxy notices at once: `/metrics` (where served) soon
/// shows nothing open.
/// (The runtimes expose no count of buffered bytes; the backend's progress is the
/// observable.)
pub async fn slow_readers_stall_the_upstream_while_others_are_served(p: &dyn ProxyUnderTest) {
    let (backend, writes) = Backend::large_body(LARGE, Some(SOCKET_BUFFER)).await;
    // `send` well past the scenario, so that only flow control can stop the upstream
    // (at `send`, the proxy would close the stuck connections and the writes would stop
    // for that reason)
    let mut config = test_config(backend.addr);
    config.timeouts.send = Duration::from_secs(30);
    let o = start_observed(p, config).await;
    let proxy = &o.proxy;
    let mut readers = Vec::new();
    for i in 0..SLOW_READERS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
        let mut s = socket.connect(proxy.addr).await.expect("connect");
        s.write_all(&get(&format!("/large/{i}"))).await.unwrap();
        readers.push(s); // never read
    }
    // Sample the upstream's progress every 100 ms, a normal request each time, until
    // every large response has been stuck for 500 ms.
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut samples: Vec<(Instant, Vec<u64>)> = Vec::new();
    let stalled = loop {
        let n = latencies.len();
        latencies.push(normal_request(proxy, n, "with slow readers").await);
        let now = Instant::now();
        let written = writes.written();
        let before = samples
            .iter()
            .rev()
            .find(|(t, _)| now - *t >= Duration::from_millis(500));
        if written.len() == SLOW_READERS && before.is_some_and(|(_, w)| *w == written) {
            break written;
        }
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "the upstream writes did not stall within 7 s: {written:?}"
        );
        samples.push((now, written));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for n in 0..10 {
        latencies.push(normal_request(proxy, 1000 + n, "with stalled readers").await);
    }
    let max = stalled.iter().max().copied().unwrap_or_default();
    let total: u64 = stalled.iter().sum();
    eprintln!(
        "slow readers: upstream writes stalled after {:?} at most {max} bytes per response ({total} in all, of {LARGE} each); normal requests: {}",
        started.elapsed(),
        spread(latencies.clone())
    );
    // What can be in flight without the proxy holding more than its `buffer_size`: the
    // two sockets' buffers at either end (small, set above) and the proxy's two
    // sockets' (autotuned by the kernel up to tcp_rmem's and tcp_wmem's maxima).
    let kernel =
        kernel_buffer_max().map_or(LARGE, |k| k + 4 * u64::from(SOCKET_BUFFER) + (1 << 20));
    assert!(
        max < LARGE.min(kernel),
        "an upstream wrote {max} of {LARGE} bytes to a client that reads nothing, more than the kernel can hold ({kernel}): {stalled:?}"
    );
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest <= Duration::from_secs(1),
        "a normal request took {slowest:?} with slow readers"
    );
    // Readers that go away with a response half sent are noticed at once (not at the
    // `send` deadline): nothing is left open.
    drop(readers);
    wait_proxy_idle(&o, STEP).await.unwrap();
}

/// The most a receiving plus a sending TCP socket can buffer here: the maxima of
/// `net.ipv4.tcp_rmem` and `net.ipv4.tcp_wmem` (`None` where they cannot be read).
fn kernel_buffer_max() -> Option<u64> {
    let max = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .ok()?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    };
    Some(max("tcp_rmem")? + max("tcp_wmem")?)
}
