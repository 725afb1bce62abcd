//! TLS termination (https and wss through the same path as plain), SNI, the
//! handshake deadline, and TLS towards upstreams. Certificates are made at test time.

use super::routing::labelled;
use crate::backend::{Backend, Reply};
use crate::tls::{self, Pki, TlsBackend};
use crate::{http, test_config, Config, ListenMode, ListenerSetup, ProxyUnderTest, Setup};
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use runtime_common::rustls::client::Resumption;
use runtime_common::rustls::pki_types::ServerName;
use runtime_common::rustls::{ClientConfig, HandshakeKind, NamedGroup, ServerConfig};
use runtime_common::UpstreamTls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

/// One listener with `mode` and `tls`.
pub(crate) fn setup_with(
    config: Config,
    mode: ListenMode,
    tls: Option<Arc<ServerConfig>>,
) -> Setup {
    Setup {
        listeners: vec![ListenerSetup {
            address: "127.0.0.1:0".parse().unwrap(),
            mode,
            tls,
            proxy_protocol: false,
        }],
        ..Setup::new(Arc::new(config))
    }
}

/// https: ALPN `http/1.1`, `X-Forwarded-Proto: https`, keep-alive over TLS.
pub async fn https_through_a_tls_listener(p: &dyn ProxyUnderTest) {
    let backend = Backend::http(|r| {
        let proto = r.header("x-forwarded-proto").unwrap_or("-").to_string();
        Reply::Bytes(http::ok(format!("{} proto={proto}", r.target).as_bytes()))
    })
    .await;
    let pki = Pki::new();
    let cert = pki.cert("a", &["a.test"]);
    let setup = setup_with(
        test_config(backend.addr),
        ListenMode::Http,
        Some(pki.server(&[cert])),
    );
    let Some(proxy) = p.start_setup(setup).await else {
        return;
    };
    let mut stream = tls::connect(proxy.listen[0], "a.test", pki.client())
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A client that offers the post-quantum hybrid (as Chrome and Firefox do) gets it.
    let group = stream.get_ref().1.negotiated_key_exchange_group();
    assert_eq!(group.map(|g| g.name()), Some(NamedGroup::X25519MLKEM768));
    for path in ["/one", "/two"] {
        let r = tls::get(&mut stream, "a.test", path).await.unwrap();
        assert_eq!((r.status, r.body), (200, format!("{path} proto=https")));
    }
    assert_eq!(backend.connections().len(), 1, "kept alive upstream too");
}

/// wss: a real WebSocket client over TLS to the proxy, echoed by the backend.
pub async fn wss_through_a_tls_listener(p: &dyn ProxyUnderTest) {
    let backend = Backend::http_and_websocket().await;
    let pki = Pki::new();
    let cert = pki.cert("a", &["a.test"]);
    let setup = setup_with(
        test_config(backend.addr),
        ListenMode::Http,
        Some(pki.server(&[cert])),
    );
    let Some(proxy) = p.start_setup(setup).await else {
        return;
    };
    let stream = tls::connect(proxy.listen[0], "a.test", pki.client())
        .await
        .unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("wss://a.test/chat", stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(response.status().as_u16(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("secret {i}"))).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(3), ws.next()).await;
        assert_eq!(
            echo.ok().flatten().map(|m| m.map_err(|e| e.to_string())),
            Some(Ok(Message::text(format!("secret {i}"))))
        );
    }
    ws.close(None).await.unwrap();
}

/// Returning clients resume their TLS session (no certificate signature, the costly
/// part of a handshake) however many they are, and after a reload: sessions live in
/// stateless tickets. rustls' default, a cache of 256 sessions, resumed 49 of 200
/// clients (two tickets each). The admin endpoint counts both kinds.
pub async fn tls_sessions_resume_for_hundreds_of_clients_and_across_a_reload(
    p: &dyn ProxyUnderTest,
) {
    const CLIENTS: usize = 200;
    let backend = labelled("up").await;
    let pki = Pki::new();
    let cert = pki.cert("a", &["a.test"]);
    let tls_setup = || {
        setup_with(
            test_config(backend.addr),
            ListenMode::Http,
            Some(pki.server(std::slice::from_ref(&cert))),
        )
    };
    let Some(proxy) = p.start_setup(tls_setup()).await else {
        return;
    };
    // Each client remembers its own sessions, as each browser does.
    let clients: Vec<Arc<ClientConfig>> = (0..CLIENTS)
        .map(|_| {
            let mut config = (*pki.client()).clone();
            config.resumption = Resumption::in_memory_sessions(4);
            Arc::new(config)
        })
        .collect();
    let addr = proxy.listen[0];
    // One request over a new connection; whether its handshake was a resumption.
    let visit = |config: Arc<ClientConfig>| async move {
        let mut stream = tls::connect(addr, "a.test", config).await.unwrap();
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        let r = tls::get(&mut stream, "a.test", "/").await.unwrap();
        assert_eq!(r.status, 200);
        resumed
    };
    let resumed = |round: Vec<bool>| round.into_iter().filter(|r| *r).count();

    let first = join_all(clients.iter().cloned().map(visit)).await;
    assert_eq!(resumed(first), 0, "first visits are full handshakes");
    let second = join_all(clients.iter().cloned().map(visit)).await;
    assert_eq!(resumed(second), CLIENTS, "every returning client resumes");

    proxy.reload(tls_setup()).expect("reload");
    let after_reload = join_all(clients.iter().take(20).cloned().map(visit)).await;
    assert_eq!(resumed(after_reload), 20, "sessions outlive a reload");

    let (_, metrics) = super::metrics::scrape(proxy.admin).await;
    for expected in [
        format!("switchyard_tls_handshakes_total{{kind=\"full\"}} {CLIENTS}"),
        format!(
            "switchyard_tls_handshakes_total{{kind=\"resumed\"}} {}",
            CLIENTS + 20
        ),
    ] {
        assert!(
            metrics.contains(&expected),
            "no {expected:?} in:\n{metrics}"
        );
    }
}

/// A `redirect_https` listener in front of a TLS one: a request on the plain port gets
/// (a `POST`) `308` to `https://` the same host and target, and reaches no backend; the https
/// port serves it.
pub async fn a_redirect_https_listener_sends_requests_to_the_tls_one(p: &dyn ProxyUnderTest) {
    let backend = labelled("up").await;
    let pki = Pki::new();
    let cert = pki.cert("a", &["a.test"]);
    let redirect = ListenMode::RedirectHttps {
        port: std::num::NonZeroU16::new(8443).unwrap(),
    };
    let mut setup = setup_with(test_config(backend.addr), redirect, None);
    setup.listeners.push(ListenerSetup {
        address: "127.0.0.1:0".parse().unwrap(),
        mode: ListenMode::Http,
        tls: Some(pki.server(&[cert])),
        proxy_protocol: false,
    });
    let Some(proxy) = p.start_setup(setup).await else {
        return;
    };
    let request = b"POST /x?y=1 HTTP/1.1\r\nHost: a.test:80\r\nContent-Length: 2\r\n\r\nhi";
    let r = super::exchange(&proxy.proxy, request, "POST").await;
    assert_eq!(r.status, 308, "{}", r.text());
    assert_eq!(r.header("location"), Some("https://a.test:8443/x?y=1"));
    assert!(backend.requests().is_empty(), "nothing reached the backend");

    let mut stream = tls::connect(proxy.listen[1], "a.test", pki.client())
        .await
        .unwrap();
    let r = tls::get(&mut stream, "a.test", "/x?y=1").await.unwrap();
    assert_eq!((r.status, r.body), (200, "up GET /x?y=1".to_string()));
}

/// Several certificates: SNI picks the one for the name asked (exact, or wildcard
/// from `names`); an unknown name gets the first.
pub async fn sni_picks_the_certificate_by_server_name(p: &dyn ProxyUnderTest) {
    let backend = labelled("up").await;
    let pki = Pki::new();
    let mut wildcard = pki.cert("wild", &["*.c.test"]);
    wildcard.names = vec!["*.c.test".into()];
    let certs = [
        pki.cert("a", &["a.test"]),
        pki.cert("b", &["b.test"]),
        wildcard,
    ];
    let setup = setup_with(
        test_config(backend.addr),
        ListenMode::Http,
        Some(pki.server(&certs)),
    );
    let Some(proxy) = p.start_setup(setup).await else {
        return;
    };
    for name in ["b.test", "a.test", "x.c.test"] {
        // The client verifies the certificate against `name`: only the right one passes.
        let mut stream = tls::connect(proxy.listen[0], name, pki.client())
            .await
            .unwrap_or_else(|e| panic!("TLS for {name}: {e}"));
        let r = tls::get(&mut stream, name, "/").await.unwrap();
        assert_eq!(r.status, 200, "{name}");
    }
    let unknown = tls::connect(proxy.listen[0], "other.test", pki.client()).await;
    assert!(
        unknown.is_err(),
        "the default certificate is a.test's, not other.test's"
    );
}

/// A client that connects and never finishes its TLS handshake is closed after
/// `timeouts.client_head`.
pub async fn unfinished_tls_handshake_is_closed_after_client_head(p: &dyn ProxyUnderTest) {
    let backend = labelled("up").await;
    let pki = Pki::new();
    let mut config = test_config(backend.addr);
    config.timeouts.client_head = Duration::from_millis(400);
    let setup = setup_with(
        config,
        ListenMode::Http,
        Some(pki.server(&[pki.cert("a", &["a.test"])])),
    );
    let Some(proxy) = p.start_setup(setup).await else {
        return;
    };
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(proxy.listen[0])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "expected the connection closed, got {read:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "closed too early: {took:?}"
    );
}

/// `upstream_tls`: the proxy speaks TLS to the upstream, verifying its certificate
/// against a CA file and a configured server name.
pub async fn upstream_tls_verified_with_a_ca_file(p: &dyn ProxyUnderTest) {
    let pki = Pki::new();
    let backend = TlsBackend::http(pki.server(&[pki.cert("backend", &["backend.test"])])).await;
    let mut setup = setup_with(test_config(backend.addr), ListenMode::Http, None);
    setup.upstream_tls.insert(
        backend.addr.to_string(),
        UpstreamTls {
            config: pki.client(),
            server_name: ServerName::try_from("backend.test").unwrap(),
        },
    );
    let Some(proxy) = p.start_setup(setup).await else {
        return;
    };
    for path in ["/a", "/b"] {
        let r = super::exchange(&proxy.proxy, &super::get(path), "GET").await;
        assert_eq!((r.status, r.text()), (200, format!("tls GET {path}")));
    }
    // A name the certificate does not carry fails verification: 502.
    let mut wrong = setup_with(test_config(backend.addr), ListenMode::Http, None);
    wrong.upstream_tls.insert(
        backend.addr.to_string(),
        UpstreamTls {
            config: pki.client(),
            server_name: ServerName::try_from("other.test").unwrap(),
        },
    );
    proxy.reload(wrong).expect("reload");
    let r = super::exchange(&proxy.proxy, &super::get("/c"), "GET").await;
    assert_eq!(r.status, 502, "{}", r.text());
}

/// For [`crate::scenarios::layer4`]: the address of a TLS WebSocket echo server
/// whose certificate is for `name`.
pub(crate) async fn wss_backend(pki: &Pki, name: &str) -> (TlsBackend, SocketAddr) {
    let handler: tls::TlsHandler = Arc::new(|stream| {
        Box::pin(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        })
    });
    let backend = TlsBackend::start(pki.server(&[pki.cert("ws", &[name])]), handler).await;
    let addr = backend.addr;
    (backend, addr)
}
