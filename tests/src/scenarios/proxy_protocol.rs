//! Listeners with `proxy_protocol`: each connection starts with a PROXY header (v1 or
//! v2, before TLS) from a load balancer, and the client is the address it names.

use super::metrics::scrape;
use super::response;
use crate::backend::{Backend, Reply};
use crate::http::{self, Conn};
use crate::tls::{self, Pki};
use crate::{test_config, ListenMode, ListenerSetup, ProxyUnderTest, Setup};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A backend answering with the `X-Forwarded-For` it got and `X-Forwarded-Proto`.
async fn forwarded_for() -> Backend {
    Backend::http(|r| {
        let xff = r.header("x-forwarded-for").unwrap_or("-");
        let proto = r.header("x-forwarded-proto").unwrap_or("-");
        Reply::Bytes(http::ok(format!("{xff} {proto}").as_bytes()))
    })
    .await
}

fn setup(backend: &Backend, tls: Option<Arc<runtime_common::rustls::ServerConfig>>) -> Setup {
    let mut config = test_config(backend.addr);
    config.timeouts.client_head = Duration::from_millis(500);
    Setup {
        listeners: vec![ListenerSetup {
            address: "127.0.0.1:0".parse().unwrap(),
            mode: ListenMode::Http,
            tls,
            proxy_protocol: true,
        }],
        ..Setup::new(Arc::new(config))
    }
}

/// A version 2 header for an IPv4 client.
fn v2_inet(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend(src);
    header.extend([127, 0, 0, 1]);
    header.extend(sport.to_be_bytes());
    header.extend(80u16.to_be_bytes());
    header
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";

/// v1 and v2 headers name the client, in `X-Forwarded-For`, whether they come with
/// the request in one write or a byte at a time; a v2 `LOCAL` (a health check) names
/// none, and the connection's own address stands; a keep-alive connection's second
/// request is the same client's.
pub async fn proxy_protocol_headers_name_the_client(p: &dyn ProxyUnderTest) {
    let backend = forwarded_for().await;
    let Some(proxy) = p.start_setup(setup(&backend, None)).await else {
        return;
    };
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n".to_vec();
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    for (header, split, expected) in [
        (v1.clone(), false, "203.0.113.7 http"),
        (v1, true, "203.0.113.7 http"),
        (v2_inet([198, 51, 100, 9], 1234), false, "198.51.100.9 http"),
        (v2_inet([198, 51, 100, 9], 1234), true, "198.51.100.9 http"),
        (local, false, "127.0.0.1 http"),
    ] {
        let mut c = Conn::connect(proxy.listen[0]).await.unwrap();
        if split {
            for byte in &header {
                c.write(std::slice::from_ref(byte)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            c.write(GET).await.unwrap();
        } else {
            c.write(&[&header[..], GET].concat()).await.unwrap();
        }
        let r = response(&mut c, "GET", "after a PROXY header").await;
        assert_eq!((r.status, r.text().as_str()), (200, expected), "{header:?}");
        c.write(GET).await.unwrap();
        let r = response(&mut c, "GET", "kept alive").await;
        assert_eq!(r.text(), expected);
    }
}

/// A connection that does not start with a valid header, or sends none within
/// `timeouts.client_head`, is closed unanswered, reaches no backend, and is counted.
pub async fn a_connection_without_a_valid_proxy_header_is_closed(p: &dyn ProxyUnderTest) {
    let backend = forwarded_for().await;
    let Some(proxy) = p.start_setup(setup(&backend, None)).await else {
        return;
    };
    for first in [
        GET,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000\r\nGET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\n",
        b"PROXY TCP4 203.0.113.7", // and then nothing: the deadline
    ] {
        let mut c = Conn::connect(proxy.listen[0]).await.unwrap();
        c.write(first).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), c.read_to_end())
            .await
            .expect("closed within 3 s");
        assert!(
            got.as_ref().map_or(true, Vec::is_empty),
            "answered {got:?} to {}",
            String::from_utf8_lossy(first)
        );
    }
    assert!(backend.connections().is_empty(), "a backend was dialled");
    let (_, metrics) = scrape(proxy.admin).await;
    assert!(
        metrics.contains("switchyard_proxy_protocol_failures_total 4\n"),
        "{metrics}"
    );
}

/// With TLS, the header comes first, in the clear, and the handshake after it.
pub async fn proxy_protocol_comes_before_tls(p: &dyn ProxyUnderTest) {
    let backend = forwarded_for().await;
    let pki = Pki::new();
    let cert = pki.cert("a", &["a.test"]);
    let Some(proxy) = p
        .start_setup(setup(&backend, Some(pki.server(&[cert]))))
        .await
    else {
        return;
    };
    let mut tcp = tokio::net::TcpStream::connect(proxy.listen[0])
        .await
        .unwrap();
    tcp.write_all(b"PROXY TCP6 2001:db8::7 ::1 40000 443\r\n")
        .await
        .unwrap();
    let mut stream = tls::handshake(tcp, "a.test", pki.client()).await.unwrap();
    let r = tls::get(&mut stream, "a.test", "/").await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "2001:db8::7 https"));
}
