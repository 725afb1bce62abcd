//! [`Proxy`]: what every session of one configuration shares — the configuration,
//! upstream selection and health ([`crate::balance`]), and the connection, rate and
//! tunnel limits. Sessions come from it, as quinn-proto's connections come from
//! its endpoint.
//!
//! Runtimes run sessions on several threads, so the limits' counts sit behind a mutex,
//! taken once per connection or tunnel and held for a few field updates; upstream
//! selection, used at every request, keeps atomic counts instead (`balance.rs`). The
//! core itself never blocks, spawns or reads a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::balance::{Groups, ServerId, ServerStatus};
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
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    connections: usize,
    /// Connections per client address, counted only under a per-address limit.
    per_ip: HashMap<IpAddr, usize>,
    /// Token buckets for new connections per IP: (tokens × 1000, last refill).
    rate: HashMap<IpAddr, (u64, Instant)>,
    tunnels: usize,
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
        let state = State {
            connections: 0,
            per_ip: HashMap::new(),
            rate: HashMap::new(),
            tunnels: 0,
        };
        Proxy {
            shared: Arc::new(Shared {
                groups: Groups::new(&config),
                config,
                clock,
                state: Mutex::new(state),
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
        let state = self.lock();
        ProxyStatus {
            connections: state.connections,
            tunnels: state.tunnels,
            servers: self.shared.groups.status(now),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code holding the lock can panic; a poisoned lock still has valid data.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a new client connection, or says which limit it is over.
    pub(crate) fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), ProxyError> {
        let limits = &self.shared.config.limits;
        let mut state = self.lock();
        if limits.max_connections > 0 && state.connections >= limits.max_connections {
            return Err(ProxyError::TooManyConnections);
        }
        if let Some(ip) = ip {
            if limits.max_connections_per_ip > 0
                && state.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_ip
            {
                return Err(ProxyError::TooManyConnections);
            }
            let rate = u64::from(limits.new_connections_per_ip_per_second);
            if rate > 0 && !take_token(&mut state.rate, ip, rate, now) {
                return Err(ProxyError::RateLimited);
            }
            if limits.max_connections_per_ip > 0 {
                *state.per_ip.entry(ip).or_insert(0) += 1;
            }
        }
        state.connections += 1;
        Ok(())
    }

    pub(crate) fn release_connection(&self, ip: Option<IpAddr>) {
        let counted_per_ip = self.shared.config.limits.max_connections_per_ip > 0;
        let mut state = self.lock();
        state.connections = state.connections.saturating_sub(1);
        if let Some(ip) = ip.filter(|_| counted_per_ip) {
            if let Some(count) = state.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    state.per_ip.remove(&ip);
                }
            }
        }
    }

    /// Reserves a tunnel slot for an upgrade request, if under `max_tunnels`.
    pub(crate) fn reserve_tunnel(&self) -> bool {
        let max = self.shared.config.limits.max_tunnels;
        let mut state = self.lock();
        if max > 0 && state.tunnels >= max {
            return false;
        }
        state.tunnels += 1;
        true
    }

    pub(crate) fn release_tunnel(&self) {
        let mut state = self.lock();
        state.tunnels = state.tunnels.saturating_sub(1);
    }

    pub(crate) fn find_group(&self, name: &str) -> Option<usize> {
        self.shared.groups.find(name)
    }

    pub(crate) fn group_len(&self, group: usize) -> usize {
        self.shared.groups.len(group)
    }

    pub(crate) fn pick(&self, group: usize, tried: &[usize], now: Instant) -> Option<ServerId> {
        self.shared.groups.pick(group, tried, now)
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
