//! Reload: new connections get the new configuration, a tunnel keeps the old one
//! until the old configuration's drain deadline (Close 1001), an invalid one is
//! refused and the running one stays.

use super::routing::labelled;
use super::tls::setup_with;
use super::{client, exchange, get, response};
use crate::backend::Backend;
use crate::ws;
use crate::{test_config, ListenMode, ProxyUnderTest, Setup};
use futures_util::SinkExt;
use proxy_core::Route;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Upstream A, then a reload to upstream B (`timeouts.shutdown` 1 s): new requests
/// go to B; an idle kept-alive connection of the old configuration is closed at once;
/// an open WebSocket keeps echoing through A, then gets `Close 1001 "going away"`
/// about a second after the reload.
pub async fn reload_new_connections_get_it_and_tunnels_keep_the_old_until_the_deadline(
    p: &dyn ProxyUnderTest,
) {
    let a = Backend::http_and_websocket().await;
    let b = labelled("b").await;
    let mut old = test_config(a.addr);
    old.timeouts.shutdown = Duration::from_secs(1);
    let Some(proxy) = p.start_setup(setup_with(old, ListenMode::Http, None)).await else {
        return;
    };
    let mut tunnel = ws::connect(proxy.listen[0]).await;
    let mut idle = client(&proxy.proxy).await;
    idle.write(&get("/before")).await.unwrap();
    assert_eq!(
        response(&mut idle, "GET", "before").await.text(),
        "GET /before"
    );

    let reloaded_at = Instant::now();
    let new = setup_with(test_config(b.addr), ListenMode::Http, None);
    proxy.reload(new).expect("a valid configuration is taken");
    let r = exchange(&proxy.proxy, &get("/after"), "GET").await;
    assert_eq!(
        r.text(),
        "b GET /after",
        "new connections use the new configuration"
    );
    idle.expect_close(Duration::from_secs(1))
        .await
        .expect("an idle connection of the old configuration is closed");

    tunnel.send(Message::text("still A")).await.unwrap();
    assert_eq!(
        ws::next(&mut tunnel, Duration::from_secs(1)).await,
        Some(Ok(Message::text("still A"))),
        "the open tunnel keeps running on the old configuration"
    );
    let end = ws::wait_end(&mut tunnel, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(end, ws::End::Close(Some((1001, "going away".into()))));
    let took = reloaded_at.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed {took:?} after the reload"
    );
}

/// A configuration that fails validation, or listens elsewhere, is refused with a
/// message naming the key; the running one stays.
pub async fn reload_with_an_invalid_config_is_refused_and_the_old_stays(p: &dyn ProxyUnderTest) {
    let a = labelled("a").await;
    let Some(proxy) = p
        .start_setup(setup_with(test_config(a.addr), ListenMode::Http, None))
        .await
    else {
        return;
    };
    let mut bad = test_config(a.addr);
    bad.routes = vec![Route {
        upstream: "nowhere".into(),
        ..Route::default()
    }];
    let error = proxy
        .reload(setup_with(bad, ListenMode::Http, None))
        .expect_err("a route to a missing group is refused");
    assert!(error.contains("routes[0].upstream"), "{error}");
    let two_listeners = Setup {
        listeners: vec![
            setup_with(test_config(a.addr), ListenMode::Http, None).listeners[0].clone(),
            crate::ListenerSetup {
                address: "127.0.0.1:1".parse().unwrap(),
                mode: ListenMode::Http,
                tls: None,
                proxy_protocol: false,
            },
        ],
        ..setup_with(test_config(a.addr), ListenMode::Http, None)
    };
    let error = proxy
        .reload(two_listeners)
        .expect_err("new listen addresses need a restart");
    assert!(error.contains("restart"), "{error}");
    let r = exchange(&proxy.proxy, &get("/still"), "GET").await;
    assert_eq!(r.text(), "a GET /still");
}
