//! Upstream groups: which server gets the next connection, and passive health.
//!
//! Deterministic data: the same calls in the same order give the same choices, so the
//! policy is tested on a virtual clock. A server that fails `max_fails` connects in a
//! row is skipped for `fail_timeout` (nginx's passive health checks); when every
//! server of a group is skipped, the request gets a 502 rather than a guess.

use std::collections::BTreeMap;
use std::sync::Arc;
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
    active: usize,
    /// Connect failures in a row.
    fails: u32,
    /// Skipped until then.
    down_until: Option<Instant>,
}

#[derive(Debug)]
struct GroupState {
    balance: Balance,
    max_fails: u32,
    fail_timeout: Duration,
    servers: Vec<ServerState>,
    /// Where round-robin (and tie-breaking) continues.
    cursor: usize,
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
                        active: 0,
                        fails: 0,
                        down_until: None,
                    })
                    .collect(),
                cursor: 0,
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

    /// Chooses a server of `group` that is up and not in `tried`, and counts it in use.
    pub fn pick(&mut self, group: usize, tried: &[usize], now: Instant) -> Option<ServerId> {
        let state = self.groups.get_mut(group)?;
        let n = state.servers.len();
        let usable = |i: usize, s: &ServerState| {
            !tried.contains(&i) && s.down_until.is_none_or(|until| until <= now)
        };
        let order = (0..n).map(|k| (state.cursor + k) % n);
        let chosen = match state.balance {
            Balance::RoundRobin => order.clone().find(|&i| usable(i, &state.servers[i])),
            Balance::LeastConnections => order
                .filter(|&i| usable(i, &state.servers[i]))
                .min_by_key(|&i| state.servers[i].active),
        }?;
        state.cursor = (chosen + 1) % n;
        let server = &mut state.servers[chosen];
        server.active += 1;
        if server.down_until.is_some_and(|until| until <= now) {
            server.down_until = None;
        }
        Some(ServerId {
            group,
            server: chosen,
            address: server.address.clone(),
        })
    }

    /// The connection to `id` is no longer in use.
    pub fn release(&mut self, id: &ServerId) {
        if let Some(server) = self.server(id) {
            server.active = server.active.saturating_sub(1);
        }
    }

    /// Dialling `id` succeeded: its failure count restarts.
    pub fn connected(&mut self, id: &ServerId) {
        if let Some(server) = self.server(id) {
            server.fails = 0;
        }
    }

    /// Dialling `id` failed; after `max_fails` in a row it is skipped for `fail_timeout`.
    pub fn failed(&mut self, id: &ServerId, now: Instant) {
        let Some(group) = self.groups.get_mut(id.group) else {
            return;
        };
        let (max_fails, fail_timeout) = (group.max_fails, group.fail_timeout);
        if let Some(server) = group.servers.get_mut(id.server) {
            server.fails += 1;
            if server.fails >= max_fails {
                server.fails = 0;
                server.down_until = Some(now + fail_timeout);
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
                    active: s.active,
                    down: s.down_until.is_some_and(|until| until > now),
                })
            })
            .collect()
    }

    fn server(&mut self, id: &ServerId) -> Option<&mut ServerState> {
        self.groups.get_mut(id.group)?.servers.get_mut(id.server)
    }
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
        let mut g = groups(Balance::RoundRobin, &["a:1", "b:1", "c:1"]);
        let now = clock();
        let picks: Vec<String> = (0..6)
            .map(|_| g.pick(0, &[], now).unwrap().address.to_string())
            .collect();
        assert_eq!(picks, ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]);
    }

    #[test]
    fn least_connections_takes_the_least_busy_server() {
        let mut g = groups(Balance::LeastConnections, &["a:1", "b:1"]);
        let now = clock();
        let first = g.pick(0, &[], now).unwrap();
        let second = g.pick(0, &[], now).unwrap();
        assert_ne!(first.server, second.server);
        g.release(&first);
        assert_eq!(
            g.pick(0, &[], now).unwrap().server,
            first.server,
            "the one released"
        );
    }

    #[test]
    fn a_server_failing_max_fails_times_is_skipped_for_fail_timeout() {
        let mut g = groups(Balance::RoundRobin, &["a:1", "b:1"]);
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
            assert_eq!(&*g.pick(0, &[], now).unwrap().address, "b:1");
        }
        let later = now + Duration::from_secs(10);
        let picks: Vec<String> = (0..2)
            .map(|_| g.pick(0, &[], later).unwrap().address.to_string())
            .collect();
        assert!(
            picks.contains(&"a:1".to_string()),
            "back after fail_timeout"
        );
    }

    #[test]
    fn tried_servers_are_not_picked_again_and_none_left_is_none() {
        let mut g = groups(Balance::RoundRobin, &["a:1", "b:1"]);
        let now = clock();
        let first = g.pick(0, &[], now).unwrap();
        let second = g.pick(0, &[first.server], now).unwrap();
        assert_ne!(first.server, second.server);
        assert_eq!(g.pick(0, &[first.server, second.server], now), None);
    }
}
