//! The `switchyard.toml` file: what it may contain, and the errors it gets.
//!
//! Every key is optional and unknown keys are errors. An error names the file, the
//! line and the key, e.g.
//! `switchyard.toml:7: timeouts.client_head: invalid duration unit "x" in "5x": use ms, s, m or h`.
//! `runtime-tokio/switchyard.example.toml` lists every key with its default.
//!
//! Every runtime's binary reads the same file through [`Settings::load`]: the keys are
//! the core's [`Config`] plus `listen`, `threads` and `[log]`.

use proxy_core::{Config, Forwarded, Limits, Pool, Timeouts, WebSocket};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// Where the proxy listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Smallest accepted `buffer_size`.
pub const MIN_BUFFER_SIZE: usize = 1024;

/// Everything the binary runs with: the core's [`Config`] plus the runtime's own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Addresses to accept connections on.
    pub listen: Vec<SocketAddr>,
    /// Worker threads (tokio workers, smol executor threads); `None` means one per core.
    pub threads: Option<usize>,
    /// Whether request and tunnel lines are logged (`[log] access`).
    pub access_log: bool,
    /// What every session gets.
    pub core: Config,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: vec![DEFAULT_LISTEN.parse().expect("a valid socket address")],
            threads: None,
            access_log: true,
            core: Config::default(),
        }
    }
}

/// A configuration file that could not be read or is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    /// Dotted key path (`timeouts.client_head`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Settings::from_toml(&text, path)
    }

    /// Parses and checks configuration text; `path` is only used in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let error = |line: Option<usize>, key: Option<String>, message: String| ConfigError {
            path: path.to_owned(),
            line,
            key,
            message,
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|span| span.start);
            let key = offset.and_then(|offset| key_at(text, offset));
            error(
                offset.map(|offset| line_of(text, offset)),
                key,
                e.message().trim_end().to_owned(),
            )
        })?;
        file.into_settings().map_err(|Invalid { key, message }| {
            let line = span_of(text, &key).map(|span| line_of(text, span.start));
            error(line, Some(key), message)
        })
    }
}

/// The file as written. Sections are the core's own types, with their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<Listen>,
    upstream: Option<String>,
    threads: Option<usize>,
    buffer_size: Option<usize>,
    limits: Limits,
    timeouts: Timeouts,
    forwarded: Forwarded,
    pool: Pool,
    websocket: WebSocket,
    log: Log,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Log {
    access: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log { access: true }
    }
}

/// A well-formed value that is not acceptable: its dotted key, and why.
struct Invalid {
    key: String,
    message: String,
}

fn check(ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), Invalid> {
    match ok {
        true => Ok(()),
        false => Err(Invalid {
            key: key.to_owned(),
            message: message(),
        }),
    }
}

impl FileConfig {
    #[allow(clippy::needless_update)]
    fn into_settings(self) -> Result<Settings, Invalid> {
        let defaults = Settings::default();
        let listen = match self.listen {
            None => defaults.listen,
            Some(Listen(addrs)) => {
                check(!addrs.is_empty(), "listen", || {
                    "needs at least one address".into()
                })?;
                let parsed = addrs.iter().map(|addr| parse_listen(addr));
                parsed
                    .collect::<Result<_, _>>()
                    .map_err(|message| Invalid {
                        key: "listen".into(),
                        message,
                    })?
            }
        };
        let upstream = self.upstream.unwrap_or(defaults.core.upstream);
        check_upstream(&upstream).map_err(|message| Invalid {
            key: "upstream".into(),
            message,
        })?;
        check(self.threads != Some(0), "threads", || {
            "must be at least 1".into()
        })?;
        let buffer_size = self.buffer_size.unwrap_or(defaults.core.buffer_size);
        check(buffer_size >= MIN_BUFFER_SIZE, "buffer_size", || {
            format!("must be at least {MIN_BUFFER_SIZE}")
        })?;
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_head_size", l.max_head_size),
            ("limits.max_headers", l.max_headers),
            ("limits.max_target_len", l.max_target_len),
        ] {
            check(value > 0, key, || "must be at least 1".into())?;
        }
        let t = &self.timeouts;
        for (key, value) in [
            ("timeouts.upstream_connect", t.upstream_connect),
            ("timeouts.client_head", t.client_head),
            ("timeouts.upstream_response_head", t.upstream_response_head),
            ("timeouts.body_read", t.body_read),
            ("timeouts.send", t.send),
            ("timeouts.tunnel_idle", t.tunnel_idle),
        ] {
            check(!value.is_zero(), key, || "must be longer than 0".into())?;
        }
        let w = &self.websocket;
        check(
            w.ping_interval.is_none() || !w.pong_timeout.is_zero(),
            "websocket.pong_timeout",
            || "must be longer than 0 when pings are on".into(),
        )?;
        Ok(Settings {
            listen,
            threads: self.threads,
            access_log: self.log.access,
            core: Config {
                upstream,
                buffer_size,
                limits: self.limits,
                timeouts: self.timeouts,
                forwarded: self.forwarded,
                pool: self.pool,
                websocket: self.websocket,
                // A section the core adds keeps its defaults until the file learns it.
                ..Config::default()
            },
        })
    }
}

/// Parses one listen address (`ip:port`).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("{text:?} is not an address such as \"127.0.0.1:8080\" or \"[::]:80\"")
    })
}

/// Checks an upstream address (`host:port`).
pub fn check_upstream(text: &str) -> Result<(), String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "{text:?} is not an address such as \"127.0.0.1:9000\" or \"backend:80\""
        )),
    }
}

/// `listen = "addr"` or `listen = ["addr", ...]`.
#[derive(Debug)]
struct Listen(Vec<String>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Listen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address such as \"127.0.0.1:8080\", or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
                Ok(Listen(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listen, A::Error> {
                let mut addrs = Vec::new();
                while let Some(addr) = seq.next_element()? {
                    addrs.push(addr);
                }
                Ok(Listen(addrs))
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key whose key or value holds `offset`, the most specific one.
fn key_at(text: &str, offset: usize) -> Option<String> {
    fn search(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            if let DeValue::Table(inner) = value.get_ref() {
                if search(inner, offset, path) {
                    return true;
                }
            }
            if key.span().contains(&offset) || value.span().contains(&offset) {
                return true;
            }
            path.pop();
        }
        false
    }
    let table = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    search(table.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// Where the value of a dotted key is written.
fn span_of(text: &str, key: &str) -> Option<Range<usize>> {
    let table = DeTable::parse(text).ok()?;
    let mut parts = key.split('.');
    let mut value = table.get_ref().get(parts.next()?)?;
    for part in parts {
        value = value.get_ref().as_table()?.get(part)?;
    }
    Some(value.span())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(text, Path::new("switchyard.toml"))
    }

    fn error(text: &str) -> String {
        parse(text)
            .expect_err("the file should be rejected")
            .to_string()
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn every_key_is_read() {
        let settings = parse(
            r#"
            listen = ["127.0.0.1:1", "[::1]:2"]
            upstream = "backend:80"
            threads = 3
            buffer_size = 2048
            [limits]
            max_headers = 7
            [timeouts]
            client_head = "500ms"
            tunnel_idle = "2m"
            fin = 5
            [forwarded]
            x_forwarded_for = false
            [pool]
            max_idle = 0
            [websocket]
            ping_interval = "20s"
            [log]
            access = false
            "#,
        )
        .unwrap();
        assert_eq!(settings.listen.len(), 2);
        assert_eq!(settings.core.upstream, "backend:80");
        assert_eq!(settings.threads, Some(3));
        assert_eq!(settings.core.buffer_size, 2048);
        assert_eq!(settings.core.limits.max_headers, 7);
        assert_eq!(
            settings.core.limits.max_head_size,
            Limits::default().max_head_size
        );
        assert_eq!(
            settings.core.timeouts.client_head,
            Duration::from_millis(500)
        );
        assert_eq!(settings.core.timeouts.tunnel_idle, Duration::from_secs(120));
        assert_eq!(settings.core.timeouts.fin, Duration::from_secs(5));
        assert!(!settings.core.forwarded.x_forwarded_for);
        assert!(settings.core.forwarded.x_forwarded_proto);
        assert_eq!(settings.core.pool.max_idle, 0);
        assert_eq!(
            settings.core.websocket.ping_interval,
            Some(Duration::from_secs(20))
        );
        assert!(!settings.access_log);
    }

    #[test]
    fn listen_may_be_a_single_string() {
        let settings = parse(r#"listen = "0.0.0.0:80""#).unwrap();
        assert_eq!(settings.listen, vec!["0.0.0.0:80".parse().unwrap()]);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let message =
            error("upstream = \"a:1\"\n\n[timeouts]\nclient_head = \"5s\"\nclient_heda = \"5s\"\n");
        assert!(
            message.starts_with(
                "switchyard.toml:5: timeouts.client_heda: unknown field `client_heda`"
            ),
            "{message}"
        );
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let message = error("listen = \"127.0.0.1:1\"\nupstreams = \"a:1\"\n");
        assert!(
            message.starts_with("switchyard.toml:2: upstreams: unknown field `upstreams`"),
            "{message}"
        );
    }

    #[test]
    fn bad_duration_names_file_line_and_key() {
        let message = error("[timeouts]\nfin = \"30s\"\nlinger = \"5 parsecs\"\n");
        assert!(
            message.starts_with("switchyard.toml:3: timeouts.linger: invalid duration unit"),
            "{message}"
        );
    }

    #[test]
    fn negative_duration_is_an_error() {
        let message = error("[pool]\nidle_timeout = -1\n");
        assert!(
            message
                .starts_with("switchyard.toml:2: pool.idle_timeout: a duration cannot be negative"),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let message = error("[log]\naccess = \"yes\"\n");
        assert!(
            message.starts_with("switchyard.toml:2: log.access: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn small_buffer_is_rejected() {
        let message = error("\nbuffer_size = 100\n");
        assert_eq!(
            message,
            "switchyard.toml:2: buffer_size: must be at least 1024"
        );
    }

    #[test]
    fn bad_listen_address_is_rejected() {
        let message = error("listen = [\"127.0.0.1:8080\", \"localhost\"]\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen: \"localhost\" is not an address"),
            "{message}"
        );
    }

    #[test]
    fn empty_upstream_is_rejected() {
        let message = error("upstream = \"\"\n");
        assert!(
            message.starts_with("switchyard.toml:1: upstream: \"\" is not an address"),
            "{message}"
        );
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let message = error("[timeouts]\nsend = \"0s\"\n");
        assert_eq!(
            message,
            "switchyard.toml:2: timeouts.send: must be longer than 0"
        );
    }

    #[test]
    fn pings_need_a_pong_timeout() {
        let message = error("[websocket]\nping_interval = \"20s\"\npong_timeout = 0\n");
        assert_eq!(
            message,
            "switchyard.toml:3: websocket.pong_timeout: must be longer than 0 when pings are on"
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let message = error("upstream = \"a:1\"\nthreads = = 2\n");
        assert!(message.starts_with("switchyard.toml:2: "), "{message}");
    }
}
