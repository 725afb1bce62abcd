//! Plain-data configuration shared by every runtime.
//!
//! Defaults follow nginx where nginx has one, so that an operator replacing nginx
//! gets the behaviour they already know. With the `serde` feature, every struct
//! derives `Deserialize` (unknown keys are errors) and durations read as strings
//! such as `"60s"`, `"500ms"`, `"2m"` or as whole seconds.

use std::collections::BTreeMap;
use std::time::Duration;

/// Everything a [`Session`](crate::Session) needs to decide; shared behind an `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Config {
    /// Upstream address (`host:port`) that requests go to when no route and no
    /// `default` group say otherwise. The runtime resolves it; the core names it in
    /// [`Output::Connect`](crate::Output::Connect) and uses it as `Host` for HTTP/1.0
    /// requests that carry none. nginx: `proxy_pass`.
    pub upstream: String,
    /// Named upstream groups (several servers, balanced, with passive health checks).
    /// nginx: `upstream NAME { server ...; }`.
    pub upstreams: BTreeMap<String, UpstreamGroup>,
    /// Routes by `Host` and path prefix to a group; checked in order of specificity
    /// (exact host, then wildcard host, then any host; longest prefix first). With no
    /// routes, everything goes to the `default` group (or `upstream`).
    /// nginx: `server_name` + `location`.
    pub routes: Vec<Route>,
    /// Bound on bytes accepted from one side and not yet reported written to the other
    /// (flow control, per direction). nginx: `proxy_buffer_size`.
    pub buffer_size: usize,
    /// Bound on bytes passed unseen ([`Session::passthrough_room`](crate::Session::passthrough_room):
    /// tunnel bytes, and HTTP bodies that go on as they came) from one side and not
    /// yet reported written to the other, per direction. They
    /// sit in a kernel pipe between the two sockets, never in the proxy's memory, so
    /// `buffer_size` does not bound them, and one `splice(2)` may move up to a pipe's
    /// capacity (64 KiB on Linux, the default) instead of `buffer_size`. 0: nothing
    /// passes, every byte is read. HAProxy: `tune.pipesize`.
    pub pipe_size: usize,
    /// Wait for a request's body, up to `buffer_size` of it, before dialling the
    /// upstream: a client that sends its body slowly (a slow POST) then holds only
    /// its own connection to the proxy, never one of the upstream's, and a body the
    /// proxy refuses (bad chunk framing, a timeout) never reaches the upstream. Not
    /// for a request with `Expect: 100-continue` (its client waits for the upstream's
    /// `100`) or an upgrade. Off: dial as soon as the head is read, for a client that
    /// streams a request while it reads the response. nginx: `proxy_request_buffering`
    /// (which buffers the whole body, to disk if need be).
    pub request_buffering: bool,
    /// Size limits on request and response heads.
    pub limits: Limits,
    /// Every deadline the session keeps.
    pub timeouts: Timeouts,
    /// Which `X-Forwarded-*` fields the proxy adds to requests.
    pub forwarded: Forwarded,
    /// Upstream keep-alive pool, kept by the runtime (the core only says what is reusable).
    pub pool: Pool,
    /// WebSocket-aware tunnels: keep-alive pings.
    pub websocket: WebSocket,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            upstream: String::from("127.0.0.1:9000"),
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            buffer_size: 16 * 1024,
            pipe_size: 64 * 1024,
            request_buffering: true,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            forwarded: Forwarded::default(),
            pool: Pool::default(),
            websocket: WebSocket::default(),
        }
    }
}

/// Head size limits (RFC 9112 §2.3, RFC 9110 §15.5.15, §15.5.20 and RFC 6585 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Limits {
    /// Largest request or response head, in bytes; larger → 431 (request) or 502 (response).
    /// nginx: `large_client_header_buffers`.
    pub max_head_size: usize,
    /// Most header fields in one head; more → 431 (request) or 502 (response).
    pub max_headers: usize,
    /// Longest request-target, in bytes; longer → 414.
    pub max_target_len: usize,
    /// Most client connections at once (0: no limit); the excess gets 503.
    /// nginx: `worker_connections`, `limit_conn`.
    pub max_connections: usize,
    /// Most client connections at once from one IP address (0: no limit) → 503.
    /// nginx: `limit_conn` keyed by `$binary_remote_addr`.
    pub max_connections_per_ip: usize,
    /// Most tunnels (upgraded connections) at once (0: no limit); upgrade requests
    /// beyond it get 503.
    pub max_tunnels: usize,
    /// New connections per second allowed from one IP address, with bursts of as many
    /// (0: no limit); the excess gets 503. nginx: `limit_req` (for connections).
    pub new_connections_per_ip_per_second: u32,
    /// Bytes per second a request body must average while the proxy reads it, after
    /// a grace of `timeouts.body_read` (0: no minimum); slower → 408. `body_read`
    /// alone lets a client that sends a byte now and then keep its connection, and,
    /// once its body passed `buffer_size` (see `request_buffering`), its upstream
    /// connection, for as long as it likes. Time while flow control stops the body
    /// being read does not count: the count restarts, with its grace, when reading
    /// resumes. Apache: `mod_reqtimeout` `MinRate`.
    pub min_request_body_rate: u32,
    /// Largest request body, in bytes (0: no limit); larger → 413. A `Content-Length`
    /// over it is refused at the head, before any upstream is dialled; a chunked body
    /// when the chunk that would cross it begins, so the upstream never receives a
    /// byte past it (a connection it already had is closed, not reused). In files, a
    /// number of bytes or a string such as `"10m"` (see [`parse_byte_size`]). nginx:
    /// `client_max_body_size` (1 MiB by default there; no limit here, as in HAProxy).
    #[cfg_attr(feature = "serde", serde(with = "crate::config::byte_size"))]
    pub max_request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_size: 16 * 1024,
            max_headers: 100,
            max_target_len: 8 * 1024,
            max_connections: 0,
            max_connections_per_ip: 0,
            max_tunnels: 0,
            new_connections_per_ip_per_second: 0,
            min_request_body_rate: 0,
            max_request_body: 0,
        }
    }
}

/// Deadlines. Each one names what the peer sees when it fires.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Timeouts {
    /// Dialling the upstream; expiry → 502. nginx: `proxy_connect_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub upstream_connect: Duration,
    /// Receiving a whole request head, counted from its first byte (or from accept
    /// for a new connection); expiry → 408 and close. nginx: `client_header_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub client_head: Duration,
    /// Upstream silent while the response head is awaited, counted from the last
    /// byte of the request it took (or sent); expiry → 504.
    /// nginx: `proxy_read_timeout` (before the head).
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub upstream_response_head: Duration,
    /// Between two reads of a body, either direction, counted only while the proxy
    /// may read it (a side flow control holds back is not silent); expiry → close.
    /// nginx: `client_body_timeout`, `proxy_read_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub body_read: Duration,
    /// A kept-alive client connection with no request in progress; expiry → close.
    /// nginx: `keepalive_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub keepalive_idle: Duration,
    /// A write that makes no progress; expiry → close. nginx: `send_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub send: Duration,
    /// A tunnel with no bytes moving either way, read or written; expiry → close.
    /// nginx has none of its own (tunnels fall under `proxy_read_timeout`).
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub tunnel_idle: Duration,
    /// After the first EOF of a tunnel, how long the other direction may still run.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub fin: Duration,
    /// After an error response, how long unread client bytes are drained before the
    /// close, so the response is not destroyed by a TCP reset. nginx: `lingering_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub linger: Duration,
    /// On shutdown (SIGTERM), how long in-flight work may run before every connection
    /// is closed. Used by runtimes to build [`Input::Drain`](crate::Input::Drain).
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            upstream_connect: s(60),
            client_head: s(60),
            upstream_response_head: s(60),
            body_read: s(60),
            keepalive_idle: s(75),
            send: s(60),
            tunnel_idle: s(60),
            fin: s(30),
            linger: s(5),
            shutdown: s(30),
        }
    }
}

/// `X-Forwarded-*` fields added to requests (de-facto standard, see RFC 7239 §1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Forwarded {
    /// Append the client's IP address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// Set `X-Forwarded-Proto` to `http` or `https`, replacing any sent by the client.
    pub x_forwarded_proto: bool,
    /// Append `1.1 switchyard` to `Via` (RFC 9110 §7.6.3 requires a gateway to).
    pub via: bool,
}

impl Default for Forwarded {
    fn default() -> Self {
        Forwarded {
            x_forwarded_for: true,
            x_forwarded_proto: true,
            via: true,
        }
    }
}

/// Upstream keep-alive pool bounds (nginx: `keepalive`, `keepalive_timeout` in `upstream`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Pool {
    /// Idle connections kept per upstream address once load falls. Under load every
    /// released connection is kept (it is needed again a moment later); the surplus
    /// is closed after going unused for a sweep interval. 0 turns pooling off.
    pub max_idle: usize,
    /// An idle pooled connection older than this is closed.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub idle_timeout: Duration,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            max_idle: 32,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A set of interchangeable upstream servers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct UpstreamGroup {
    /// `host:port` of each server, then optionally `weight=N` (its share, 1 to 256,
    /// default 1) and `backup` (used only while no other server is usable), as in
    /// nginx: `"10.0.0.2:80 weight=3"` (see [`crate::balance::ServerSpec`]).
    pub servers: Vec<String>,
    /// How the next server is chosen.
    pub balance: Balance,
    /// Connect failures in a row after which a server is skipped for `fail_timeout`.
    /// nginx: `max_fails`.
    pub max_fails: u32,
    /// How long a failing server is skipped. nginx: `fail_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub fail_timeout: Duration,
}

impl Default for UpstreamGroup {
    fn default() -> Self {
        UpstreamGroup {
            servers: Vec::new(),
            balance: Balance::RoundRobin,
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
        }
    }
}

/// Server selection within a group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Balance {
    /// Each server in turn. nginx: the default.
    #[default]
    RoundRobin,
    /// The server with the fewest connections in use (ties in turn). nginx: `least_conn`.
    LeastConnections,
    /// The same client IP address gets the same server for as long as that server is
    /// up: what long-polling fallbacks (Socket.IO, SockJS) and in-process sessions
    /// need. A rendezvous hash of the client's address and each server's: when a
    /// server is down (or was tried), its clients go to their next-ranked servers and
    /// no one else moves; a server added takes only its share. The same in every
    /// process, so several proxies in front of one group agree. With no client
    /// address, in turn. nginx: `ip_hash` (which keys an IPv4 client by its /24).
    ClientIp,
}

/// Where requests for a host and path prefix go.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Route {
    /// `example.com` (exact, any case), `*.example.com` (any subdomain, not the bare
    /// domain), or none for any host.
    pub host: Option<String>,
    /// Matches the path when equal to it or followed by `/` or `?` there (so `/api`
    /// matches `/api/x` and `/api?q`, not `/apix`). The longest match wins.
    pub path_prefix: String,
    /// The group (a key of `upstreams`, or `default`).
    pub upstream: String,
    /// Remove `path_prefix` from the path before forwarding (`/api/x` → `/x`).
    pub strip_prefix: bool,
    /// This route's `limits.max_request_body` (0: no limit), in place of the global
    /// one: an upload path may take more, or an API less. nginx: `client_max_body_size`
    /// in a `location`.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::config::byte_size::deserialize_some")
    )]
    pub max_request_body: Option<u64>,
    /// This route's `websocket.allowed_origins` (an empty list: any), in place of the
    /// global one.
    pub allowed_origins: Option<Vec<String>>,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            host: None,
            path_prefix: "/".into(),
            upstream: "default".into(),
            strip_prefix: false,
            max_request_body: None,
            allowed_origins: None,
        }
    }
}

impl Config {
    /// Checks what types cannot: every route names a group, every group has servers.
    pub fn validate(&self) -> Result<(), String> {
        for (name, group) in &self.upstreams {
            if group.servers.is_empty() {
                return Err(format!(
                    "upstreams.{name}.servers: a group needs at least one server"
                ));
            }
            let mut all_backups = true;
            for server in &group.servers {
                let spec = crate::balance::ServerSpec::parse(server)
                    .map_err(|e| format!("upstreams.{name}.servers: {e}"))?;
                all_backups &= spec.backup;
            }
            if all_backups {
                return Err(format!(
                    "upstreams.{name}.servers: every server is a backup; one at least must not be"
                ));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if route.upstream != "default" && !self.upstreams.contains_key(&route.upstream) {
                return Err(format!(
                    "routes[{i}].upstream: no upstream group named {:?} (define [upstreams.{}])",
                    route.upstream, route.upstream
                ));
            }
            if !route.path_prefix.starts_with('/') {
                return Err(format!("routes[{i}].path_prefix: must start with '/'"));
            }
            for entry in route.allowed_origins.iter().flatten() {
                crate::origin::check_entry(entry)
                    .map_err(|e| format!("routes[{i}].allowed_origins: {e}"))?;
            }
        }
        for entry in &self.websocket.allowed_origins {
            crate::origin::check_entry(entry)
                .map_err(|e| format!("websocket.allowed_origins: {e}"))?;
        }
        if self.upstream.trim().is_empty() && !self.upstreams.contains_key("default") {
            return Err("upstream: empty, and no [upstreams.default] group".into());
        }
        Ok(())
    }
}

/// Options for tunnels whose protocol is `websocket` (RFC 6455).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct WebSocket {
    /// When a peer has sent nothing for this long, the proxy sends it a Ping (at a frame
    /// boundary) and expects a Pong; `None` (`"off"` in files) disables. On by default
    /// (30 s, under the common 60 s idle limits of proxies and load balancers on the
    /// way): a quiet but healthy WebSocket stays open, since Pongs count as activity,
    /// and a dead peer is found within `ping_interval + pong_timeout`. nginx has no
    /// equivalent: idle sockets there die at `proxy_read_timeout`, healthy or not.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::optional_duration"))]
    pub ping_interval: Option<Duration>,
    /// How long a pinged peer has to answer before it is declared dead. A peer the
    /// proxy does not read (flow control) is neither pinged nor timed meanwhile.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::duration"))]
    pub pong_timeout: Duration,
    /// Largest message a client may send, in payload bytes (0: no limit), counting
    /// every frame of a fragmented message as it crosses the wire (compressed, with
    /// `permessage-deflate`). A data frame that would take a message past it is not
    /// forwarded: the upstream gets Close 1001, then the client Close 1009 "message
    /// too big" (RFC 6455 §7.4.1). A backend that buffers whole messages is otherwise
    /// one frame header away from an allocation of any size. In files, bytes or a
    /// string such as `"1m"` (see [`parse_byte_size`]). nginx and HAProxy relay frames
    /// unread and have no equivalent.
    #[cfg_attr(feature = "serde", serde(with = "crate::config::byte_size"))]
    pub max_message_size: u64,
    /// Page origins that may open a WebSocket through the proxy, as
    /// `scheme://host[:port]` (`https://*.example.com` for every subdomain); empty: any.
    /// A handshake with another `Origin` gets `403` and never reaches the upstream
    /// (cross-site WebSocket hijacking, see [`crate::origin`]); one without `Origin`
    /// (not from a browser) passes. nginx: an `if ($http_origin !~ …) { return 403; }`.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocket {
    fn default() -> Self {
        WebSocket {
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            max_message_size: 0,
            allowed_origins: Vec::new(),
        }
    }
}

/// Parses a human duration: `"250ms"`, `"60s"`, `"2m"`, `"1h"`, or whole seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text).ok_or_else(|| {
        format!("invalid duration {text:?}: expected e.g. \"60s\", \"500ms\", \"2m\"")
    })?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// A whole number and the unit after it (spaces between allowed), as in `"60s"` or
/// `"10 m"`; `None` if it does not start with a number that fits 64 bits.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    Some((digits.parse().ok()?, unit.trim()))
}

/// Parses a size in bytes: `"1048576"`, or a number with a binary unit, `"512k"`,
/// `"10m"`, `"1g"` (nginx's spelling), also `"KiB"`, `"MiB"`, `"GiB"`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text).ok_or_else(|| {
        format!("invalid size {text:?}: expected e.g. \"10m\", \"512k\" or bytes")
    })?;
    let shift = match unit {
        "" => 0,
        "k" | "K" | "KiB" => 10,
        "m" | "M" | "MiB" => 20,
        "g" | "G" | "GiB" => 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use k, m or g (KiB, MiB, GiB)"
            ))
        }
    };
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Serde glue: a size is a number of bytes or a string for [`parse_byte_size`].
#[cfg(feature = "serde")]
pub mod byte_size {
    /// Deserializes `"10m"`-style strings or integers (bytes).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        super::number_or_string(
            d,
            "a size such as \"10m\", \"512k\" or a number of bytes",
            "a size cannot be negative",
            |bytes| bytes,
            super::parse_byte_size,
        )
    }

    /// [`deserialize`] for an optional key (absent: `None`, with `serde(default)`).
    pub fn deserialize_some<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u64>, D::Error> {
        deserialize(d).map(Some)
    }
}

/// Serde glue: a duration is a string for [`parse_duration`] or whole seconds.
#[cfg(feature = "serde")]
pub mod duration {
    use std::time::Duration;

    /// Deserializes `"60s"`-style strings or integers (seconds).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::number_or_string(
            d,
            "a duration such as \"60s\", \"500ms\", \"2m\" or whole seconds",
            "a duration cannot be negative",
            Duration::from_secs,
            super::parse_duration,
        )
    }
}

/// What durations and sizes share in files: a whole number (`from_int`), never
/// negative, or a string with a unit (`from_str`).
#[cfg(feature = "serde")]
fn number_or_string<'de, D: serde::Deserializer<'de>, T>(
    d: D,
    expecting: &'static str,
    negative: &'static str,
    from_int: fn(u64) -> T,
    from_str: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct Visitor<T> {
        expecting: &'static str,
        negative: &'static str,
        from_int: fn(u64) -> T,
        from_str: fn(&str) -> Result<T, String>,
    }
    impl<T> serde::de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            Ok((self.from_int)(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            let v = u64::try_from(v).map_err(|_| E::custom(self.negative))?;
            Ok((self.from_int)(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.from_str)(v).map_err(E::custom)
        }
    }
    d.deserialize_any(Visitor {
        expecting,
        negative,
        from_int,
        from_str,
    })
}

/// Serde glue: an optional duration, `"off"` (or `false`) for none.
#[cfg(feature = "serde")]
pub mod optional_duration {
    use std::time::Duration;

    /// Deserializes `"off"`/`false` as `None`, else a duration as in [`super::duration`].
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"off\" or a duration such as \"20s\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::custom("use a duration such as \"20s\" to enable"))
                } else {
                    Ok(None)
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(Duration::from_secs(v)).filter(|d| !d.is_zero()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a duration cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim() == "off" {
                    return Ok(None);
                }
                super::parse_duration(v)
                    .map(|d| Some(d).filter(|d| !d.is_zero()))
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}
