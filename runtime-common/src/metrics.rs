//! Metrics in the Prometheus text format: counters kept in atomics from the
//! sessions' [`Event`]s and the drive loop's dial results, gauges read when scraped
//! (live connections, and each configuration's [`ProxyStatus`]).
//!
//! Served on the admin listener (`GET /metrics`, see `admin.rs`), or rendered by
//! [`Context::metrics_text`](crate::Context::metrics_text) for an embedder's own.

use crate::thread_shard;
use proxy_core::{ConnectError, Event, ProxyError, ProxyStatus, Side, TunnelEnd};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::warn;

/// Request durations, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Tunnel durations, in seconds.
const TUNNEL_BUCKETS: &[f64] = &[0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0];
/// Statuses are counted by value; 0 is "no status sent".
const STATUSES: usize = 600;
/// At most one "refused" warning per this long (the rest are counted in it).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Why the core refused a client (its 503s for limits), as metric labels.
const REFUSALS: [(ProxyError, &str, &str); 3] = [
    (
        ProxyError::TooManyConnections,
        "too_many_connections",
        "limits.max_connections / limits.max_connections_per_ip",
    ),
    (
        ProxyError::RateLimited,
        "rate_limited",
        "limits.new_connections_per_ip_per_second",
    ),
    (
        ProxyError::TooManyTunnels,
        "too_many_tunnels",
        "limits.max_tunnels",
    ),
];

/// Tunnel end reasons, as metric labels.
const ENDS: [&str; 12] = [
    "closed",
    "idle_timeout",
    "fin_timeout",
    "send_timeout",
    "reset",
    "drain",
    "peer_gone",
    "ping_timeout",
    "protocol_error",
    "upstream_unavailable",
    "refused",
    "message_too_big",
];
const SIDES: [&str; 3] = ["", "client", "upstream"];

/// Dial failure reasons, as metric labels.
const CONNECT_FAILURES: [&str; 5] = ["refused", "unreachable", "timeout", "tls", "other"];

/// Every counter of one process (shared by all configurations across reloads), in
/// shards: a thread adds to its own shard's counters (see `thread_shard.rs`), and
/// a scrape sums them.
pub struct Metrics {
    shards: Box<[Counters]>,
    refusal_log: Mutex<LogThrottle>,
    proxy_header_log: Mutex<LogThrottle>,
}

/// One shard's counters, aligned so that two shards never share a cache line.
#[repr(align(128))]
struct Counters {
    accepted: AtomicU64,
    tls_handshake_failures: AtomicU64,
    /// Finished client handshakes: `[full, resumed]`.
    tls_handshakes: [AtomicU64; 2],
    proxy_header_failures: AtomicU64,
    /// By status, inline like every counter here (see [`MAX_BUCKETS`]).
    requests: [AtomicU64; STATUSES],
    refused: [AtomicU64; REFUSALS.len()],
    tunnels_closed: [[AtomicU64; SIDES.len()]; ENDS.len()],
    tunnel_bytes: [AtomicU64; 2],
    connect_failures: [AtomicU64; CONNECT_FAILURES.len()],
    reloads: [AtomicU64; 2],
    request_duration: Histogram,
    tunnel_duration: Histogram,
}

/// Gauges read at scrape time.
pub struct Gauges {
    /// Client connections being served (every configuration).
    pub connections: usize,
    /// Each live configuration's status, the current one first.
    pub proxies: Vec<ProxyStatus>,
}

/// A dial failure as the drive loop saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialFailure {
    /// Refused by the server.
    Refused,
    /// Unresolvable or unreachable.
    Unreachable,
    /// Not done within `timeouts.upstream_connect`.
    Timeout,
    /// TCP worked, the TLS handshake did not.
    Tls,
    /// Anything else.
    Other,
}

impl DialFailure {
    /// The failure kind of a [`ConnectError`].
    pub fn of(error: &ConnectError) -> DialFailure {
        match error {
            ConnectError::Refused => DialFailure::Refused,
            ConnectError::Unreachable => DialFailure::Unreachable,
            ConnectError::Other(text) if text.starts_with("tls") => DialFailure::Tls,
            ConnectError::Other(_) | ConnectError::Local(_) => DialFailure::Other,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_shards(thread_shard::default_shards())
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            tls_handshakes: Default::default(),
            proxy_header_failures: AtomicU64::new(0),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            refused: Default::default(),
            tunnels_closed: Default::default(),
            tunnel_bytes: Default::default(),
            connect_failures: Default::default(),
            reloads: Default::default(),
            request_duration: Histogram::new(REQUEST_BUCKETS),
            tunnel_duration: Histogram::new(TUNNEL_BUCKETS),
        }
    }
}

impl Metrics {
    /// Counters in `shards` shards (rounded up to a power of two, at most 64): as many
    /// as the threads that serve connections. [`Metrics::default`] makes one per core.
    pub fn with_shards(shards: usize) -> Self {
        Metrics {
            shards: (0..thread_shard::shard_count(shards))
                .map(|_| Counters::default())
                .collect(),
            refusal_log: Mutex::default(),
            proxy_header_log: Mutex::default(),
        }
    }

    /// This thread's counters.
    fn own(&self) -> &Counters {
        &self.shards[thread_shard::this_thread(self.shards.len())]
    }

    /// A counter summed over the shards.
    fn sum(&self, counter: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        total(self.shards.iter().map(counter))
    }

    /// A connection was accepted.
    pub fn accepted(&self) {
        self.own().accepted.fetch_add(1, Relaxed);
    }

    /// A client's TLS handshake failed or timed out.
    pub fn tls_handshake_failed(&self) {
        self.own().tls_handshake_failures.fetch_add(1, Relaxed);
    }

    /// A client's TLS handshake finished, resuming an earlier session or not.
    pub fn tls_handshake_done(&self, resumed: bool) {
        self.own().tls_handshakes[usize::from(resumed)].fetch_add(1, Relaxed);
    }

    /// Dialling an upstream failed.
    pub fn dial_failed(&self, failure: DialFailure) {
        self.own().connect_failures[failure as usize].fetch_add(1, Relaxed);
    }

    /// A reload was applied (`true`) or rejected.
    pub fn reloaded(&self, ok: bool) {
        self.own().reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// Counts a session's event; a refusal by a limit is also logged (at most one
    /// line per 5 s, with the count of those not logged).
    pub fn event(&self, event: &Event, client: Option<SocketAddr>, now: Instant) {
        let own = self.own();
        match event {
            Event::Request(r) => {
                let status = usize::from(r.status).min(STATUSES - 1);
                own.requests[status].fetch_add(1, Relaxed);
                own.request_duration.observe(r.duration);
                let refusal = (r.error.zip(r.from_proxy.then_some(()))).and_then(|(error, ())| {
                    REFUSALS.iter().position(|(e, ..)| e.message() == error)
                });
                if let Some(i) = refusal {
                    own.refused[i].fetch_add(1, Relaxed);
                    self.refusal_log(i, r.status, client, now);
                }
            }
            Event::UpstreamConnectTimeout => self.dial_failed(DialFailure::Timeout),
            Event::Tunnel(t) => {
                own.tunnel_bytes[0].fetch_add(t.client_to_upstream, Relaxed);
                own.tunnel_bytes[1].fetch_add(t.upstream_to_client, Relaxed);
                own.tunnel_duration.observe(t.duration);
                let (end, side) = end_labels(t.end);
                own.tunnels_closed[end][side].fetch_add(1, Relaxed);
                // A layer-4 connection refused by a limit is logged like a 503.
                if let TunnelEnd::Refused(error) = t.end {
                    if let Some(i) = REFUSALS.iter().position(|(e, ..)| *e == error) {
                        own.refused[i].fetch_add(1, Relaxed);
                        self.refusal_log(i, 0, client, now);
                    }
                }
            }
        }
    }

    fn refusal_log(&self, i: usize, status: u16, client: Option<SocketAddr>, now: Instant) {
        let mut log = self.refusal_log.lock().unwrap_or_else(|e| e.into_inner());
        let Some(unlogged) = log.due(now, REFUSAL_LOG_INTERVAL) else {
            return;
        };
        let (error, _, key) = REFUSALS[i];
        warn!(
            client = %client.map_or("-".to_string(), |c| c.to_string()),
            status,
            limit = key,
            more_since_last_line = unlogged,
            "refused a client: {}",
            error.message()
        );
    }

    /// A connection to a `proxy_protocol` listener was closed: its PROXY header was
    /// missing, malformed or late. Counted, and logged like a refusal (at most one line
    /// per 5 s): a load balancer that does not send the header is a setup error whose
    /// every connection fails this way.
    pub fn proxy_header_failed(&self, peer: SocketAddr, why: &dyn std::fmt::Display, now: Instant) {
        self.own().proxy_header_failures.fetch_add(1, Relaxed);
        let mut log = self
            .proxy_header_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(unlogged) = log.due(now, REFUSAL_LOG_INTERVAL) {
            warn!(
                peer = %peer,
                more_since_last_line = unlogged,
                "closed a connection to a proxy_protocol listener: {why}"
            );
        }
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        gauge(
            o,
            "switchyard_connections_open",
            "Client connections being served.",
            gauges.connections as u64,
        );
        counter_head(
            o,
            "switchyard_connections_accepted_total",
            "Client connections accepted.",
        );
        line(
            o,
            "switchyard_connections_accepted_total",
            "",
            self.sum(|c| &c.accepted),
        );
        counter_head(
            o,
            "switchyard_tls_handshake_failures_total",
            "Client TLS handshakes that failed or timed out.",
        );
        line(
            o,
            "switchyard_tls_handshake_failures_total",
            "",
            self.sum(|c| &c.tls_handshake_failures),
        );
        counter_head(
            o,
            "switchyard_tls_handshakes_total",
            "Client TLS handshakes finished, by kind (resumed: from a session ticket or ID).",
        );
        for (i, kind) in ["full", "resumed"].into_iter().enumerate() {
            line(
                o,
                "switchyard_tls_handshakes_total",
                &format!("kind=\"{kind}\""),
                self.sum(|c| &c.tls_handshakes[i]),
            );
        }
        counter_head(
            o,
            "switchyard_proxy_protocol_failures_total",
            "Connections to proxy_protocol listeners closed for a missing, malformed or late PROXY header.",
        );
        line(
            o,
            "switchyard_proxy_protocol_failures_total",
            "",
            self.sum(|c| &c.proxy_header_failures),
        );
        counter_head(
            o,
            "switchyard_requests_total",
            "Requests answered, by the status sent (0: none).",
        );
        for status in 0..STATUSES {
            let count = self.sum(|c| &c.requests[status]);
            if count > 0 {
                line(
                    o,
                    "switchyard_requests_total",
                    &format!("status=\"{status}\""),
                    count,
                );
            }
        }
        counter_head(
            o,
            "switchyard_refused_total",
            "Clients refused by a limit (503).",
        );
        for (i, (_, reason, _)) in REFUSALS.iter().enumerate() {
            line(
                o,
                "switchyard_refused_total",
                &format!("reason=\"{reason}\""),
                self.sum(|c| &c.refused[i]),
            );
        }
        let tunnels: usize = gauges.proxies.iter().map(|p| p.tunnels).sum();
        gauge(
            o,
            "switchyard_tunnels_open",
            "Upgraded connections open (or an upgrade request in flight).",
            tunnels as u64,
        );
        counter_head(
            o,
            "switchyard_tunnel_bytes_total",
            "Bytes relayed by tunnels, each way (counted when a tunnel ends).",
        );
        for (i, direction) in ["client_to_upstream", "upstream_to_client"]
            .iter()
            .enumerate()
        {
            line(
                o,
                "switchyard_tunnel_bytes_total",
                &format!("direction=\"{direction}\""),
                self.sum(|c| &c.tunnel_bytes[i]),
            );
        }
        counter_head(
            o,
            "switchyard_tunnels_closed_total",
            "Tunnels ended, by reason (and the side it concerns).",
        );
        for (e, end) in ENDS.iter().enumerate() {
            for (s, side) in SIDES.iter().enumerate() {
                let count = self.sum(|c| &c.tunnels_closed[e][s]);
                if count > 0 || (side.is_empty() && !needs_side(end)) {
                    let labels = match side.is_empty() {
                        true => format!("reason=\"{end}\""),
                        false => format!("reason=\"{end}\",side=\"{side}\""),
                    };
                    line(o, "switchyard_tunnels_closed_total", &labels, count);
                }
            }
        }
        counter_head(
            o,
            "switchyard_upstream_connect_failures_total",
            "Upstream dials that failed, by reason.",
        );
        for (i, reason) in CONNECT_FAILURES.iter().enumerate() {
            line(
                o,
                "switchyard_upstream_connect_failures_total",
                &format!("reason=\"{reason}\""),
                self.sum(|c| &c.connect_failures[i]),
            );
        }
        let _ = writeln!(
            o,
            "# HELP switchyard_upstream_active Connections in use per upstream server."
        );
        let _ = writeln!(o, "# TYPE switchyard_upstream_active gauge");
        let servers = gauges.proxies.first().map_or(&[][..], |p| &p.servers[..]);
        for s in servers {
            let _ = writeln!(
                o,
                "switchyard_upstream_active{{group=\"{}\",address=\"{}\"}} {}",
                escape(&s.group),
                escape(&s.address),
                s.active
            );
        }
        let _ = writeln!(
            o,
            "# HELP switchyard_upstream_down Whether an upstream server is skipped after failures."
        );
        let _ = writeln!(o, "# TYPE switchyard_upstream_down gauge");
        for s in servers {
            let _ = writeln!(
                o,
                "switchyard_upstream_down{{group=\"{}\",address=\"{}\"}} {}",
                escape(&s.group),
                escape(&s.address),
                u8::from(s.down)
            );
        }
        gauge(
            o,
            "switchyard_configurations_live",
            "Configurations with sessions still running (the current one and those a reload replaced).",
            gauges.proxies.len() as u64,
        );
        counter_head(
            o,
            "switchyard_reloads_total",
            "Configuration reloads, by result.",
        );
        line(
            o,
            "switchyard_reloads_total",
            "result=\"ok\"",
            self.sum(|c| &c.reloads[0]),
        );
        line(
            o,
            "switchyard_reloads_total",
            "result=\"rejected\"",
            self.sum(|c| &c.reloads[1]),
        );
        Histogram::render(
            self.shards.iter().map(|c| &c.request_duration),
            o,
            "switchyard_request_duration_seconds",
            "From the first byte of a request to the end of its response.",
        );
        Histogram::render(
            self.shards.iter().map(|c| &c.tunnel_duration),
            o,
            "switchyard_tunnel_duration_seconds",
            "From the switch (or the layer-4 connect) to the end of a tunnel.",
        );
        out
    }
}

/// Lets one log line through per interval, and counts those it held back.
#[derive(Default)]
pub(crate) struct LogThrottle {
    quiet_until: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    /// Whether a line is due at `now`: then how many were held back since the last
    /// (and the next is due `interval` later); else `None`, and this one is counted.
    pub(crate) fn due(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        if self.quiet_until.is_some_and(|until| now < until) {
            self.unlogged += 1;
            return None;
        }
        self.quiet_until = Some(now + interval);
        Some(std::mem::take(&mut self.unlogged))
    }
}

fn end_labels(end: TunnelEnd) -> (usize, usize) {
    let side = |s: Side| match s {
        Side::Client => 1,
        Side::Upstream => 2,
    };
    match end {
        TunnelEnd::Closed => (0, 0),
        TunnelEnd::IdleTimeout => (1, 0),
        TunnelEnd::FinTimeout => (2, 0),
        TunnelEnd::SendTimeout => (3, 0),
        TunnelEnd::Reset(s) => (4, side(s)),
        TunnelEnd::Drain => (5, 0),
        TunnelEnd::PeerGone(s) => (6, side(s)),
        TunnelEnd::PingTimeout(s) => (7, side(s)),
        TunnelEnd::ProtocolError(s) => (8, side(s)),
        TunnelEnd::UpstreamUnavailable => (9, 0),
        TunnelEnd::Refused(_) => (10, 0),
        TunnelEnd::MessageTooBig(s) => (11, side(s)),
    }
}

/// Whether the reason is always reported with a side.
fn needs_side(end: &str) -> bool {
    matches!(
        end,
        "reset" | "peer_gone" | "ping_timeout" | "protocol_error" | "message_too_big"
    )
}

/// Most buckets a histogram has, so that its counts sit inline in a shard (a boxed
/// slice per shard would come from one allocator size class, and two shards' counts
/// could share a cache line).
const MAX_BUCKETS: usize = 15;
const _: () = assert!(REQUEST_BUCKETS.len() <= MAX_BUCKETS);
const _: () = assert!(TUNNEL_BUCKETS.len() <= MAX_BUCKETS);

struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), then the overflow; those past it unused.
    counts: [AtomicU64; MAX_BUCKETS + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: Default::default(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = (self.bounds.iter())
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len())
            .min(MAX_BUCKETS);
        self.counts[i].fetch_add(1, Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// The histograms of every shard, summed, as one.
    fn render<'a>(
        shards: impl Iterator<Item = &'a Histogram> + Clone,
        o: &mut String,
        name: &str,
        help: &str,
    ) {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} histogram");
        let count = |i: usize| total(shards.clone().map(|h| &h.counts[i]));
        let Some(bounds) = shards.clone().next().map(|h| h.bounds) else {
            return;
        };
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += count(i);
            let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += count(bounds.len());
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = total(shards.map(|h| &h.sum_micros)) as f64 / 1e6;
        let _ = writeln!(o, "{name}_sum {sum}");
        let _ = writeln!(o, "{name}_count {cumulative}");
    }
}

/// One counter's shards, summed; wrapping, as the atomics themselves do.
fn total<'a>(shards: impl Iterator<Item = &'a AtomicU64>) -> u64 {
    shards.fold(0, |sum, count| sum.wrapping_add(count.load(Relaxed)))
}

fn gauge(o: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        o,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counter_head(o: &mut String, name: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
}

fn line(o: &mut String, name: &str, labels: &str, value: u64) {
    match labels.is_empty() {
        true => {
            let _ = writeln!(o, "{name} {value}");
        }
        false => {
            let _ = writeln!(o, "{name}{{{labels}}} {value}");
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_core::{RequestLog, TunnelLog};

    fn request(status: u16, error: Option<&'static str>, millis: u64) -> Event {
        Event::Request(Box::new(RequestLog {
            method: bytes::Bytes::from_static(b"GET"),
            target: bytes::Bytes::from_static(b"/"),
            status,
            request_body_bytes: 0,
            response_body_bytes: 0,
            duration: Duration::from_millis(millis),
            from_proxy: error.is_some(),
            error,
        }))
    }

    fn gauges() -> Gauges {
        Gauges {
            connections: 2,
            proxies: vec![],
        }
    }

    #[test]
    fn requests_are_counted_by_status_and_timed_in_a_histogram() {
        let m = Metrics::default();
        let now = Instant::now();
        m.event(&request(200, None, 3), None, now);
        m.event(&request(200, None, 300), None, now);
        m.event(&request(502, Some("upstream connect failed"), 1), None, now);
        let text = m.render(&gauges());
        assert!(
            text.contains("switchyard_requests_total{status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("switchyard_requests_total{status=\"502\"} 1\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"0.5\"} 3\n"));
        assert!(text.contains("switchyard_request_duration_seconds_count 3\n"));
        assert!(text.contains("switchyard_connections_open 2\n"));
    }

    #[test]
    fn limit_refusals_are_counted_by_reason() {
        let m = Metrics::default();
        let now = Instant::now();
        m.event(&request(503, Some("too many connections"), 0), None, now);
        m.event(&request(503, Some("too many tunnels"), 0), None, now);
        let text = m.render(&gauges());
        assert!(text.contains("switchyard_refused_total{reason=\"too_many_connections\"} 1\n"));
        assert!(text.contains("switchyard_refused_total{reason=\"too_many_tunnels\"} 1\n"));
        assert!(text.contains("switchyard_refused_total{reason=\"rate_limited\"} 0\n"));
    }

    #[test]
    fn tunnel_ends_count_bytes_reasons_and_sides() {
        let m = Metrics::default();
        let tunnel = |end| {
            Event::Tunnel(Box::new(TunnelLog {
                protocol: "websocket".into(),
                client_to_upstream: 10,
                upstream_to_client: 20,
                duration: Duration::from_secs(2),
                end,
            }))
        };
        m.event(&tunnel(TunnelEnd::IdleTimeout), None, Instant::now());
        m.event(
            &tunnel(TunnelEnd::PingTimeout(Side::Upstream)),
            None,
            Instant::now(),
        );
        let text = m.render(&gauges());
        assert!(
            text.contains("switchyard_tunnel_bytes_total{direction=\"client_to_upstream\"} 20\n")
        );
        assert!(
            text.contains("switchyard_tunnel_bytes_total{direction=\"upstream_to_client\"} 40\n")
        );
        assert!(text.contains("switchyard_tunnels_closed_total{reason=\"idle_timeout\"} 1\n"));
        assert!(text.contains(
            "switchyard_tunnels_closed_total{reason=\"ping_timeout\",side=\"upstream\"} 1\n"
        ));
        assert!(text.contains("switchyard_tunnel_duration_seconds_bucket{le=\"10\"} 2\n"));
    }

    /// Each thread counts in its own shard; a scrape sums every shard's counters and
    /// histograms.
    #[test]
    fn counts_from_every_thread_are_summed() {
        let m = std::sync::Arc::new(Metrics::with_shards(64));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        m.event(&request(200, None, 3), None, Instant::now());
                        m.accepted();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let text = m.render(&gauges());
        assert!(
            text.contains("switchyard_requests_total{status=\"200\"} 800\n"),
            "{text}"
        );
        assert!(text.contains("switchyard_connections_accepted_total 800\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"0.005\"} 800\n"));
        assert!(text.contains("switchyard_request_duration_seconds_count 800\n"));
        assert!(text.contains("switchyard_request_duration_seconds_sum 2.4\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
