//! [`Setup`]: everything one configuration gives a running proxy — the core's
//! [`Config`], and what only the runtime uses: each listener's mode and TLS, TLS
//! towards upstreams, the access log switch. A reload swaps the whole of it.

use proxy_core::Config;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;

/// What one configuration gives the proxy. [`Setup::new`] is plain HTTP on every
/// listener, no TLS anywhere, access log on.
#[derive(Clone)]
pub struct Setup {
    /// What every session gets.
    pub config: Arc<Config>,
    /// How each listener serves, found by its address; a listener not named here
    /// serves plain HTTP.
    pub listeners: Vec<ListenerSetup>,
    /// TLS towards upstream servers, by their `host:port` as configured.
    pub upstream_tls: HashMap<String, UpstreamTls>,
    /// Whether request and tunnel lines are logged.
    pub access_log: bool,
}

impl Setup {
    /// Plain HTTP with `config` on every listener.
    pub fn new(config: Arc<Config>) -> Setup {
        Setup {
            config,
            listeners: Vec::new(),
            upstream_tls: HashMap::new(),
            access_log: true,
        }
    }

    /// How the listener on `address` serves.
    pub fn listener(&self, address: SocketAddr) -> Option<&ListenerSetup> {
        self.listeners.iter().find(|l| l.address == address)
    }
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("config", &self.config)
            .field("listeners", &self.listeners)
            .field(
                "upstream_tls",
                &self.upstream_tls.keys().collect::<Vec<_>>(),
            )
            .field("access_log", &self.access_log)
            .finish()
    }
}

/// How one listener serves.
#[derive(Clone)]
pub struct ListenerSetup {
    /// Where it listens.
    pub address: SocketAddr,
    /// HTTP, or bytes passed through to a group.
    pub mode: ListenMode,
    /// TLS termination: accepted connections handshake first (bounded by
    /// `timeouts.client_head`).
    pub tls: Option<Arc<ServerConfig>>,
    /// Every connection starts with a PROXY protocol header (v1 or v2, before TLS),
    /// read within `timeouts.client_head`; the client is the address it names. A
    /// connection without a valid one is closed.
    pub proxy_protocol: bool,
}

impl fmt::Debug for ListenerSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerSetup")
            .field("address", &self.address)
            .field("mode", &self.mode)
            .field("tls", &self.tls.is_some())
            .field("proxy_protocol", &self.proxy_protocol)
            .finish()
    }
}

/// What a listener does with its connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ListenMode {
    /// HTTP/1.1 and upgrades, routed by the core.
    #[default]
    Http,
    /// Layer 4: bytes go untouched to a server of this upstream group
    /// (`Proxy::tcp_session`).
    Tcp {
        /// The group's name (a key of `upstreams`, or `default`).
        upstream: String,
        /// Each upstream connection starts with a PROXY protocol header of this
        /// version naming the client (before TLS to the upstream, if any).
        send_proxy: Option<proxy_core::proxy_protocol::Version>,
    },
    /// HTTP whose every request the core answers with a permanent redirect (`301`,
    /// or `308` for methods other than `GET` and `HEAD`) to `https://` the same
    /// host and target (`ClientInfo::redirect_to_https`): the plain port in front of
    /// a TLS listener.
    RedirectHttps {
        /// The https port the redirects name (443, the default, is left out of them).
        port: NonZeroU16,
    },
}

impl ListenMode {
    /// Whether its connections speak HTTP (all but layer 4).
    pub fn is_http(&self) -> bool {
        !matches!(self, ListenMode::Tcp { .. })
    }
}

/// TLS towards one upstream server.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    /// Roots and ALPN.
    pub config: Arc<ClientConfig>,
    /// SNI, and the name its certificate must carry.
    pub server_name: ServerName<'static>,
}
