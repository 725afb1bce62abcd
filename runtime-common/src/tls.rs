//! TLS with rustls: server configurations for listeners (certificates picked by SNI,
//! ALPN `http/1.1`, rustls' safe defaults: TLS 1.3 and 1.2 with forward-secret AEAD
//! suites only, sessions resumed from stateless tickets) and client configurations for
//! upstreams (a CA file, or the Mozilla roots of `webpki-roots`).
//!
//! The crypto is aws-lc-rs, rustls' default provider: with an RSA-2048 certificate a
//! full handshake costs the proxy about 40% less CPU than with *ring* (its RSA
//! signatures are slower), and it has the post-quantum hybrid `X25519MLKEM768`,
//! chosen when the client offers it (as current browsers do).
//!
//! Only configuration lives here; the handshakes run in each runtime's own TLS crate
//! (tokio-rustls, futures-rustls) behind [`Runtime`](crate::Runtime).

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// One certificate of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Server names (SNI) it is for, `*.example.com` allowed; when empty, the DNS
    /// names of the certificate's subjectAltName.
    pub names: Vec<String>,
}

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration that presents, for each handshake, the first certificate
/// whose names match the client's SNI exactly, else the first matching by wildcard,
/// else the first certificate. `http` offers ALPN `http/1.1`. Errors name the file.
pub fn server_config(certs: &[CertFiles], http: bool) -> Result<Arc<ServerConfig>, String> {
    if certs.is_empty() {
        return Err("needs at least one certificate".into());
    }
    let provider = provider();
    let mut entries = Vec::new();
    for files in certs {
        let chain = load_certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| format!("{}: no private key: {e}", files.key.display()))?;
        let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
            format!(
                "{} and {}: not a usable certificate and key: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
        let names = match files.names.is_empty() {
            true => cert_names(&key.cert[0]),
            false => files.names.clone(),
        };
        let names = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        entries.push((names, Arc::new(key)));
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { entries }));
    if http {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    let resumption = resumption()?;
    config.ticketer = resumption.tickets.clone();
    config.session_storage = resumption.cache.clone();
    // One TLS 1.3 ticket per connection, not rustls' two: each connection brings its
    // client a ticket for the next, and the second cost the client a record and a
    // session to file (wrk: 7% fewer resumed connections a second) and the proxy 5%.
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// How a returning client skips the costly part of a full handshake, the
/// certificate's signature (and its own check of the chain): one state for the whole
/// process, so that a session survives a reload and any listener can resume it
/// (rustls resumes only for the server name the session was made for).
struct Resumption {
    /// Stateless tickets (TLS 1.3, and TLS 1.2 clients that ask): the session is
    /// sealed in the ticket with a key that rotates every 6 hours, so any number of
    /// clients can come back. rustls' default, a cache of 256 sessions, resumed none
    /// of 600 returning clients (each TLS 1.3 handshake files two tickets).
    tickets: Arc<dyn ProducesTickets>,
    /// Session IDs, for TLS 1.2 clients without ticket support.
    cache: Arc<dyn StoresServerSessions>,
}

/// The process's [`Resumption`], made on first use.
fn resumption() -> Result<&'static Resumption, String> {
    /// Sessions kept for TLS 1.2 session IDs (a few hundred bytes each).
    const CACHED_SESSIONS: usize = 4096;
    static RESUMPTION: OnceLock<Resumption> = OnceLock::new();
    if let Some(made) = RESUMPTION.get() {
        return Ok(made);
    }
    let tickets = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| format!("cannot make TLS session ticket keys: {e}"))?;
    Ok(RESUMPTION.get_or_init(|| Resumption {
        tickets,
        cache: ServerSessionMemoryCache::new(CACHED_SESSIONS),
    }))
}

/// A client configuration that trusts the certificates of `ca` (PEM), or the Mozilla
/// roots when `None`, and offers ALPN `http/1.1` when `http`.
pub fn client_config(ca: Option<&Path>, http: bool) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in load_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a CA certificate: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if http {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// The name to verify an upstream's certificate against (and to send as SNI):
/// `configured`, else the host part of `address` (`host:port`, `[v6]:port`).
pub fn server_name(address: &str, configured: Option<&str>) -> Result<ServerName<'static>, String> {
    let host = match configured {
        Some(name) => name,
        None => {
            let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
            host.trim_start_matches('[').trim_end_matches(']')
        }
    };
    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?} is not a server name: {e}"))
}

/// Every certificate of a PEM file, in order; at least one.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match certs.is_empty() {
        true => Err(format!("{}: no certificate in it", path.display())),
        false => Ok(certs),
    }
}

/// The DNS names of a certificate's subjectAltName.
fn cert_names(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(cert) => cert.valid_dns_names().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// Picks a certificate by SNI.
struct BySni {
    /// (lower-case names, certificate); the first is the default.
    entries: Vec<(Vec<String>, Arc<CertifiedKey>)>,
}

impl BySni {
    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let exact = self.entries.iter().find(|(names, _)| names.contains(&name));
        let wildcard = || {
            let (_, parent) = name.split_once('.')?;
            let pattern = format!("*.{parent}");
            self.entries
                .iter()
                .find(|(names, _)| names.contains(&pattern))
        };
        exact.or_else(wildcard).map(|(_, key)| key)
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello.server_name().and_then(|name| self.find(name));
        found.or(self.entries.first().map(|(_, key)| key)).cloned()
    }
}

impl fmt::Debug for BySni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|(names, _)| names).collect();
        f.debug_struct("BySni").field("names", &names).finish()
    }
}
