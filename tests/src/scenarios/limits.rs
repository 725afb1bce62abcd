//! Connection, tunnel and rate limits, end to end: the excess gets a 503 from the core.

use super::{client, exchange, get, response, start_with};
use crate::backend::{upgrade_request, Backend};
use crate::ws;
use crate::ProxyUnderTest;
use futures_util::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// `limits.max_connections = 1`: while one client connection is open, another gets
/// 503; once it closes, new connections are served again.
pub async fn over_max_connections_gets_503(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| c.limits.max_connections = 1).await;
    let mut first = client(&proxy).await;
    first.write(&get("/first")).await.unwrap();
    assert_eq!(response(&mut first, "GET", "first").await.status, 200);
    let refused = exchange(&proxy, &get("/second"), "GET").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    drop(first);
    served_again(&proxy).await;
}

/// `limits.max_connections_per_ip = 1`: a second connection from 127.0.0.1 gets 503.
pub async fn over_max_connections_per_ip_gets_503(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| c.limits.max_connections_per_ip = 1).await;
    let mut first = client(&proxy).await;
    first.write(&get("/first")).await.unwrap();
    assert_eq!(response(&mut first, "GET", "first").await.status, 200);
    let refused = exchange(&proxy, &get("/second"), "GET").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    drop(first);
    served_again(&proxy).await;
}

/// A new connection gets 200 within 2 s (the closed one's slot is released).
async fn served_again(proxy: &crate::RunningProxy) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if exchange(proxy, &get("/again"), "GET").await.status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused after the first closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `limits.max_tunnels = 1`: while one WebSocket is open, the next upgrade gets 503.
pub async fn over_max_tunnels_gets_503(p: &dyn ProxyUnderTest) {
    let backend = Backend::http_and_websocket().await;
    let proxy = start_with(p, backend.addr, |c| c.limits.max_tunnels = 1).await;
    let mut open = ws::connect(proxy.addr).await;
    open.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        ws::next(&mut open, Duration::from_secs(3)).await,
        Some(Ok(Message::text("hi")))
    );
    let mut second = client(&proxy).await;
    second
        .write(&upgrade_request("example.test"))
        .await
        .unwrap();
    let r = response(&mut second, "GET", "second upgrade").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let plain = exchange(&proxy, &get("/plain"), "GET").await;
    assert_eq!(plain.status, 200, "plain requests are not tunnels");
}

/// `limits.new_connections_per_ip_per_second = 2`: a third connection in a burst gets 503.
pub async fn new_connections_over_the_rate_get_503(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.limits.new_connections_per_ip_per_second = 2
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(exchange(&proxy, &get(&format!("/{i}")), "GET").await.status);
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&503), "{statuses:?}");
}
