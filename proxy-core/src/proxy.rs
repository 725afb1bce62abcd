//! [`Proxy`]: what every session of one configuration shares — the configuration,
//! upstream selection and health ([`crate::balance`]), and the connection, rate and
//! tunnel limits. Sessions come from it, as quinn-proto's connections come from
//! its endpoint.
//!
//! Runtimes run sessions on several threads, and every connection and tunnel counts
//! itself in and out: those counts are atomics, so that the threads of a many-core
//! machine do not queue on one lock at every accept. Only the per-address limits,
//! when configured, keep their tables behind a mutex. Upstream selection, used at every
//! request, keeps atomic counts too (`balance.rs`). The core itself never blocks,
//! spawns or reads a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::balance::{count_down, Groups, ServerId, ServerStatus};
use crate::error::ProxyError;
use crate::{ClientInfo, Config, Session, WallClock};

/// The shared side of a proxy: create one per configuration, then one
/// [`Session`] per accepted connection with [`Proxy::session`]. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Arc<Config>,
    clock: WallClock,
    /// Taken at every request, so it keeps its own counts (atomics; see `balance.rs`).
    groups: Groups,
    /// Client connections admitted and not yet ended.
    connections: AtomicUsize,
    /// Tunnels open or reserved.
    tunnels: AtomicUsize,
    /// Taken only under a per-address limit.
    per_ip: Mutex<PerIp>,
}

/// What the per-address limits keep.
#[derive(Debug, Default)]
struct PerIp {
    /// Connections per client address, counted only under `max_connections_per_ip`.
    connections: HashMap<IpAddr, usize>,
    /// Token buckets for new connections per IP: (tokens × 1000, last refill).
    rate: HashMap<IpAddr, (u64, Instant)>,
}

/// Counts for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyStatus {
    /// Client connections admitted and not yet ended.
    pub connections: usize,
    /// Tunnels open (or reserved by an upgrade request in flight).
    pub tunnels: usize,
    /// Each upstream server.
    pub servers: Vec<ServerStatus>,
}

impl Proxy {
    /// A proxy for this configuration (see [`Config::validate`]), with a clock of its
    /// own, unset until [`wall_clock`](Self::wall_clock) is.
    pub fn new(config: Arc<Config>) -> Proxy {
        Proxy::with_wall_clock(config, WallClock::default())
    }

    /// A proxy that dates responses by `clock`, which a runtime keeps set (and may
    /// share with the proxies of later configurations).
    pub fn with_wall_clock(config: Arc<Config>, clock: WallClock) -> Proxy {
        Proxy {
            shared: Arc::new(Shared {
                groups: Groups::new(&config),
                config,
                clock,
                connections: AtomicUsize::new(0),
                tunnels: AtomicUsize::new(0),
                per_ip: Mutex::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.shared.config
    }

    /// The clock that dates responses without `Date` (see [`WallClock`]).
    pub fn wall_clock(&self) -> &WallClock {
        &self.shared.clock
    }

    /// A session for an accepted HTTP connection. Over a connection limit, the session
    /// answers its first request with 503 and closes.
    pub fn session(&self, client: ClientInfo, now: Instant) -> Session {
        Session::start(self.clone(), client, now, None)
    }

    /// A session for an accepted connection of a TCP (layer 4) listener: its bytes go
    /// untouched to a server of `group`, through the same tunnel (flow control,
    /// half-close, idle timeout) as upgraded connections.
    pub fn tcp_session(&self, client: ClientInfo, group: &str, now: Instant) -> Session {
        Session::start(self.clone(), client, now, Some(group))
    }

    /// Connections, tunnels and servers right now.
    pub fn status(&self, now: Instant) -> ProxyStatus {
        ProxyStatus {
            connections: self.shared.connections.load(Relaxed),
            tunnels: self.shared.tunnels.load(Relaxed),
            servers: self.shared.groups.status(now),
        }
    }

    fn lock_per_ip(&self) -> MutexGuard<'_, PerIp> {
        // No code holding the lock can panic; a poisoned lock still has valid data.
        self.shared
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a new client connection, or says which limit it is over.
    ///
    /// The connection takes its slot under `max_connections` first, and gives it back
    /// if a per-address limit refuses it: meanwhile, a connection arriving at exactly
    /// the limit may be refused too (the count never goes over the limit).
    pub(crate) fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), ProxyError> {
        let limits = &self.shared.config.limits;
        if !take_slot(&self.shared.connections, limits.max_connections) {
            return Err(ProxyError::TooManyConnections);
        }
        let per_ip =
            limits.max_connections_per_ip > 0 || limits.new_connections_per_ip_per_second > 0;
        let Some(ip) = ip.filter(|_| per_ip) else {
            return Ok(());
        };
        let admitted = self.admit_per_ip(ip, now);
        if admitted.is_err() {
            count_down(&self.shared.connections);
        }
        admitted
    }

    /// The per-address limits' part of [`admit`](Self::admit).
    fn admit_per_ip(&self, ip: IpAddr, now: Instant) -> Result<(), ProxyError> {
        let limits = &self.shared.config.limits;
        let mut state = self.lock_per_ip();
        let max = limits.max_connections_per_ip;
        if max > 0 && state.connections.get(&ip).copied().unwrap_or(0) >= max {
            return Err(ProxyError::TooManyConnections);
        }
        let rate = u64::from(limits.new_connections_per_ip_per_second);
        if rate > 0 && !take_token(&mut state.rate, ip, rate, now) {
            return Err(ProxyError::RateLimited);
        }
        if max > 0 {
            *state.connections.entry(ip).or_insert(0) += 1;
        }
        Ok(())
    }

    pub(crate) fn release_connection(&self, ip: Option<IpAddr>) {
        count_down(&self.shared.connections);
        let Some(ip) = ip.filter(|_| self.shared.config.limits.max_connections_per_ip > 0) else {
            return;
        };
        let mut state = self.lock_per_ip();
        if let Some(count) = state.connections.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                state.connections.remove(&ip);
            }
        }
    }

    /// Reserves a tunnel slot for an upgrade request, if under `max_tunnels`.
    pub(crate) fn reserve_tunnel(&self) -> bool {
        take_slot(&self.shared.tunnels, self.shared.config.limits.max_tunnels)
    }

    pub(crate) fn release_tunnel(&self) {
        count_down(&self.shared.tunnels);
    }

    pub(crate) fn find_group(&self, name: &str) -> Option<usize> {
        self.shared.groups.find(name)
    }

    pub(crate) fn group_len(&self, group: usize) -> usize {
        self.shared.groups.len(group)
    }

    pub(crate) fn pick(
        &self,
        group: usize,
        tried: &[usize],
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<ServerId> {
        self.shared.groups.pick(group, tried, client, now)
    }

    pub(crate) fn release_server(&self, id: &ServerId) {
        self.shared.groups.release(id);
    }

    pub(crate) fn server_connected(&self, id: &ServerId) {
        self.shared.groups.connected(id);
    }

    pub(crate) fn server_failed(&self, id: &ServerId, now: Instant) {
        self.shared.groups.failed(id, now);
    }
}

/// Counts one more in `count`, unless `max` (0: no limit) is reached.
fn take_slot(count: &AtomicUsize, max: usize) -> bool {
    match max {
        0 => {
            count.fetch_add(1, Relaxed);
            true
        }
        _ => (count.fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))).is_ok(),
    }
}

/// Token bucket: `rate` tokens per second, bursts of `rate`. Full buckets are pruned
/// when the table grows, so idle addresses cost nothing.
fn take_token(
    buckets: &mut HashMap<IpAddr, (u64, Instant)>,
    ip: IpAddr,
    rate: u64,
    now: Instant,
) -> bool {
    let full = rate * 1000;
    if buckets.len() > 10_000 {
        buckets.retain(|_, (tokens, last)| {
            let elapsed = now.saturating_duration_since(*last).as_millis() as u64;
            tokens.saturating_add(elapsed.saturating_mul(rate)) < full
        });
    }
    let (tokens, last) = buckets.entry(ip).or_insert((full, now));
    let elapsed = now.saturating_duration_since(*last).as_millis() as u64;
    *tokens = (*tokens)
        .saturating_add(elapsed.saturating_mul(rate))
        .min(full);
    *last = now;
    if *tokens >= 1000 {
        *tokens -= 1000;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(edit: impl FnOnce(&mut Config)) -> Proxy {
        let mut config = Config::default();
        edit(&mut config);
        Proxy::new(Arc::new(config))
    }

    /// Threads admitting at once never take more slots than the limit, and every
    /// refusal gives back what it took.
    #[test]
    fn threads_admitting_at_once_never_go_over_max_connections() {
        let proxy = proxy(|c| {
            c.limits.max_connections = 50;
            c.limits.max_connections_per_ip = 30;
        });
        let now = crate::sim::Sim::new(Config::default()).now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let admitted: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let proxy = &proxy;
                    let ip = if t % 2 == 0 { a } else { b };
                    scope.spawn(move || {
                        (0..200)
                            .filter(|_| proxy.admit(Some(ip), now).is_ok())
                            .count()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert!(admitted <= 50, "{admitted} admitted");
        assert_eq!(proxy.status(now).connections, admitted);
        // No refusal kept a slot: a third address fills exactly what is left.
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        while proxy.admit(Some(c), now).is_ok() {}
        assert_eq!(proxy.status(now).connections, 50);
        let per_ip = proxy.lock_per_ip().connections.clone();
        assert_eq!(per_ip.values().sum::<usize>(), 50);
        assert!(per_ip.values().all(|&n| n <= 30), "{per_ip:?}");
        for (ip, n) in per_ip {
            (0..n).for_each(|_| proxy.release_connection(Some(ip)));
        }
        assert_eq!(proxy.status(now).connections, 0);
        assert!(proxy.lock_per_ip().connections.is_empty());
    }

    #[test]
    fn tunnel_slots_stop_at_max_tunnels_and_come_back() {
        let proxy = proxy(|c| c.limits.max_tunnels = 2);
        let now = crate::sim::Sim::new(Config::default()).now();
        assert!(proxy.reserve_tunnel() && proxy.reserve_tunnel());
        assert!(!proxy.reserve_tunnel());
        assert_eq!(proxy.status(now).tunnels, 2);
        proxy.release_tunnel();
        assert!(proxy.reserve_tunnel());
        (0..5).for_each(|_| proxy.release_tunnel());
        assert_eq!(proxy.status(now).tunnels, 0, "never below 0");
    }
}
