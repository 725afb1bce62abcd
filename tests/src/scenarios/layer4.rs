//! Layer-4 listeners (`mode = "tcp"`): bytes relayed untouched through the core's
//! tunnel (half-close, idle timeout), TLS passed through intact.

use super::routing::group;
use super::tls::{setup_with, wss_backend};
use crate::backend::Backend;
use crate::tls::{self, Pki};
use crate::{test_config, ListenMode, ProxyUnderTest};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn tcp(upstream: &str) -> ListenMode {
    ListenMode::Tcp {
        upstream: upstream.into(),
        send_proxy: None,
    }
}

/// `send_proxy_protocol`: the upstream gets a PROXY header naming the client and the
/// proxy's address (v1 and v2), exactly once, then the client's bytes untouched.
pub async fn tcp_listener_sends_a_proxy_header_upstream(p: &dyn ProxyUnderTest) {
    use proxy_core::proxy_protocol::{parse, Parsed, Source, Version};
    let backend = Backend::start(|mut c| async move {
        let got = c.drain_to_eof().await;
        c.write(&got).await?;
        c.conn.shutdown_write().await
    })
    .await;
    for version in [Version::V1, Version::V2] {
        let mut config = test_config(backend.addr);
        config
            .upstreams
            .insert("raw".into(), group(&[backend.addr]));
        let mode = ListenMode::Tcp {
            upstream: "raw".into(),
            send_proxy: Some(version),
        };
        let Some(proxy) = p.start_setup(setup_with(config, mode, None)).await else {
            return;
        };
        let mut client = tokio::net::TcpStream::connect(proxy.listen[0])
            .await
            .unwrap();
        let me = client.local_addr().unwrap();
        client
            .write_all(b"PROXY not from the client")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
            .await
            .expect("the echo within 5 s")
            .unwrap();
        let Ok(Parsed::Header { len, source }) = parse(&got) else {
            panic!(
                "{version:?}: no header in {:?}",
                String::from_utf8_lossy(&got)
            );
        };
        assert_eq!(source, Source::Client(me), "{version:?}");
        assert_eq!(&got[len..], b"PROXY not from the client", "{version:?}");
        if version == Version::V1 {
            let port = proxy.listen[0].port();
            let line = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n", me.port());
            assert_eq!(&got[..len], line.as_bytes());
        }
    }
}

/// Arbitrary bytes (not HTTP) go through untouched; the client's half-close reaches
/// the upstream, whose answer still comes back, then its close.
pub async fn tcp_listener_relays_bytes_untouched_with_half_close(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let mut got = c.drain_to_eof().await;
        got.reverse();
        c.write(&got).await?;
        c.conn.shutdown_write().await
    })
    .await;
    let mut config = test_config(backend.addr);
    config
        .upstreams
        .insert("raw".into(), group(&[backend.addr]));
    let Some(proxy) = p.start_setup(setup_with(config, tcp("raw"), None)).await else {
        return;
    };
    let sent: Vec<u8> = b"\x00\xffGET / HTTP/1.1\r\n\r\nnot http at all"
        .iter()
        .copied()
        .chain((0..=255u8).cycle().take(100_000))
        .collect();
    let mut client = tokio::net::TcpStream::connect(proxy.listen[0])
        .await
        .unwrap();
    client.write_all(&sent).await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
        .await
        .expect("the upstream's answer and close within 5 s")
        .unwrap();
    let mut expected = sent;
    expected.reverse();
    assert!(
        got == expected,
        "got {} bytes, expected {}",
        got.len(),
        expected.len()
    );
}

/// wss through a layer-4 listener: the client's TLS session is with the backend
/// (its certificate, verified by name), the proxy holds no certificate at all.
pub async fn tcp_listener_passes_tls_through_intact(p: &dyn ProxyUnderTest) {
    let pki = Pki::new();
    let (_backend, addr) = wss_backend(&pki, "ws.test").await;
    let mut config = test_config(addr);
    config.upstreams.insert("wss".into(), group(&[addr]));
    let Some(proxy) = p.start_setup(setup_with(config, tcp("wss"), None)).await else {
        return;
    };
    let stream = tls::connect(proxy.listen[0], "ws.test", pki.client())
        .await
        .expect("TLS with the backend, through the proxy");
    let (mut ws, _) = tokio_tungstenite::client_async("wss://ws.test/", stream)
        .await
        .expect("WebSocket handshake with the backend");
    ws.send(Message::binary(vec![7u8; 70_000])).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(3), ws.next()).await;
    assert_eq!(
        echo.ok().flatten().map(|m| m.map_err(|e| e.to_string())),
        Some(Ok(Message::binary(vec![7u8; 70_000])))
    );
    ws.close(None).await.unwrap();
}

/// A quiet layer-4 tunnel is closed after `timeouts.tunnel_idle`, both ways.
pub async fn tcp_listener_idle_timeout_closes_both(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        c.drain_to_eof().await;
        Ok(())
    })
    .await;
    let mut config = test_config(backend.addr);
    config.timeouts.tunnel_idle = Duration::from_millis(300);
    let Some(proxy) = p
        .start_setup(setup_with(config, tcp("default"), None))
        .await
    else {
        return;
    };
    let mut client = tokio::net::TcpStream::connect(proxy.listen[0])
        .await
        .unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), client.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(
        backend.settle(Duration::from_secs(2)).await,
        "the upstream side was closed too"
    );
    assert_eq!(backend.connections()[0].received(), b"hello");
}
