//! The admin listener's `GET /metrics`, after real traffic.

use super::routing::{dead_addr, group};
use super::tls::setup_with;
use super::{exchange, get};
use crate::backend::Backend;
use crate::http::Conn;
use crate::ws;
use crate::{test_config, ListenMode, ProxyUnderTest};
use futures_util::SinkExt;
use proxy_core::Route;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// `GET /metrics` on the admin address: status and body.
pub async fn scrape(admin: SocketAddr) -> (u16, String) {
    let mut c = Conn::connect(admin)
        .await
        .expect("connect to the admin listener");
    c.write(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), c.read_response("GET"))
        .await
        .expect("metrics within 3 s")
        .expect("read metrics");
    (r.status, r.text())
}

/// Scrapes until `line` is there (the tunnel event comes a moment after the close).
async fn scrape_until(admin: SocketAddr, line: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (status, text) = scrape(admin).await;
        assert_eq!(status, 200);
        if text.contains(line) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {line:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests by status, upstream connect failures, a WebSocket's bytes, end reason
/// and duration, and the request histogram, all in Prometheus text.
pub async fn metrics_count_requests_tunnels_and_connect_failures(p: &dyn ProxyUnderTest) {
    let backend = Backend::http_and_websocket().await;
    let dead = dead_addr();
    let mut config = test_config(backend.addr);
    config.upstreams.insert("gone".into(), group(&[dead]));
    config.routes = vec![
        Route {
            path_prefix: "/gone".into(),
            upstream: "gone".into(),
            ..Route::default()
        },
        Route::default(),
    ];
    let Some(proxy) = p
        .start_setup(setup_with(config, ListenMode::Http, None))
        .await
    else {
        return;
    };
    assert_eq!(exchange(&proxy.proxy, &get("/ok"), "GET").await.status, 200);
    assert_eq!(
        exchange(&proxy.proxy, &get("/gone"), "GET").await.status,
        502
    );
    let mut client = ws::connect(proxy.listen[0]).await;
    client.send(Message::text("12345")).await.unwrap();
    assert!(ws::next(&mut client, Duration::from_secs(3))
        .await
        .is_some());
    drop(client); // no Close frame: the upstream gets 1001, the end is "peer_gone"
    scrape_until(
        proxy.admin,
        "switchyard_tunnels_closed_total{reason=\"peer_gone\",side=\"client\"} 1",
    )
    .await;
    // The tunnel is counted closed when its end is logged, and leaves the open gauge
    // when its session is dropped, a moment later: a scrape in between shows both.
    let text = scrape_until(proxy.admin, "switchyard_tunnels_open 0\n").await;
    for line in [
        "switchyard_requests_total{status=\"200\"} 1\n",
        "switchyard_requests_total{status=\"502\"} 1\n",
        "switchyard_upstream_connect_failures_total{reason=\"refused\"} 1\n",
        "switchyard_tunnels_open 0\n",
        "switchyard_tunnel_duration_seconds_count 1\n",
        "# TYPE switchyard_request_duration_seconds histogram\n",
        "switchyard_upstream_active{group=\"gone\",address=\"",
        "switchyard_refused_total{reason=\"too_many_connections\"} 0\n",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    let bytes = |direction: &str| {
        let prefix = format!("switchyard_tunnel_bytes_total{{direction=\"{direction}\"}} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_default();
        line[prefix.len().min(line.len())..]
            .parse::<u64>()
            .unwrap_or(0)
    };
    assert!(
        bytes("client_to_upstream") >= 5 && bytes("upstream_to_client") >= 5,
        "{text}"
    );
}
