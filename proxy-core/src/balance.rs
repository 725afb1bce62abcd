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
//!
//! A server may carry a `weight` (its share, against the others') and be a `backup`
//! (taken only when no other server of its group is usable), written after its
//! address as nginx writes them: `"10.0.0.2:80 weight=3"`, `"10.0.0.9:80 backup"`.

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

/// The most a server's `weight` may be: a round-robin cycle is as long as the weights'
/// sum, and is laid out when the configuration loads.
pub const MAX_WEIGHT: u32 = 256;

/// A `servers` entry: `host:port`, then nginx's options `weight=N` (1 to
/// [`MAX_WEIGHT`], default 1) and `backup`, separated by spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSpec<'a> {
    /// The `host:port`.
    pub address: &'a str,
    /// Its share of new connections against the other servers' weights.
    pub weight: u32,
    /// Used only while no server of the group that is not a backup is usable.
    pub backup: bool,
}

impl<'a> ServerSpec<'a> {
    /// Reads an entry, or says what is wrong with it.
    pub fn parse(text: &'a str) -> Result<ServerSpec<'a>, String> {
        let mut words = text.split_ascii_whitespace();
        let address = words.next().ok_or("a server address is empty")?;
        let mut spec = ServerSpec {
            address,
            weight: 1,
            backup: false,
        };
        let (mut weight_seen, mut backup_seen) = (false, false);
        for word in words {
            match word.split_once('=') {
                Some(("weight", n)) if !weight_seen => {
                    weight_seen = true;
                    spec.weight = (n.parse().ok())
                        .filter(|w| (1..=MAX_WEIGHT).contains(w))
                        .ok_or_else(|| {
                            format!("{word:?}: a weight is a whole number from 1 to {MAX_WEIGHT}")
                        })?;
                }
                None if word == "backup" && !backup_seen => {
                    backup_seen = true;
                    spec.backup = true;
                }
                _ => {
                    return Err(format!(
                        "{word:?} in {text:?}: after the address a server takes \"weight=N\" and \"backup\", once each"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

#[derive(Debug)]
struct ServerState {
    address: Arc<str>,
    weight: u32,
    backup: bool,
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
    /// One round-robin cycle: each server's index as often as its weight, spread out
    /// (nginx's smooth weighted round robin, laid out once). With equal weights, each
    /// server once, in order.
    schedule: Vec<usize>,
    /// Where round-robin continues (a position in `schedule`), and where
    /// least-connections starts looking (a server index), so ties go round.
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
            let servers: Vec<ServerState> = (group.servers.iter())
                .map(|text| {
                    // `Config::validate` refuses what does not parse; here, the whole
                    // text is taken as the address then, and fails as one.
                    let spec = ServerSpec::parse(text).unwrap_or(ServerSpec {
                        address: text,
                        weight: 1,
                        backup: false,
                    });
                    ServerState {
                        address: spec.address.into(),
                        weight: spec.weight,
                        backup: spec.backup,
                        active: AtomicUsize::new(0),
                        fails: AtomicU32::new(0),
                        down: AtomicBool::new(false),
                        down_until: Mutex::new(None),
                    }
                })
                .collect();
            let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
            groups.push(GroupState {
                balance: group.balance,
                max_fails: group.max_fails.max(1),
                fail_timeout: group.fail_timeout,
                schedule: smooth_weighted_cycle(&weights),
                servers,
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

    /// Chooses a server of `group` that is up and not in `tried` (a backup only when no
    /// other is), and counts it in use; `client` is the address [`Balance::ClientIp`]
    /// keys by. Picks on several threads at once may start from the same cursor: the
    /// choice spreads a little less evenly then, and each is still counted.
    pub fn pick(
        &self,
        group: usize,
        tried: &[usize],
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<ServerId> {
        let state = self.groups.get(group)?;
        let (n, cycle) = (state.servers.len(), state.schedule.len());
        let cursor = state.cursor.load(Relaxed);
        let (chosen, next_cursor) = [false, true].into_iter().find_map(|backups| {
            let usable = |i: &usize| {
                let s = &state.servers[*i];
                s.backup == backups
                    && !tried.contains(i)
                    && s.down_until().is_none_or(|until| until <= now)
            };
            let rotation = (0..n).map(|k| (cursor + k) % n);
            match (state.balance, client) {
                (Balance::ClientIp, Some(client)) => rotation
                    .filter(usable)
                    .map(|i| (i, weighted_rendezvous_score(client, &state.servers[i])))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, _)| (i, cursor)),
                (Balance::RoundRobin | Balance::ClientIp, _) => (0..cycle)
                    .map(|k| (cursor + k) % cycle)
                    .find(|&at| usable(&state.schedule[at]))
                    .map(|at| (state.schedule[at], (at + 1) % cycle)),
                (Balance::LeastConnections, _) => {
                    let load = |i: usize| {
                        let s = &state.servers[i];
                        (s.active.load(Relaxed) as u64, u64::from(s.weight))
                    };
                    // Fewest connections per unit of weight; the first of equals.
                    rotation
                        .filter(usable)
                        .min_by(|&a, &b| {
                            let ((load_a, weight_a), (load_b, weight_b)) = (load(a), load(b));
                            (load_a * weight_b).cmp(&(load_b * weight_a))
                        })
                        .map(|i| (i, (i + 1) % n))
                }
            }
        })?;
        // With one server the cursor stays 0: no write to a line every thread reads.
        if next_cursor != cursor {
            state.cursor.store(next_cursor, Relaxed);
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

/// Weighted rendezvous hashing: the score `weight / -ln(u)` for `u` the hash scaled
/// into (0, 1) gives each server clients in proportion to its weight, and with equal
/// weights orders servers as the hash itself does.
fn weighted_rendezvous_score(client: IpAddr, server: &ServerState) -> f64 {
    let hash = rendezvous_score(client, &server.address);
    let unit = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(server.weight) / -unit.ln()
}

/// One cycle of smooth weighted round robin (as nginx picks): at each step every
/// server gains its weight, the one with the most (the first of equals) is taken and
/// loses the weights' sum. Each server comes up `weight` times, spread out.
fn smooth_weighted_cycle(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let best = (0..current.len())
                .rev()
                .max_by_key(|&i| current[i])
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
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

    /// Fails server `server` of group 0 twice: `max_fails` here, so it is down.
    fn take_down(g: &Groups, server: usize, now: Instant) {
        let id = ServerId {
            group: 0,
            server,
            address: "".into(),
        };
        g.failed(&id, now);
        g.failed(&id, now);
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
        take_down(&g, 1, now);
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

    /// Picks `n` servers of group 0 in a row, released at once.
    fn picks(g: &Groups, n: usize, now: Instant) -> Vec<String> {
        (0..n)
            .map(|_| {
                let id = g.pick(0, &[], None, now).unwrap();
                g.release(&id);
                id.address.to_string()
            })
            .collect()
    }

    #[test]
    fn server_entries_take_weight_and_backup_after_the_address() {
        let spec = ServerSpec::parse("10.0.0.2:80 weight=3 backup").unwrap();
        assert_eq!(
            (spec.address, spec.weight, spec.backup),
            ("10.0.0.2:80", 3, true)
        );
        let plain = ServerSpec::parse("  a:1 ").unwrap();
        assert_eq!(
            (plain.address, plain.weight, plain.backup),
            ("a:1", 1, false)
        );
        for bad in [
            "",
            "a:1 weight=0",
            "a:1 weight=257",
            "a:1 weight=x",
            "a:1 weight=2 weight=3",
            "a:1 backup backup",
            "a:1 down",
            "a:1 max_fails=3",
        ] {
            assert!(ServerSpec::parse(bad).is_err(), "{bad:?}");
        }
        let mut config = Config::default();
        config.upstreams.insert(
            "api".into(),
            UpstreamGroup {
                servers: vec!["a:1 backup".into(), "b:1 backup".into()],
                ..UpstreamGroup::default()
            },
        );
        let error = config.validate().unwrap_err();
        assert!(
            error.starts_with("upstreams.api.servers: every server is a backup"),
            "{error}"
        );
    }

    #[test]
    fn round_robin_gives_each_server_its_weight_spread_out() {
        let g = groups(
            Balance::RoundRobin,
            &["a:1 weight=3", "b:1", "c:1 weight=2"],
        );
        let now = clock();
        let cycle = picks(&g, 6, now);
        let count = |s: &str| cycle.iter().filter(|p| *p == s).count();
        assert_eq!((count("a:1"), count("b:1"), count("c:1")), (3, 1, 2));
        assert!(
            cycle.windows(2).all(|w| w[0] != w[1]),
            "spread out: {cycle:?}"
        );
        assert_eq!(picks(&g, 6, now), cycle, "the same cycle again");
        assert_eq!(
            smooth_weighted_cycle(&[1, 1, 1]),
            [0, 1, 2],
            "equal weights: each in turn"
        );
        // A server down leaves the others their turns.
        take_down(&g, 0, now);
        let without_a = picks(&g, 6, now);
        assert!(!without_a.contains(&"a:1".to_string()));
        assert_eq!(without_a.iter().filter(|p| *p == "c:1").count(), 4);
    }

    #[test]
    fn backups_serve_only_while_no_other_server_is_usable() {
        for balance in [
            Balance::RoundRobin,
            Balance::LeastConnections,
            Balance::ClientIp,
        ] {
            let g = groups(balance, &["a:1", "x:1 backup", "b:1", "y:1 backup"]);
            let now = clock();
            let all = picks(&g, 8, now);
            assert!(
                all.iter().all(|p| p == "a:1" || p == "b:1"),
                "{balance:?}: {all:?}"
            );
            // `a` tried and `b` down: a backup, and the other backup next.
            take_down(&g, 2, now);
            let backup = g.pick(0, &[0], None, now).unwrap();
            assert!(["x:1", "y:1"].contains(&&*backup.address), "{balance:?}");
            let other = g.pick(0, &[0, backup.server], None, now).unwrap();
            assert!(["x:1", "y:1"].contains(&&*other.address));
            assert_ne!(backup.server, other.server);
            assert_eq!(g.pick(0, &[0, 1, 3], None, now), None);
            // With `a` untried, `a` again; once `b` is back, never a backup.
            assert_eq!(&*g.pick(0, &[], None, now).unwrap().address, "a:1");
            let later = now + Duration::from_secs(10);
            let after = picks(&g, 8, later);
            assert!(after.iter().all(|p| p == "a:1" || p == "b:1"), "{after:?}");
        }
    }

    #[test]
    fn least_connections_counts_connections_per_unit_of_weight() {
        let g = groups(Balance::LeastConnections, &["a:1 weight=2", "b:1"]);
        let now = clock();
        // Held, not released: `a` takes two for each of `b`'s.
        let held: Vec<ServerId> = (0..9).map(|_| g.pick(0, &[], None, now).unwrap()).collect();
        let on_a = held.iter().filter(|id| &*id.address == "a:1").count();
        assert_eq!((on_a, held.len() - on_a), (6, 3));
    }

    #[test]
    fn client_ip_gives_servers_clients_by_weight_and_keeps_placements_of_equal_weights() {
        let g = groups(Balance::ClientIp, &["a:1", "b:1", "c:1 weight=2"]);
        let now = clock();
        let placed = placement(&g, 4000, &[], now);
        let share = |s: &str| placed.iter().filter(|p| *p == s).count();
        assert!((850..=1150).contains(&share("a:1")), "a: {}", share("a:1"));
        assert!((850..=1150).contains(&share("b:1")), "b: {}", share("b:1"));
        assert!((1800..=2200).contains(&share("c:1")), "c: {}", share("c:1"));
        // A backup gets no client while the others are up.
        let with_backup = groups(Balance::ClientIp, &["a:1", "z:1 backup", "b:1"]);
        let placed = placement(&with_backup, 3000, &[], now);
        assert!(placed.iter().all(|p| p != "z:1"));
        // Weight 1 written out changes nothing.
        let plain = groups(Balance::ClientIp, &["a:1", "b:1", "c:1"]);
        let explicit = groups(Balance::ClientIp, &["a:1 weight=1", "b:1", "c:1 weight=1"]);
        assert_eq!(
            placement(&plain, 3000, &[], now),
            placement(&explicit, 3000, &[], now)
        );
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
