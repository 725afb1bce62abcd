//! TLS for the scenarios: a test CA and certificates made at test time (rcgen),
//! written as PEM files (so the proxy loads them the way an operator's would), a
//! rustls client that trusts the CA, and a TLS backend.

use futures_util::future::BoxFuture;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use runtime_common::rustls::pki_types::ServerName;
use runtime_common::rustls::{ClientConfig, ServerConfig};
use runtime_common::tls::{self, CertFiles};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A CA and the files it signed, in a temporary directory.
pub struct Pki {
    /// Where the PEM files are.
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A fresh CA.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-pki-")
            .tempdir()
            .unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "switchyard test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki {
            dir,
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` signed by the CA, as `<stem>.pem` and `<stem>.key`.
    pub fn cert(&self, stem: &str, names: &[&str]) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.path().join(format!("{stem}.pem"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        CertFiles {
            cert: cert_path,
            key: key_path,
            names: Vec::new(),
        }
    }

    /// A server configuration with these certificates (SNI picks), ALPN `http/1.1`.
    pub fn server(&self, certs: &[CertFiles]) -> Arc<ServerConfig> {
        tls::server_config(certs, true).expect("server config from the test certificates")
    }

    /// A client that trusts only this CA and offers ALPN `http/1.1`.
    pub fn client(&self) -> Arc<ClientConfig> {
        tls::client_config(Some(&self.ca), true).expect("client config")
    }
}

/// Connects to `addr` and runs a TLS handshake for server `name`.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    handshake(tcp, name, config).await
}

/// Runs a TLS handshake for server `name` over `tcp`.
pub async fn handshake(
    tcp: TcpStream,
    name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(name.to_owned()).map_err(io::Error::other)?;
    let handshake = TlsConnector::from(config).connect(name, tcp);
    tokio::time::timeout(Duration::from_secs(3), handshake)
        .await
        .map_err(|_| io::Error::other("TLS handshake timed out"))?
}

/// A response read by [`get`].
#[derive(Debug)]
pub struct Response {
    /// Its status.
    pub status: u16,
    /// The head, as text.
    pub head: String,
    /// The body (by `Content-Length`).
    pub body: String,
}

/// Sends `GET path` with `Host: host` on `stream` and reads the response (which must
/// carry `Content-Length`), within 3 s.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> io::Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    read_response(stream).await
}

/// Reads a response (which must carry `Content-Length`) from `stream`, within 3 s.
pub async fn read_response<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> io::Result<Response> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                    let body = &buf[end + 4..end + 4 + length];
                    return Ok(Response {
                        status,
                        head,
                        body: String::from_utf8_lossy(body).to_string(),
                    });
                }
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before a whole response",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .map_err(|_| io::Error::other("no whole response within 3 s"))?
}

/// A handler for one decrypted backend connection.
pub type TlsHandler =
    Arc<dyn Fn(tokio_rustls::server::TlsStream<TcpStream>) -> BoxFuture<'static, ()> + Send + Sync>;

/// A TLS backend on 127.0.0.1 running `handler` on every connection after the
/// handshake; stops when dropped.
pub struct TlsBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TlsBackend {
    /// Starts one.
    pub async fn start(config: Arc<ServerConfig>, handler: TlsHandler) -> TlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(config);
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, handler) = (acceptor.clone(), handler.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        handler(stream).await;
                    }
                });
            }
        });
        TlsBackend { addr, accept }
    }

    /// Answers every request on a connection with `200 OK` and the body
    /// `tls <METHOD> <target> proto=<X-Forwarded-Proto>`.
    pub async fn http(config: Arc<ServerConfig>) -> TlsBackend {
        let handler: TlsHandler = Arc::new(|mut stream| {
            Box::pin(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let line = head.lines().next().unwrap_or_default().to_string();
                        let mut words = line.split(' ');
                        let (method, target) =
                            (words.next().unwrap_or(""), words.next().unwrap_or(""));
                        let body = format!("tls {method} {target}");
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
        });
        TlsBackend::start(config, handler).await
    }
}
