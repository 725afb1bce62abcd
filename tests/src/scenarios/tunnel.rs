//! Tunnels after a `101`: the idle deadline, and half-close in each direction.

use super::{client, response, start, start_with, RESPONSE_WAIT};
use crate::backend::{switching_protocols, upgrade_request, Backend, WsEcho};
use crate::http::Conn;
use crate::ws;
use crate::ProxyUnderTest;
use futures_util::SinkExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// With `tunnel_idle = 500ms`, a quiet WebSocket is closed by the proxy within ~2 s
/// (and not before the deadline).
pub async fn tunnel_idle_timeout_closes_client(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.tunnel_idle = Duration::from_millis(500)
    })
    .await;
    let mut client = ws::connect(proxy.addr).await;
    client.send(Message::text("once")).await.unwrap();
    ws::next(&mut client, RESPONSE_WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    let quiet_since = Instant::now();
    let end = ws::wait_end(&mut client, Duration::from_secs(2))
        .await
        .expect("idle tunnel closed within 2 s");
    let after = quiet_since.elapsed();
    assert!(
        after >= Duration::from_millis(400),
        "closed after {after:?}, before the 500 ms idle deadline ({end:?})"
    );
}

/// Traffic every 200 ms keeps a tunnel with `tunnel_idle = 600ms` open well past 600 ms.
pub async fn tunnel_activity_keeps_it_open(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.tunnel_idle = Duration::from_millis(600)
    })
    .await;
    let mut client = ws::connect(proxy.addr).await;
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client
            .send(Message::text(format!("tick {i}")))
            .await
            .unwrap_or_else(|e| panic!("tick {i}: {e}"));
        let got = ws::next(&mut client, RESPONSE_WAIT).await;
        assert_eq!(
            got,
            Some(Ok(Message::text(format!("tick {i}")))),
            "tick {i} after {}ms",
            (i + 1) * 200
        );
    }
}

/// Opens a raw tunnel to `backend` through `proxy`: sends the upgrade request and
/// checks the `101`.
async fn raw_tunnel(proxy: &crate::RunningProxy) -> Conn {
    let mut c = client(proxy).await;
    c.write(&upgrade_request("example.test")).await.unwrap();
    let r = response(&mut c, "GET", "upgrade").await;
    assert_eq!(
        r.status, 101,
        "upgrade answered with {:?}",
        r.head.start_line
    );
    c
}

/// The client shuts down its write half: the backend sees the data then EOF, and can
/// still send to the client, which then sees the backend's EOF.
pub async fn tunnel_client_half_close(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&switching_protocols(&req)).await?;
        let got = c.drain_to_eof().await; // until the client's FIN arrives
        c.write(format!("after-eof:{}", String::from_utf8_lossy(&got)).as_bytes())
            .await?;
        c.conn.shutdown_write().await
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy).await;
    c.write(b"ping").await.unwrap();
    c.shutdown_write().await.unwrap();
    let rest = tokio::time::timeout(RESPONSE_WAIT, c.read_to_end())
        .await
        .expect("backend's answer after the client's FIN, then EOF")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&rest), "after-eof:ping");
    backend.settle(Duration::from_secs(1)).await;
    let conns = backend.connections();
    assert!(conns[0].saw_eof(), "the backend saw the client's FIN");
}

/// The backend shuts down its write half: the client sees the data then EOF, and can
/// still send to the backend, which sees it and then the client's EOF.
pub async fn tunnel_upstream_half_close(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&switching_protocols(&req)).await?;
        c.write(b"bye").await?;
        c.conn.shutdown_write().await?;
        c.drain_to_eof().await;
        Ok(())
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy).await;
    let got = tokio::time::timeout(RESPONSE_WAIT, c.read_to_end())
        .await
        .expect("backend's data then its FIN, forwarded")
        .expect("read");
    assert_eq!(got, b"bye");
    c.write(b"reply after your FIN")
        .await
        .expect("the client can still send after the backend's FIN");
    c.shutdown_write().await.unwrap();
    assert!(
        backend.settle(RESPONSE_WAIT).await,
        "backend did not see the client's EOF"
    );
    let conns = backend.connections();
    let (_, after) = conns[0].received_before_and_after_first_send();
    assert_eq!(String::from_utf8_lossy(&after), "reply after your FIN");
    assert!(conns[0].saw_eof());
}
