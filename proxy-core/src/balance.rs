//! Upstream groups: which server gets the next connection, and passive health.
//!
//! Deterministic data: the same calls in the same order give the same choices, so the
//! policy is tested on a virtual clock. A server that fails `max_fails` connects in a
//! row is skipped for `fail_timeout` (nginx's passive health checks); when every
//! server of a group is skipped, the request gets a 502 rather than a guess.
//!
//! Every request picks a server and releases it, on whichever thread runs its
//! session, so the counts are atomics rather than fields behind the proxy's lock: a
//! pick is a scan and an increment, with no lock unless a server is down.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Balance, Config, UpstreamGroup};

/// A server of a group, as chosen by [`Groups::pick`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerId {
    /// Index of the group.
    pub group: usize,
    /// Index of the server in its group.
    pub server: usize,
    /// Its `host:port`.
    pub address: Arc<str>,
}

#[derive(Debug)]
struct ServerState {
    address: Arc<str>,
    /// Connections in use (picked and not yet released).
    active: AtomicUsize,
    /// Connect failures in a row.
    fails: AtomicU32,
    /// `down_until` holds a time: read first, so that a healthy server costs no lock.
    down: AtomicBool,
    /// Skipped until then.
    down_until: Mutex<Option<Instant>>,
}

impl ServerState {
    /// When the server comes back, if it is being skipped or was until lately.
    fn down_until(&self) -> Option<Instant> {
        if !self.down.load(Relaxed) {
            return None;
        }
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Skips the server until `until`.
    fn skip_until(&self, until: Instant) {
        let mut guard = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some(until);
        self.down.store(true, Relaxed);
    }

    /// Forgets a skip that has run out by `now`; one set again meanwhile (by a
    /// failure on another thread) is kept.
    fn revive_if_due(&self, now: Instant) {
        if !self.down.load(Relaxed) {
            return;
        }
        let mut guard = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_some_and(|until| until <= now) {
            *guard = None;
            self.down.store(false, Relaxed);
        }
    }
}

#[derive(Debug)]
struct GroupState {
    balance: Balance,
    max_fails: u32,
    fail_timeout: Duration,
    servers: Vec<ServerState>,
    /// Where round-robin (and tie-breaking) continues.
    cursor: AtomicUsize,
}

/// Every group's selection state.
#[derive(Debug)]
pub struct Groups {
    groups: Vec<GroupState>,
    by_name: BTreeMap<String, usize>,
}

/// A server's health, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// Its group's name.
    pub group: String,
    /// Its address.
    pub address: String,
    /// Connections in use.
    pub active: usize,
    /// Whether it is being skipped after failures.
    pub down: bool,
}

impl Groups {
    /// The groups of `config`: its `upstreams`, plus `default` from `upstream` when
    /// not defined there.
    pub fn new(config: &Config) -> Groups {
        let mut groups = Vec::new();
        let mut by_name = BTreeMap::new();
        let mut add = |name: &str, group: &UpstreamGroup| {
            by_name.insert(name.to_string(), groups.len());
            groups.push(GroupState {
                balance: group.balance,
                max_fails: group.max_fails.max(1),
                fail_timeout: group.fail_timeout,
                servers: group
                    .servers
                    .iter()
                    .map(|address| ServerState {
                        address: address.as_str().into(),
                        active: AtomicUsize::new(0),
                        fails: AtomicU32::new(0),
                        down: AtomicBool::new(false),
                        down_until: Mutex::new(None),
                    })
                    .collect(),
                cursor: AtomicUsize::new(0),
            });
        };
        for (name, group) in &config.upstreams {
            add(name, group);
        }
        if !config.upstreams.contains_key("default") {
            add(
                "default",
                &UpstreamGroup {
                    servers: vec![config.upstream.clone()],
                    ..UpstreamGroup::default()
                },
            );
        }
        Groups { groups, by_name }
    }

    /// The index of the group with this name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Chooses a server of `group` that is up and not in `tried`, and counts it in use;
    /// `client` is the address [`Balance::ClientIp`] keys by. Picks on several threads
    /// at once may start from the same cursor: the choice spreads a little less evenly
    /// then, and each is still counted.
    pub fn pick(
        &self,
        group: usize,
        tried: &[usize],
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<ServerId> {
        let state = self.groups.get(group)?;
        let n = state.servers.len();
        let usable = |i: usize, s: &ServerState| {
            !tried.contains(&i) && s.down_until().is_none_or(|until| until <= now)
        };
        let cursor = state.cursor.load(Relaxed);
        let order = (0..n).map(|k| (cursor + k) % n);
        let chosen = match (state.balance, client) {
            (Balance::ClientIp, Some(client)) => order
                .filter(|&i| usable(i, &state.servers[i]))
                .max_by_key(|&i| rendezvous_score(client, &state.servers[i].address)),
            (Balance::RoundRobin | Balance::ClientIp, _) => {
                order.clone().find(|&i| usable(i, &state.servers[i]))
            }
            (Balance::LeastConnections, _) => order
                .filter(|&i| usable(i, &state.servers[i]))
                .min_by_key(|&i| state.servers[i].active.load(Relaxed)),
        }?;
        // With one server the cursor stays 0: no write to a line every thread reads.
        if n > 1 && !(state.balance == Balance::ClientIp && client.is_some()) {
            state.cursor.store((chosen + 1) % n, Relaxed);
        }
        let server = &state.servers[chosen];
        server.active.fetch_add(1, Relaxed);
        server.revive_if_due(now);
        Some(ServerId {
            group,
            server: chosen,
            address: server.address.clone(),
        })
    }

    /// The connection to `id` is no longer in use.
    pub fn release(&self, id: &ServerId) {
        if let Some(server) = self.server(id) {
            // Never below zero, even for a release that was never picked.
            count_down(&server.active);
        }
    }

    /// Dialling `id` succeeded: its failure count restarts.
    pub fn connected(&self, id: &ServerId) {
        if let Some(server) = self.server(id) {
            server.fails.store(0, Relaxed);
        }
    }

    /// Dialling `id` failed; after `max_fails` in a row it is skipped for `fail_timeout`.
    pub fn failed(&self, id: &ServerId, now: Instant) {
        let Some(group) = self.groups.get(id.group) else {
            return;
        };
        if let Some(server) = group.servers.get(id.server) {
            let fails = server.fails.fetch_add(1, Relaxed).saturating_add(1);
            if fails >= group.max_fails {
                server.fails.store(0, Relaxed);
                server.skip_until(now + group.fail_timeout);
            }
        }
    }

    /// How many servers `group` has.
    pub fn len(&self, group: usize) -> usize {
        self.groups.get(group).map_or(0, |g| g.servers.len())
    }

    /// Every server's state, for metrics.
    pub fn status(&self, now: Instant) -> Vec<ServerStatus> {
        let names: BTreeMap<usize, &String> = self.by_name.iter().map(|(n, &i)| (i, n)).collect();
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| {
                let name = names.get(&g).map_or(String::new(), |n| n.to_string());
                group.servers.iter().map(move |s| ServerStatus {
                    group: name.clone(),
                    address: s.address.to_string(),
                    active: s.active.load(Relaxed),
                    down: s.down_until().is_some_and(|until| until > now),
                })
            })
            .collect()
    }

    fn server(&self, id: &ServerId) -> Option<&ServerState> {
        self.groups.get(id.group)?.servers.get(id.server)
    }
}

/// How much `client` prefers `server` (rendezvous hashing: each client takes the
/// usable server of highest score). FNV-1a over both addresses, then splitmix64's
/// finaliser so that neighbouring addresses spread; written out rather than std's
/// hasher, whose output may change between Rust releases, so that every proxy
/// agrees. An IPv4 client is hashed as its IPv4-mapped IPv6 address.
fn rendezvous_score(client: IpAddr, server: &str) -> u64 {
    let client = match client {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in client.iter().chain(server.as_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Counts one less in `count`, never below 0 (a release with no matching take
/// changes nothing).
pub(crate) fn count_down(count: &AtomicUsize) {
    let _ = count.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(balance: Balance, servers: &[&str]) -> Groups {
        let mut config = Config::default();
        config.upstreams.insert(
            "default".into(),
            UpstreamGroup {
                servers: servers.iter().map(|s| s.to_string()).collect(),
                balance,
                max_fails: 2,
                fail_timeout: Duration::from_secs(10),
            },
        );
        Groups::new(&config)
    }

    fn clock() -> Instant {
        crate::sim::Sim::new(Config::default()).now()
    }

    #[test]
    fn round_robin_takes_each_server_in_turn() {
        let g = groups(Balance::RoundRobin, &["a:1", "b:1", "c:1"]);
        let now = clock();
        let picks: Vec<String> = (0..6)
            .map(|_| g.pick(0, &[], None, now).unwrap().address.to_string())
            .collect();
        assert_eq!(picks, ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]);
    }

    #[test]
    fn least_connections_takes_the_least_busy_server() {
        let g = groups(Balance::LeastConnections, &["a:1", "b:1"]);
        let now = clock();
        let first = g.pick(0, &[], None, now).unwrap();
        let second = g.pick(0, &[], None, now).unwrap();
        assert_ne!(first.server, second.server);
        g.release(&first);
        assert_eq!(
            g.pick(0, &[], None, now).unwrap().server,
            first.server,
            "the one released"
        );
    }

    #[test]
    fn a_server_failing_max_fails_times_is_skipped_for_fail_timeout() {
        let g = groups(Balance::RoundRobin, &["a:1", "b:1"]);
        let now = clock();
        let a = ServerId {
            group: 0,
            server: 0,
            address: "a:1".into(),
        };
        g.failed(&a, now);
        assert!(!g.status(now)[0].down, "one failure is not enough");
        g.failed(&a, now);
        assert!(g.status(now)[0].down);
        for _ in 0..4 {
            assert_eq!(&*g.pick(0, &[], None, now).unwrap().address, "b:1");
        }
        let later = now + Duration::from_secs(10);
        let picks: Vec<String> = (0..2)
            .map(|_| g.pick(0, &[], None, later).unwrap().address.to_string())
            .collect();
        assert!(
            picks.contains(&"a:1".to_string()),
            "back after fail_timeout"
        );
    }

    #[test]
    fn picks_and_releases_on_many_threads_leave_every_count_at_zero() {
        let g = groups(Balance::LeastConnections, &["a:1", "b:1", "c:1"]);
        let now = clock();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..5_000 {
                        let id = g.pick(0, &[], None, now).expect("all servers are up");
                        g.release(&id);
                    }
                });
            }
        });
        let active: Vec<usize> = g.status(now).iter().map(|s| s.active).collect();
        assert_eq!(active, [0, 0, 0]);
        // A release never picked (a session's bookkeeping gone wrong) stays at zero.
        g.release(&ServerId {
            group: 0,
            server: 0,
            address: "a:1".into(),
        });
        assert_eq!(g.status(now)[0].active, 0);
    }

    fn ip(i: u32) -> IpAddr {
        if i.is_multiple_of(2) {
            IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + i))
        } else {
            IpAddr::from(std::net::Ipv6Addr::from(
                0x2001_0db8_u128 << 96 | u128::from(i),
            ))
        }
    }

    /// Which server each of `clients` client addresses gets (released at once).
    fn placement(g: &Groups, clients: u32, tried: &[usize], now: Instant) -> Vec<String> {
        (0..clients)
            .map(|i| {
                let id = g.pick(0, tried, Some(ip(i)), now).unwrap();
                g.release(&id);
                id.address.to_string()
            })
            .collect()
    }

    #[test]
    fn client_ip_keeps_each_client_on_one_server_and_spreads_clients_evenly() {
        let g = groups(Balance::ClientIp, &["a:1", "b:1", "c:1"]);
        let now = clock();
        let first = placement(&g, 3000, &[], now);
        assert_eq!(placement(&g, 3000, &[], now), first, "the same again");
        for server in ["a:1", "b:1", "c:1"] {
            let share = first.iter().filter(|s| *s == server).count();
            assert!((850..=1150).contains(&share), "{server}: {share} of 3000");
        }
        // Another proxy (another `Groups`) in front of the same servers agrees.
        let other = groups(Balance::ClientIp, &["a:1", "b:1", "c:1"]);
        assert_eq!(placement(&other, 3000, &[], now), first);
    }

    #[test]
    fn client_ip_moves_only_the_clients_of_a_server_that_is_down_or_added() {
        let g = groups(Balance::ClientIp, &["a:1", "b:1", "c:1"]);
        let now = clock();
        let before = placement(&g, 3000, &[], now);
        let b = ServerId {
            group: 0,
            server: 1,
            address: "b:1".into(),
        };
        g.failed(&b, now);
        g.failed(&b, now);
        let during = placement(&g, 3000, &[], now);
        for (was, is) in before.iter().zip(&during) {
            match was.as_str() {
                "b:1" => assert_ne!(is, "b:1"),
                _ => assert_eq!(was, is, "a client of a live server moved"),
            }
        }
        // Tried (a failed connect of this request) moves only that client, the same way.
        assert_eq!(placement(&g, 3000, &[1], now), during);
        let after = placement(&g, 3000, &[], now + Duration::from_secs(10));
        assert_eq!(after, before, "back on b once it is");
        let grown = groups(Balance::ClientIp, &["a:1", "b:1", "c:1", "d:1"]);
        let grown = placement(&grown, 3000, &[], now);
        let moved: Vec<&String> = before
            .iter()
            .zip(&grown)
            .filter(|(was, is)| was != is)
            .map(|(_, is)| is)
            .collect();
        assert!(
            moved.iter().all(|s| *s == "d:1"),
            "moved only to the new server"
        );
        assert!(
            (600..=900).contains(&moved.len()),
            "{} of 3000 moved",
            moved.len()
        );
    }

    #[test]
    fn client_ip_without_an_address_takes_servers_in_turn() {
        let g = groups(Balance::ClientIp, &["a:1", "b:1"]);
        let now = clock();
        let picks: Vec<String> = (0..4)
            .map(|_| g.pick(0, &[], None, now).unwrap().address.to_string())
            .collect();
        assert_eq!(picks, ["a:1", "b:1", "a:1", "b:1"]);
    }

    #[test]
    fn tried_servers_are_not_picked_again_and_none_left_is_none() {
        let g = groups(Balance::RoundRobin, &["a:1", "b:1"]);
        let now = clock();
        let first = g.pick(0, &[], None, now).unwrap();
        let second = g.pick(0, &[first.server], None, now).unwrap();
        assert_ne!(first.server, second.server);
        assert_eq!(g.pick(0, &[first.server, second.server], None, now), None);
    }
}
