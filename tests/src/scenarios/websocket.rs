//! WebSockets through the proxy with a real client (tokio-tungstenite) and a real
//! server ([`WsEcho`]).

use super::{start, start_with};
use crate::backend::WsEcho;
use crate::ws::{self, End};
use crate::{Config, ProxyUnderTest};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(3);

/// A text message goes through and its echo comes back unchanged.
pub async fn websocket_text_roundtrip(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    client
        .send(Message::text("hello, switchyard ✓"))
        .await
        .unwrap();
    let got = ws::next(&mut client, WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    assert_eq!(got, Message::text("hello, switchyard ✓"));
}

/// A binary message, every byte value included, goes through unchanged.
pub async fn websocket_binary_roundtrip(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    client.send(Message::binary(payload.clone())).await.unwrap();
    let got = ws::next(&mut client, WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    assert_eq!(got, Message::binary(payload));
}

/// A 1 MiB message crosses the proxy's bounded buffers both ways intact.
pub async fn websocket_one_mebibyte_message(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    let payload = crate::http::pattern(1 << 20, 7);
    client.send(Message::binary(payload.clone())).await.unwrap();
    let got = ws::next(&mut client, Duration::from_secs(5))
        .await
        .expect("echo")
        .expect("echo ok");
    let got = got.into_data();
    assert_eq!(got.len(), payload.len(), "echoed length");
    assert!(got == payload, "1 MiB echo differs from what was sent");
}

/// Large and small messages mixed, several in flight at once, come back intact and in
/// order: the large ones' payload passes the proxy unseen (zero-copy where the runtime
/// can), their headers and the small ones are read, and neither overtakes the other.
pub async fn websocket_large_and_small_messages_mixed_in_flight(p: &dyn ProxyUnderTest) {
    mixed_messages_echo(p, |_| {}).await;
}

/// The same with a `pipe_size` below `buffer_size` and not a multiple of any frame
/// size: passes stop part way through payloads, and reads go on from there.
pub async fn websocket_mixed_messages_with_a_small_odd_pipe(p: &dyn ProxyUnderTest) {
    mixed_messages_echo(p, |c| {
        c.buffer_size = 8192;
        c.pipe_size = 5003;
    })
    .await;
}

/// The same with `pipe_size = 0`: nothing passes unseen, every byte is read and
/// copied, and reads after a large frame are whole.
pub async fn websocket_mixed_messages_with_no_pipe(p: &dyn ProxyUnderTest) {
    mixed_messages_echo(p, |c| c.pipe_size = 0).await;
}

/// Large and small messages, several in flight, echoed through a proxy started with
/// the test configuration changed by `edit`.
async fn mixed_messages_echo(p: &dyn ProxyUnderTest, edit: impl FnOnce(&mut Config)) {
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, edit).await;
    let client = ws::connect(proxy.addr).await;
    let (mut tx, mut rx) = client.split();
    let sizes = [70_000, 5, 16_384, 16_385, 0, 200_000, 1, 65_536, 20_000, 3];
    let messages: Vec<Vec<u8>> = (0..3)
        .flat_map(|round| sizes.iter().map(move |&len| (round, len)))
        .map(|(round, len)| crate::http::pattern(len, round * 100 + len as u64))
        .collect();
    let sent = messages.clone();
    let sender = tokio::spawn(async move {
        for payload in sent {
            tx.feed(Message::binary(payload)).await.unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    for (i, payload) in messages.iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .unwrap_or_else(|_| panic!("message {i} did not come back"))
            .expect("the stream goes on")
            .expect("echo ok")
            .into_data();
        assert_eq!(got.len(), payload.len(), "message {i}'s length");
        assert!(
            got == payload[..],
            "message {i} ({} bytes) differs",
            payload.len()
        );
    }
    drop(sender.await.unwrap());
}

/// With `websocket.max_message_size`, a message at the limit is echoed; one byte over
/// never reaches the backend, which gets Close 1001, and the client gets Close 1009
/// "message too big" once the backend has answered.
pub async fn websocket_message_over_max_message_size_gets_1009(p: &dyn ProxyUnderTest) {
    const LIMIT: usize = 100_000;
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.websocket.max_message_size = LIMIT as u64;
    })
    .await;
    let mut client = ws::connect(proxy.addr).await;
    let at_limit = crate::http::pattern(LIMIT, 1);
    client
        .send(Message::binary(at_limit.clone()))
        .await
        .unwrap();
    let echo = ws::next(&mut client, WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    assert!(
        echo.into_data() == at_limit,
        "the message at the limit is echoed"
    );
    let over = crate::http::pattern(LIMIT + 1, 2);
    client.send(Message::binary(over)).await.unwrap();
    let end = ws::wait_end(&mut client, WAIT).await.unwrap();
    assert_eq!(end, End::Close(Some((1009, "message too big".into()))));
    let log = backend.wait_for(WAIT, |l| !l.closes.is_empty()).await;
    assert_eq!(
        log.closes,
        vec![Some((1001, "client message too big".to_string()))]
    );
    assert_eq!(
        log.messages, 1,
        "only the message at the limit reached the backend"
    );
}

/// With `websocket.allowed_origins`, a page at a listed origin gets its WebSocket and
/// one elsewhere gets `403`, and its handshake never reaches the backend.
pub async fn websocket_from_an_origin_not_allowed_gets_403(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.websocket.allowed_origins = vec!["https://*.example.com".into()];
    })
    .await;
    let mut client = ws::connect_from(proxy.addr, "https://app.example.com")
        .await
        .expect("a listed origin gets its WebSocket");
    client.send(Message::text("hi")).await.unwrap();
    let echo = ws::next(&mut client, WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    assert_eq!(echo, Message::text("hi"));
    let refused = ws::connect_from(proxy.addr, "https://evil.test").await;
    assert_eq!(refused.err(), Some(403));
    let log = backend.wait_for(WAIT, |l| l.messages == 1).await;
    assert_eq!(
        log.handshakes.len(),
        1,
        "the refused handshake never reached it"
    );
}

/// 1,000 small messages sent back to back come back complete and in order.
pub async fn websocket_thousand_messages_in_order(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let client = ws::connect(proxy.addr).await;
    let (mut tx, mut rx) = client.split();
    let sender = tokio::spawn(async move {
        for i in 0..1000u32 {
            tx.feed(Message::text(format!("message {i}")))
                .await
                .unwrap();
        }
        tx.flush().await.unwrap();
        tx
    });
    for i in 0..1000u32 {
        let got = tokio::time::timeout(WAIT, rx.next())
            .await
            .unwrap_or_else(|_| panic!("message {i} did not arrive"))
            .unwrap_or_else(|| panic!("stream ended before message {i}"))
            .unwrap_or_else(|e| panic!("error before message {i}: {e}"));
        assert_eq!(
            got,
            Message::text(format!("message {i}")),
            "message {i} out of order or changed"
        );
    }
    let _sink = sender.await.unwrap();
}

/// The client closes with 4000 "client-bye": the server receives exactly that, and the
/// client receives the echoed Close with the same code and reason.
pub async fn websocket_client_close_code_and_reason_pass_through(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::from(4000),
            reason: "client-bye".into(),
        }))
        .await
        .unwrap();
    let end = ws::wait_end(&mut client, WAIT).await.unwrap();
    assert_eq!(
        end,
        End::Close(Some((4000, "client-bye".into()))),
        "close echoed to the client"
    );
    let log = backend.wait_for(WAIT, |l| !l.closes.is_empty()).await;
    assert_eq!(
        log.closes,
        vec![Some((4000, "client-bye".to_string()))],
        "close seen by the server"
    );
}

/// The server closes with 4001 "server-bye": the client receives exactly that, and
/// the server receives the client's reply.
pub async fn websocket_server_close_code_and_reason_pass_through(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    client
        .send(Message::text("close:4001:server-bye"))
        .await
        .unwrap();
    let end = ws::wait_end(&mut client, WAIT).await.unwrap();
    assert_eq!(
        end,
        End::Close(Some((4001, "server-bye".into()))),
        "server's close seen by the client"
    );
    let log = backend.wait_for(WAIT, |l| !l.closes.is_empty()).await;
    assert_eq!(
        log.closes,
        vec![Some((4001, "server-bye".to_string()))],
        "client's reply seen by the server"
    );
    assert!(
        log.errors.is_empty(),
        "server-side errors: {:?}",
        log.errors
    );
}

/// The upgrade request reaches the backend as a WebSocket upgrade: `Upgrade:
/// websocket`, `Connection: Upgrade` (the exact value the proxy writes), the client's
/// key and version.
pub async fn websocket_upgrade_request_headers_reach_backend(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    client.send(Message::text("x")).await.unwrap();
    let _ = ws::next(&mut client, WAIT).await;
    let log = backend.log();
    assert_eq!(log.handshakes.len(), 1, "one handshake");
    let hs = &log.handshakes[0];
    let get = |name: &str| {
        hs.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        get("upgrade"),
        vec!["websocket"],
        "Upgrade at the backend: {hs:?}"
    );
    assert_eq!(
        get("connection"),
        vec!["Upgrade"],
        "Connection at the backend: {hs:?}"
    );
    assert_eq!(get("sec-websocket-version"), vec!["13"], "{hs:?}");
    assert_eq!(get("sec-websocket-key").len(), 1, "{hs:?}");
    assert_eq!(get("host").len(), 1, "{hs:?}");
}

/// Fifty WebSockets at once, each with its own messages: no cross-talk, all echoed.
pub async fn fifty_concurrent_websockets(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let addr = proxy.addr;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            tokio::spawn(async move {
                let mut client = ws::connect(addr).await;
                for j in 0..10 {
                    let text = format!("client {i} message {j}");
                    client.send(Message::text(text.clone())).await.unwrap();
                    let got = ws::next(&mut client, WAIT).await;
                    assert_eq!(got, Some(Ok(Message::text(text))));
                }
                client.close(None).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a client task failed");
    }
    assert_eq!(backend.log().handshakes.len(), 50);
}
