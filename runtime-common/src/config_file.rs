//! The `switchyard.toml` file: what it may contain, and the errors it gets.
//!
//! Every key is optional and unknown keys are errors. An error names the file, the
//! line and the key, e.g.
//! `switchyard.toml:7: timeouts.client_head: invalid duration unit "x" in "5x": use ms, s, m or h`
//! or `switchyard.toml:3: listen[1].tls: certs/a.pem: no certificate in it`.
//! `runtime-tokio/switchyard.example.toml` lists every key with its default.
//!
//! Every runtime's binary reads the same file through [`Settings::load`]: the keys are
//! the core's [`Config`] plus `listen` (addresses, TLS, layer-4 mode), TLS towards
//! upstreams, `[admin]`, `threads` and `[log]`. [`Settings::setup`] turns them into
//! the [`Setup`] a [`Context`](crate::Context) runs (certificates loaded). Relative
//! file paths are relative to the configuration file's directory.

use crate::logging::LogFormat;
use crate::setup::{ListenMode, ListenerSetup, Setup, UpstreamTls};
use crate::tls::{self, CertFiles};
use proxy_core::balance::ServerSpec;
use proxy_core::config::duration;
use proxy_core::{
    Balance, Config, Forwarded, Limits, Pool, Route, Timeouts, UpstreamGroup, WebSocket,
};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// Where the proxy listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Smallest accepted `buffer_size`.
pub const MIN_BUFFER_SIZE: usize = 1024;

/// Everything the binary runs with: the core's [`Config`] plus the runtime's own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Where to accept connections, and how to serve each.
    pub listen: Vec<ListenSettings>,
    /// Worker threads (tokio workers, smol executor threads); `None` means one per core.
    pub threads: Option<usize>,
    /// Whether worker threads share one scheduler that moves tasks to idle threads
    /// (`true`, tokio's multi-threaded runtime), or each thread runs its own event
    /// loop over its own `SO_REUSEPORT` listeners, bound to a CPU of its own while
    /// there are enough (`false`: a connection never leaves the thread that accepted
    /// it). The `switchyard` binary's; see the README.
    pub work_stealing: bool,
    /// Whether request and tunnel lines are logged (`[log] access`).
    pub access_log: bool,
    /// Text or JSON lines (`[log] format`), for the binaries' [`crate::init_logging`]
    /// (read at start: a reload does not change it).
    pub log_format: LogFormat,
    /// Where `GET /metrics` is served (`[admin] listen`), if anywhere.
    pub admin: Option<SocketAddr>,
    /// TLS towards upstream servers, by server address.
    pub upstream_tls: BTreeMap<String, UpstreamTlsSettings>,
    /// What every session gets.
    pub core: Config,
}

/// One `listen` entry. (Equality ignores `key`.)
#[derive(Clone, Debug, Eq)]
pub struct ListenSettings {
    /// Where to accept.
    pub address: SocketAddr,
    /// HTTP, or layer 4 to a group.
    pub mode: ListenMode,
    /// Certificates for TLS termination (the first is the default); empty: plain.
    pub tls: Vec<CertFiles>,
    /// Connections start with a PROXY protocol header (see [`ListenerSetup`]).
    pub proxy_protocol: bool,
    /// Its dotted key in the file (`listen[1]`), for errors.
    pub key: String,
}

impl ListenSettings {
    /// Plain HTTP on `address`.
    pub fn http(address: SocketAddr) -> ListenSettings {
        ListenSettings {
            address,
            mode: ListenMode::Http,
            tls: Vec::new(),
            proxy_protocol: false,
            key: "listen".into(),
        }
    }
}

/// TLS towards one upstream server. (Equality ignores `key`.)
#[derive(Clone, Debug, Eq)]
pub struct UpstreamTlsSettings {
    /// PEM file of the CAs to trust; `None`: the Mozilla roots (webpki-roots).
    pub ca: Option<PathBuf>,
    /// The name to send (SNI) and verify; `None`: the host part of the address.
    pub server_name: Option<String>,
    /// Its dotted key in the file (`upstreams.api.tls`), for errors.
    pub key: String,
}

impl PartialEq for ListenSettings {
    fn eq(&self, other: &Self) -> bool {
        (self.address, &self.mode, &self.tls, self.proxy_protocol)
            == (other.address, &other.mode, &other.tls, other.proxy_protocol)
    }
}

impl PartialEq for UpstreamTlsSettings {
    fn eq(&self, other: &Self) -> bool {
        (&self.ca, &self.server_name) == (&other.ca, &other.server_name)
    }
}

impl Default for Settings {
    fn default() -> Self {
        let address = DEFAULT_LISTEN.parse().expect("a valid socket address");
        Settings {
            listen: vec![ListenSettings::http(address)],
            threads: None,
            work_stealing: true,
            access_log: true,
            log_format: LogFormat::Text,
            admin: None,
            upstream_tls: BTreeMap::new(),
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
    /// Dotted key path (`timeouts.client_head`, `listen[1].tls`), when known.
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

/// A well-formed value that is not acceptable: its dotted key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The dotted key (`listen[0].tls`, `upstreams.api.servers`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Settings {
    /// Reads and checks a configuration file, certificates and CA files included.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        Settings::from_toml(&text, path)
    }

    /// Parses and checks configuration text; `path` is used in errors, and relative
    /// file paths in it are relative to `path`'s directory. Certificates and CA files
    /// are loaded to check them.
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
        let base = path.parent().unwrap_or(Path::new(""));
        let invalid = |Invalid { key, message }| {
            // The key itself, or the nearest enclosing one written in the file.
            let mut at = key.as_str();
            let span = loop {
                match (span_of(text, at), at.rsplit_once('.')) {
                    (Some(span), _) => break Some(span),
                    (None, Some((parent, _))) => at = parent,
                    (None, None) => break None,
                }
            };
            let line = span.map(|span| line_of(text, span.start));
            error(line, Some(key), message)
        };
        let settings = file.into_settings(base).map_err(invalid)?;
        settings.setup().map_err(invalid)?;
        Ok(settings)
    }

    /// What a [`Context`](crate::Context) runs: certificates and CA files loaded,
    /// rustls configured. Errors name the key.
    pub fn setup(&self) -> Result<Setup, Invalid> {
        let mut listeners = Vec::new();
        for listen in &self.listen {
            let tls = match listen.tls.is_empty() {
                true => None,
                false => {
                    let http = listen.mode.is_http();
                    let config =
                        tls::server_config(&listen.tls, http).map_err(|message| Invalid {
                            key: format!("{}.tls", listen.key),
                            message,
                        })?;
                    Some(config)
                }
            };
            listeners.push(ListenerSetup {
                address: listen.address,
                mode: listen.mode.clone(),
                tls,
                proxy_protocol: listen.proxy_protocol,
            });
        }
        let mut upstream_tls = HashMap::new();
        for (address, settings) in &self.upstream_tls {
            let config =
                tls::client_config(settings.ca.as_deref(), true).map_err(|message| Invalid {
                    key: format!("{}.ca", settings.key),
                    message,
                })?;
            let server_name =
                tls::server_name(address, settings.server_name.as_deref()).map_err(|message| {
                    Invalid {
                        key: format!("{}.server_name", settings.key),
                        message,
                    }
                })?;
            upstream_tls.insert(
                address.clone(),
                UpstreamTls {
                    config,
                    server_name,
                },
            );
        }
        Ok(Setup {
            config: Arc::new(self.core.clone()),
            listeners,
            upstream_tls,
            access_log: self.access_log,
        })
    }
}

/// The file as written. Sections are the core's own types, with their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<Listen>,
    upstream: Option<String>,
    upstream_tls: Option<UpstreamTlsFile>,
    upstreams: BTreeMap<String, GroupFile>,
    routes: Vec<Route>,
    admin: Admin,
    threads: Option<usize>,
    work_stealing: Option<bool>,
    buffer_size: Option<usize>,
    pipe_size: Option<usize>,
    request_buffering: Option<bool>,
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
    format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            access: true,
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Admin {
    listen: Option<String>,
}

/// `[upstreams.NAME]`: the core's [`UpstreamGroup`] plus `tls`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GroupFile {
    servers: Vec<String>,
    balance: Balance,
    max_fails: u32,
    #[serde(with = "duration")]
    fail_timeout: Duration,
    tls: Option<UpstreamTlsFile>,
}

impl Default for GroupFile {
    fn default() -> Self {
        let core = UpstreamGroup::default();
        GroupFile {
            servers: core.servers,
            balance: core.balance,
            max_fails: core.max_fails,
            fail_timeout: core.fail_timeout,
            tls: None,
        }
    }
}

/// `tls = true`, `tls = false`, or `tls = { ca = "...", server_name = "..." }`.
#[derive(Clone, Debug)]
struct UpstreamTlsFile(Option<UpstreamTlsTable>);

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UpstreamTlsTable {
    ca: Option<PathBuf>,
    server_name: Option<String>,
}

impl<'de> Deserialize<'de> for UpstreamTlsFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BoolOrTable;
        impl<'de> Visitor<'de> for BoolOrTable {
            type Value = UpstreamTlsFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, or a table such as { ca = \"ca.pem\" }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<UpstreamTlsFile, E> {
                Ok(UpstreamTlsFile(v.then(UpstreamTlsTable::default)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UpstreamTlsFile, A::Error> {
                let table = UpstreamTlsTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(UpstreamTlsFile(Some(table)))
            }
        }
        d.deserialize_any(BoolOrTable)
    }
}

/// `listen = "addr"` or one table, or a list of addresses and tables (`true`).
#[derive(Debug)]
struct Listen(Vec<ListenEntry>, bool);

/// The https port a `redirect_https` listener names unless told otherwise.
const HTTPS_PORT: NonZeroU16 = NonZeroU16::new(443).unwrap();

/// `"addr"` or `{ address = "...", mode = "...", upstream = "...", tls = ... }`.
#[derive(Debug)]
enum ListenEntry {
    Address(String),
    Table(ListenTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenTable {
    address: String,
    #[serde(default)]
    mode: Mode,
    upstream: Option<String>,
    tls: Option<Certs>,
    /// For `mode = "redirect_https"`: the https port its redirects name.
    https_port: Option<NonZeroU16>,
    /// Connections start with a PROXY protocol header.
    #[serde(default)]
    proxy_protocol: bool,
    /// For `mode = "tcp"`: upstream connections start with a PROXY header, `"v1"` or `"v2"`.
    send_proxy_protocol: Option<ProxyVersion>,
}

/// `send_proxy_protocol`'s values.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ProxyVersion {
    V1,
    V2,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Http,
    Tcp,
    RedirectHttps,
}

/// One certificate table, or a list of them (SNI).
#[derive(Debug)]
struct Certs(Vec<CertTable>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertTable {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    names: Vec<String>,
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Listen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an address such as \"127.0.0.1:8080\", or a list of addresses and tables",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
                Ok(Listen(vec![ListenEntry::Address(v.to_owned())], false))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Listen, A::Error> {
                let table = ListenTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Listen(vec![ListenEntry::Table(table)], false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listen, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    entries.push(entry);
                }
                Ok(Listen(entries, true))
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

impl<'de> Deserialize<'de> for ListenEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrOrTable;
        impl<'de> Visitor<'de> for StrOrTable {
            type Value = ListenEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address, or a table such as { address = \"0.0.0.0:443\", tls = { cert = \"...\", key = \"...\" } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ListenEntry, E> {
                Ok(ListenEntry::Address(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListenEntry, A::Error> {
                let table = ListenTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(ListenEntry::Table(table))
            }
        }
        d.deserialize_any(StrOrTable)
    }
}

impl<'de> Deserialize<'de> for Certs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Certs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table { cert = \"...\", key = \"...\" }, or a list of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Certs, A::Error> {
                let table = CertTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Certs(vec![table]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Certs, A::Error> {
                let mut certs = Vec::new();
                while let Some(cert) = seq.next_element()? {
                    certs.push(cert);
                }
                Ok(Certs(certs))
            }
        }
        d.deserialize_any(OneOrMany)
    }
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

fn invalid(key: impl Into<String>) -> impl FnOnce(String) -> Invalid {
    let key = key.into();
    move |message| Invalid { key, message }
}

impl FileConfig {
    #[allow(clippy::needless_update)]
    fn into_settings(self, base: &Path) -> Result<Settings, Invalid> {
        let defaults = Settings::default();
        let upstream = self.upstream.unwrap_or(defaults.core.upstream);
        check_upstream(&upstream).map_err(invalid("upstream"))?;
        let mut upstreams = BTreeMap::new();
        let mut upstream_tls: BTreeMap<String, UpstreamTlsSettings> = BTreeMap::new();
        let mut add_tls = |address: &str, file: Option<UpstreamTlsFile>, key: String| {
            let wanted = file.and_then(|f| f.0).map(|table| UpstreamTlsSettings {
                ca: table.ca.map(|ca| base.join(ca)),
                server_name: table.server_name,
                key: key.clone(),
            });
            let same = |a: &UpstreamTlsSettings, b: &UpstreamTlsSettings| {
                (&a.ca, &a.server_name) == (&b.ca, &b.server_name)
            };
            match (upstream_tls.get(address), &wanted) {
                (None, Some(wanted)) => {
                    upstream_tls.insert(address.to_owned(), wanted.clone());
                    Ok(())
                }
                (Some(had), Some(wanted)) if same(had, wanted) => Ok(()),
                (Some(had), _) => Err(Invalid {
                    key,
                    message: format!(
                        "server {address:?} has other TLS settings in {}: one address, one way to reach it",
                        had.key
                    ),
                }),
                (None, None) => Ok(()),
            }
        };
        for (name, group) in self.upstreams {
            let key = format!("upstreams.{name}");
            for server in &group.servers {
                let spec = ServerSpec::parse(server).map_err(invalid(format!("{key}.servers")))?;
                check_upstream(spec.address).map_err(invalid(format!("{key}.servers")))?;
                add_tls(spec.address, group.tls.clone(), format!("{key}.tls"))?;
            }
            upstreams.insert(
                name,
                UpstreamGroup {
                    servers: group.servers,
                    balance: group.balance,
                    max_fails: group.max_fails,
                    fail_timeout: group.fail_timeout,
                },
            );
        }
        if self.upstream_tls.is_some() {
            check(!upstreams.contains_key("default"), "upstream_tls", || {
                "applies to `upstream`, which [upstreams.default] replaces: put `tls` in [upstreams.default]".into()
            })?;
            add_tls(&upstream, self.upstream_tls, "upstream_tls".into())?;
        }
        let listen = match self.listen {
            None => defaults.listen,
            Some(Listen(entries, list)) => {
                check(!entries.is_empty(), "listen", || {
                    "needs at least one address".into()
                })?;
                let mut listen: Vec<ListenSettings> = Vec::new();
                for (i, entry) in entries.into_iter().enumerate() {
                    let key = match list {
                        false => "listen".to_string(),
                        true => format!("listen[{i}]"),
                    };
                    let entry = listen_entry(entry, key, base, &upstreams)?;
                    if let Some(other) = listen.iter().find(|l| l.address == entry.address) {
                        return Err(Invalid {
                            message: format!("{} is also in {}", entry.address, other.key),
                            key: entry.key,
                        });
                    }
                    listen.push(entry);
                }
                listen
            }
        };
        let admin = (self.admin.listen.as_deref())
            .map(parse_listen)
            .transpose()
            .map_err(invalid("admin.listen"))?;
        if let Some(admin) = admin {
            check(
                listen.iter().all(|l| l.address != admin),
                "admin.listen",
                || format!("{admin} is also a proxy listen address"),
            )?;
        }
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
        let core = Config {
            upstream,
            upstreams,
            routes: self.routes,
            buffer_size,
            pipe_size: self.pipe_size.unwrap_or(defaults.core.pipe_size),
            request_buffering: (self.request_buffering).unwrap_or(defaults.core.request_buffering),
            limits: self.limits,
            timeouts: self.timeouts,
            forwarded: self.forwarded,
            pool: self.pool,
            websocket: self.websocket,
            // A section the core adds keeps its defaults until the file learns it.
            ..Config::default()
        };
        core.validate().map_err(|e| match e.split_once(": ") {
            Some((key, message)) if !key.contains(' ') => Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            },
            _ => Invalid {
                key: "upstreams".into(),
                message: e,
            },
        })?;
        Ok(Settings {
            listen,
            threads: self.threads,
            work_stealing: self.work_stealing.unwrap_or(defaults.work_stealing),
            access_log: self.log.access,
            log_format: self.log.format,
            admin,
            upstream_tls,
            core,
        })
    }
}

/// Checks one `listen` entry.
fn listen_entry(
    entry: ListenEntry,
    key: String,
    base: &Path,
    upstreams: &BTreeMap<String, UpstreamGroup>,
) -> Result<ListenSettings, Invalid> {
    let table = match entry {
        ListenEntry::Address(address) => {
            let address = parse_listen(&address).map_err(invalid(key.clone()))?;
            return Ok(ListenSettings {
                key,
                ..ListenSettings::http(address)
            });
        }
        ListenEntry::Table(table) => table,
    };
    let address = parse_listen(&table.address).map_err(invalid(format!("{key}.address")))?;
    if table.send_proxy_protocol.is_some() && table.mode != Mode::Tcp {
        return Err(Invalid {
            key: format!("{key}.send_proxy_protocol"),
            message: "only for mode = \"tcp\" (HTTP upstreams get the client in X-Forwarded-For)"
                .into(),
        });
    }
    if table.https_port.is_some() && table.mode != Mode::RedirectHttps {
        return Err(Invalid {
            key: format!("{key}.https_port"),
            message: "only for mode = \"redirect_https\"".into(),
        });
    }
    let mode = match (table.mode, table.upstream) {
        (Mode::Http, None) => ListenMode::Http,
        (Mode::RedirectHttps, None) if table.tls.is_some() => {
            return Err(Invalid {
                key: format!("{key}.tls"),
                message: "a redirect_https listener is the plain-HTTP port; TLS belongs on the listener it redirects to".into(),
            })
        }
        (Mode::RedirectHttps, None) => ListenMode::RedirectHttps {
            port: table.https_port.unwrap_or(HTTPS_PORT),
        },
        (Mode::Http | Mode::RedirectHttps, Some(_)) => {
            return Err(Invalid {
                key: format!("{key}.upstream"),
                message: "only for mode = \"tcp\" (HTTP listeners go by [[routes]])".into(),
            })
        }
        (Mode::Tcp, None) => {
            return Err(Invalid {
                key: format!("{key}.mode"),
                message: "a tcp listener needs `upstream`, the group it passes bytes to".into(),
            })
        }
        (Mode::Tcp, Some(group)) => {
            check(
                group == "default" || upstreams.contains_key(&group),
                &format!("{key}.upstream"),
                || format!("no upstream group named {group:?} (define [upstreams.{group}])"),
            )?;
            ListenMode::Tcp {
                upstream: group,
                send_proxy: table.send_proxy_protocol.map(|v| match v {
                    ProxyVersion::V1 => proxy_core::proxy_protocol::Version::V1,
                    ProxyVersion::V2 => proxy_core::proxy_protocol::Version::V2,
                }),
            }
        }
    };
    let wants_tls = table.tls.is_some();
    let tls = table.tls.map_or_else(Vec::new, |Certs(certs)| {
        certs
            .into_iter()
            .map(|c| CertFiles {
                cert: base.join(c.cert),
                key: base.join(c.key),
                names: c.names,
            })
            .collect()
    });
    if wants_tls {
        check(!tls.is_empty(), &format!("{key}.tls"), || {
            "needs at least one certificate".into()
        })?;
    }
    Ok(ListenSettings {
        address,
        mode,
        tls,
        proxy_protocol: table.proxy_protocol,
        key,
    })
}

/// Re-reads the configuration file at `path` (with `edit` applied: the command
/// line's overrides) and swaps it into `ctx` (see [`Context::reload`]). Logs the
/// outcome: one `info` line when applied, one `error` line naming the file, line and
/// key when rejected (the running configuration stays). Keys that need a restart
/// (`threads`, `[admin] listen`) are logged and left as they run. Returns the new
/// settings when applied.
///
/// [`Context::reload`]: crate::Context::reload
pub fn reload<R: crate::Runtime>(
    ctx: &crate::Context<R>,
    path: &Path,
    running: &Settings,
    edit: impl FnOnce(&mut Settings),
) -> Option<Settings> {
    let loaded = Settings::load(path).map_err(|e| e.to_string());
    let built = loaded.and_then(|mut settings| {
        edit(&mut settings);
        let setup = settings
            .setup()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((settings, setup))
    });
    let (settings, setup) = match built {
        Ok(built) => built,
        Err(e) => {
            ctx.metrics().reloaded(false);
            tracing::error!("reload rejected, the running configuration stays: {e}");
            return None;
        }
    };
    if let Err(e) = ctx.reload(setup) {
        tracing::error!(
            "reload rejected, the running configuration stays: {}: {e}",
            path.display()
        );
        return None;
    }
    for (key, changed) in [
        ("threads", settings.threads != running.threads),
        (
            "work_stealing",
            settings.work_stealing != running.work_stealing,
        ),
        ("admin.listen", settings.admin != running.admin),
    ] {
        if changed {
            tracing::warn!(key, "changed in the file; needs a restart to apply");
        }
    }
    tracing::info!(file = %path.display(), "reloaded the configuration");
    Some(settings)
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

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key whose key or value holds `offset`, the most specific one; array
/// elements are named by index (`listen[1].tls`).
fn key_at(text: &str, offset: usize) -> Option<String> {
    type Value<'i> = toml::Spanned<DeValue<'i>>;
    fn in_value(value: &Value<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        match value.get_ref() {
            DeValue::Table(inner) => in_table(inner, offset, path),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let saved = path.last().cloned().unwrap_or_default();
                    if let Some(last) = path.last_mut() {
                        last.push_str(&format!("[{i}]"));
                    }
                    if in_value(item, offset, path) || item.span().contains(&offset) {
                        return true;
                    }
                    if let Some(last) = path.last_mut() {
                        *last = saved;
                    }
                }
                false
            }
            _ => false,
        }
    }
    fn in_table(table: &DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            if in_value(value, offset, path) {
                return true;
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
    in_table(table.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// Where the value of a dotted key (`listen[1].tls`, `routes[0].upstream`) is written.
fn span_of(text: &str, key: &str) -> Option<Range<usize>> {
    let table = DeTable::parse(text).ok()?;
    let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
    for part in key.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        let table = match value {
            None => table.get_ref(),
            Some(v) => v.get_ref().as_table()?,
        };
        let mut found = table.get(name)?;
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            found = found
                .get_ref()
                .as_array()?
                .get(index.parse::<usize>().ok()?)?;
        }
        value = Some(found);
    }
    value.map(|v| v.span())
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
            work_stealing = false
            buffer_size = 2048
            pipe_size = 0
            request_buffering = false
            [limits]
            max_headers = 7
            min_request_body_rate = 500
            max_request_body = "10m"
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
            max_message_size = "1m"
            [log]
            access = false
            "#,
        )
        .unwrap();
        assert_eq!(settings.listen.len(), 2);
        assert_eq!(settings.listen[1].address, "[::1]:2".parse().unwrap());
        assert_eq!(settings.core.upstream, "backend:80");
        assert_eq!(settings.threads, Some(3));
        assert!(!settings.work_stealing);
        assert_eq!(settings.core.buffer_size, 2048);
        assert_eq!(settings.core.pipe_size, 0);
        assert!(!settings.core.request_buffering);
        assert_eq!(settings.core.limits.max_headers, 7);
        assert_eq!(settings.core.limits.min_request_body_rate, 500);
        assert_eq!(settings.core.limits.max_request_body, 10 << 20);
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
        assert_eq!(settings.core.websocket.max_message_size, 1 << 20);
        assert!(!settings.access_log);
    }

    #[test]
    fn listen_may_be_a_single_string() {
        let settings = parse(r#"listen = "0.0.0.0:80""#).unwrap();
        let address = "0.0.0.0:80".parse().unwrap();
        assert_eq!(settings.listen, vec![ListenSettings::http(address)]);
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
        let message = error("listen = \"127.0.0.1:1\"\nupstream_groups = \"a:1\"\n");
        assert!(
            message
                .starts_with("switchyard.toml:2: upstream_groups: unknown field `upstream_groups`"),
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
    fn sizes_read_as_bytes_or_with_a_binary_unit_and_a_bad_one_names_the_key() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("\"512k\"", 512 << 10),
            ("\"2GiB\"", 2 << 30),
        ] {
            let settings = parse(&format!("[limits]\nmax_request_body = {text}\n")).unwrap();
            assert_eq!(settings.core.limits.max_request_body, bytes, "{text}");
        }
        let message = error("[limits]\nmax_headers = 10\nmax_request_body = \"10 MB\"\n");
        assert!(
            message.starts_with(
                "switchyard.toml:3: limits.max_request_body: invalid size unit \"MB\""
            ),
            "{message}"
        );
        let routes = parse("[[routes]]\npath_prefix = \"/\"\n")
            .unwrap()
            .core
            .routes;
        assert_eq!(
            routes[0].max_request_body, None,
            "a route without one has none"
        );
        let message = error("[limits]\nmax_request_body = -1\n");
        assert!(
            message.starts_with(
                "switchyard.toml:2: limits.max_request_body: a size cannot be negative"
            ),
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
            message.starts_with("switchyard.toml:1: listen[1]: \"localhost\" is not an address"),
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
    fn a_bad_max_message_size_names_the_line_and_key() {
        let message = error("[websocket]\nping_interval = \"20s\"\nmax_message_size = \"1 mb\"\n");
        assert_eq!(
            message,
            "switchyard.toml:3: websocket.max_message_size: invalid size unit \"mb\" in \"1 mb\": \
             use k, m or g (KiB, MiB, GiB)"
        );
    }

    #[test]
    fn allowed_origins_are_read_and_a_bad_one_names_its_line() {
        let settings = parse(
            "[websocket]\nallowed_origins = [\"https://app.example.com\", \"https://*.example.org\"]\n\
             [[routes]]\npath_prefix = \"/public\"\nallowed_origins = []\n",
        )
        .unwrap();
        let w = &settings.core.websocket;
        assert_eq!(
            w.allowed_origins,
            ["https://app.example.com", "https://*.example.org"]
        );
        assert_eq!(settings.core.routes[0].allowed_origins, Some(vec![]));
        let message = error(
            "[websocket]\nping_interval = \"20s\"\nallowed_origins = [\"app.example.com\"]\n",
        );
        assert!(
            message.starts_with(
                "switchyard.toml:3: websocket.allowed_origins: \"app.example.com\" is not an origin"
            ),
            "{message}"
        );
        let message =
            error("[[routes]]\npath_prefix = \"/a\"\nallowed_origins = [\"https://a.test/x\"]\n");
        assert!(
            message.starts_with("switchyard.toml:3: routes[0].allowed_origins: "),
            "{message}"
        );
    }

    #[test]
    fn servers_may_carry_a_weight_and_be_backups() {
        let settings = parse(
            "[upstreams.api]\nservers = [\"10.0.0.1:80 weight=3\", \"10.0.0.2:80\", \"10.0.0.9:80 backup\"]\n",
        )
        .unwrap();
        assert_eq!(
            settings.core.upstreams["api"].servers[0],
            "10.0.0.1:80 weight=3"
        );
        let message = error("[upstreams.api]\nbalance = \"least_connections\"\nservers = [\"10.0.0.1:80 weight=0\"]\n");
        assert!(
            message
                .starts_with("switchyard.toml:3: upstreams.api.servers: \"weight=0\": a weight is"),
            "{message}"
        );
        let message = error("[upstreams.api]\nservers = [\"10.0.0.1 backup\"]\n");
        assert!(
            message.starts_with(
                "switchyard.toml:2: upstreams.api.servers: \"10.0.0.1\" is not an address"
            ),
            "{message}"
        );
    }

    #[test]
    fn log_lines_are_text_or_json() {
        assert_eq!(parse("").unwrap().log_format, LogFormat::Text);
        let settings = parse("[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(settings.log_format, LogFormat::Json);
        let message = error("[log]\naccess = true\nformat = \"xml\"\n");
        assert!(
            message.starts_with("switchyard.toml:3: log.format: unknown variant `xml`"),
            "{message}"
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

    #[test]
    fn listen_tables_upstream_groups_routes_and_admin_are_read() {
        let settings = parse(
            r#"
            upstream = "127.0.0.1:9000"
            listen = [
                "127.0.0.1:8080",
                { address = "127.0.0.1:5432", mode = "tcp", upstream = "db" },
            ]
            [admin]
            listen = "127.0.0.1:9901"
            [upstreams.db]
            servers = ["10.0.0.1:5432", "10.0.0.2:5432"]
            balance = "least_connections"
            fail_timeout = "30s"
            [upstreams.api]
            servers = ["api:443"]
            balance = "client_ip"
            tls = { server_name = "api.internal" }
            [[routes]]
            host = "*.example.com"
            path_prefix = "/api"
            upstream = "api"
            strip_prefix = true
            max_request_body = "100m"
            [limits]
            max_connections = 1000
            max_tunnels = 10
            "#,
        )
        .unwrap();
        assert_eq!(
            settings.listen[1].mode,
            ListenMode::Tcp {
                upstream: "db".into(),
                send_proxy: None,
            }
        );
        assert_eq!(settings.admin, Some("127.0.0.1:9901".parse().unwrap()));
        let db = &settings.core.upstreams["db"];
        assert_eq!(db.balance, Balance::LeastConnections);
        assert_eq!(db.fail_timeout, Duration::from_secs(30));
        assert_eq!(db.max_fails, UpstreamGroup::default().max_fails);
        assert_eq!(settings.core.upstreams["api"].balance, Balance::ClientIp);
        assert_eq!(settings.core.routes[0].upstream, "api");
        assert!(settings.core.routes[0].strip_prefix);
        assert_eq!(settings.core.routes[0].max_request_body, Some(100 << 20));
        let tls = &settings.upstream_tls["api:443"];
        assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
        assert_eq!(
            (
                settings.core.limits.max_connections,
                settings.core.limits.max_tunnels
            ),
            (1000, 10)
        );
        let setup = settings.setup().unwrap();
        assert_eq!(setup.listeners.len(), 2);
        assert!(setup.upstream_tls.contains_key("api:443"));
    }

    #[test]
    fn a_tcp_listener_needs_an_existing_group() {
        let message = error("listen = [{ address = \"127.0.0.1:1\", mode = \"tcp\" }]\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].mode: a tcp listener needs"),
            "{message}"
        );
        let message =
            error("\nlisten = { address = \"127.0.0.1:1\", mode = \"tcp\", upstream = \"db\" }\n");
        assert!(
            message
                .starts_with("switchyard.toml:2: listen.upstream: no upstream group named \"db\""),
            "{message}"
        );
    }

    #[test]
    fn a_redirect_https_listener_is_read_and_takes_no_tls_or_upstream() {
        let settings =
            parse("listen = [{ address = \"127.0.0.1:8080\", mode = \"redirect_https\" }]\n")
                .unwrap();
        assert_eq!(
            settings.listen[0].mode,
            ListenMode::RedirectHttps { port: HTTPS_PORT }
        );
        let settings = parse(
            "listen = [{ address = \"127.0.0.1:8080\", mode = \"redirect_https\", https_port = 8443 }]\n",
        )
        .unwrap();
        assert_eq!(
            settings.listen[0].mode,
            ListenMode::RedirectHttps {
                port: NonZeroU16::new(8443).unwrap()
            }
        );
        let message = error(
            "listen = [{ address = \"127.0.0.1:1\", mode = \"redirect_https\", https_port = 0 }]\n",
        );
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].https_port: invalid value"),
            "{message}"
        );
        let message = error("listen = [{ address = \"127.0.0.1:1\", https_port = 8443 }]\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].https_port: only for mode"),
            "{message}"
        );
        let message = error(
            "listen = [{ address = \"127.0.0.1:1\", mode = \"redirect_https\", \
             tls = { cert = \"a.pem\", key = \"a.key\" } }]\n",
        );
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].tls: a redirect_https listener"),
            "{message}"
        );
        let message = error(
            "listen = [{ address = \"127.0.0.1:1\", mode = \"redirect_https\", upstream = \"x\" }]\n",
        );
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].upstream: only for mode"),
            "{message}"
        );
    }

    #[test]
    fn proxy_protocol_is_per_listener_and_off_by_default() {
        let settings = parse(
            "listen = [\"127.0.0.1:1\", { address = \"127.0.0.1:2\", proxy_protocol = true }, \
             { address = \"127.0.0.1:3\", mode = \"redirect_https\", proxy_protocol = true }]\n",
        )
        .unwrap();
        let on: Vec<bool> = settings.listen.iter().map(|l| l.proxy_protocol).collect();
        assert_eq!(on, [false, true, true]);
        let setup = settings.setup().unwrap();
        assert!(setup.listeners[1].proxy_protocol);
        let settings = parse(
            "listen = [{ address = \"127.0.0.1:1\", mode = \"tcp\", upstream = \"default\", \
             send_proxy_protocol = \"v2\" }]\n",
        )
        .unwrap();
        assert_eq!(
            settings.listen[0].mode,
            ListenMode::Tcp {
                upstream: "default".into(),
                send_proxy: Some(proxy_core::proxy_protocol::Version::V2),
            }
        );
        let message =
            error("listen = [{ address = \"127.0.0.1:1\", send_proxy_protocol = \"v1\" }]\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].send_proxy_protocol: only for mode"),
            "{message}"
        );
        let message = error(
            "listen = [{ address = \"127.0.0.1:1\", mode = \"tcp\", upstream = \"default\", \
             send_proxy_protocol = \"v3\" }]\n",
        );
        assert!(
            message
                .starts_with("switchyard.toml:1: listen[0].send_proxy_protocol: unknown variant"),
            "{message}"
        );
        let message = error("listen = [{ address = \"127.0.0.1:1\", proxy_protocol = \"v2\" }]\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen[0].proxy_protocol: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn a_route_to_a_missing_group_names_the_route_and_line() {
        let message = error("[[routes]]\npath_prefix = \"/\"\n\n[[routes]]\npath_prefix = \"/x\"\nupstream = \"nope\"\n");
        assert!(
            message.starts_with(
                "switchyard.toml:6: routes[1].upstream: no upstream group named \"nope\""
            ),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_listen_table_is_named() {
        let message =
            error("listen = [\"127.0.0.1:1\", { address = \"127.0.0.1:2\", tsl = true }]\n");
        assert!(message.contains("unknown field `tsl`"), "{message}");
        assert!(
            message.starts_with("switchyard.toml:1: listen[1]"),
            "{message}"
        );
    }

    #[test]
    fn one_server_with_two_tls_settings_is_rejected() {
        let message = error(
            "[upstreams.a]\nservers = [\"x:1\"]\ntls = true\n[upstreams.b]\nservers = [\"x:1\"]\n",
        );
        assert!(
            message.starts_with("switchyard.toml:4: upstreams.b.tls: server \"x:1\""),
            "{message}"
        );
    }

    #[test]
    fn a_missing_certificate_names_the_key_and_the_file() {
        let message = error("listen = { address = \"127.0.0.1:1\", tls = { cert = \"nope.pem\", key = \"nope.key\" } }\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen.tls: nope.pem: "),
            "{message}"
        );
    }

    #[test]
    fn duplicate_listen_addresses_are_rejected() {
        let message = error("listen = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n");
        assert!(
            message.starts_with("switchyard.toml:1: listen[1]: 127.0.0.1:1 is also in listen[0]"),
            "{message}"
        );
    }
}
