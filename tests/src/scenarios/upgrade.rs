//! Upgrade negotiation (RFC 9110 §7.8, RFC 6455 §4): a `101` is accepted only if it
//! answers an upgrade the client asked for, names a requested protocol, and (for
//! WebSocket) carries the right `Sec-WebSocket-Accept` and chooses no subprotocol or
//! extension the client did not offer; otherwise the client gets 502.

use super::{client, get, response, start, RESPONSE_WAIT};
use crate::backend::{
    opaque_switching_protocols, opaque_upgrade_request, switching_protocols, upgrade_request,
    Backend, Reply, UPGRADE_ACCEPT,
};
use crate::http::{self, find};
use crate::ws;
use crate::ProxyUnderTest;
use std::time::Duration;

async fn bad_101(p: &dyn ProxyUnderTest, request: &[u8], reply: &'static [u8], what: &str) {
    let backend = Backend::http(move |_| Reply::Bytes(reply.to_vec())).await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(request).await.unwrap();
    let r = response(&mut c, "GET", what).await;
    assert_eq!(
        r.status, 502,
        "{what}: the client must get 502, got {:?}",
        r.head.start_line
    );
    // Nothing may be tunnelled: bytes the client sends now do not reach the backend
    // (the client connection is closed or back to HTTP).
    let _ = c.write(b"TUNNEL-BYTES").await;
    // The upstream connection switched protocols: it cannot carry HTTP again, so the
    // proxy must close it rather than pool it.
    assert!(
        backend.settle(Duration::from_secs(1)).await,
        "{what}: the upstream connection that sent the bad 101 was not closed"
    );
    let got = backend.received_all();
    assert!(
        find(&got, b"TUNNEL-BYTES").is_none(),
        "{what}: bytes were tunnelled to the backend"
    );
}

/// A WebSocket upgrade without exactly one valid `Sec-WebSocket-Key` (RFC 6455 §4.1)
/// is the client's fault: 400, and nothing reaches the backend, even one that would
/// answer it with a `101`.
pub async fn websocket_upgrade_without_one_valid_key_is_400(p: &dyn ProxyUnderTest) {
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let base = "GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n\
                Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    let lax: &'static [u8] = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let backend = Backend::http(move |_| Reply::Bytes(lax.to_vec())).await;
    let proxy = start(p, backend.addr).await;
    for (what, fields) in [
        ("no key", String::new()),
        ("two keys", format!("{key}{key}")),
        ("a key of 3 bytes", "Sec-WebSocket-Key: YWJj\r\n".to_owned()),
    ] {
        let mut c = client(&proxy).await;
        c.write(format!("{base}{fields}\r\n").as_bytes())
            .await
            .unwrap();
        let r = response(&mut c, "GET", what).await;
        assert_eq!(r.status, 400, "{what}: got {:?}", r.head.start_line);
        assert!(
            find(&r.body, b"Sec-WebSocket-Key").is_some(),
            "{what}: the 400 should say why"
        );
    }
    assert!(
        backend.received_all().is_empty() && backend.connections().is_empty(),
        "nothing may reach the backend"
    );
}

/// A `101` to a request that asked for no upgrade → 502.
pub async fn unsolicited_101_is_502(p: &dyn ProxyUnderTest) {
    let reply =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    bad_101(p, &get("/plain"), reply, "unsolicited 101").await;
}

/// A `101` switching to a protocol the client did not ask for → 502.
pub async fn switching_to_unrequested_protocol_is_502(p: &dyn ProxyUnderTest) {
    let reply = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    bad_101(p, &upgrade_request("example.test"), reply, "101 to h2c").await;
}

/// A WebSocket `101` whose `Sec-WebSocket-Accept` does not match the key → 502.
pub async fn wrong_websocket_accept_is_502(p: &dyn ProxyUnderTest) {
    let reply =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    bad_101(
        p,
        &upgrade_request("example.test"),
        reply,
        "101 with a wrong accept",
    )
    .await;
}

/// A WebSocket `101` choosing a subprotocol, or an extension, that the client did not
/// offer → 502 (RFC 6455 §4.1: the client would fail the connection).
pub async fn websocket_101_choosing_what_was_not_offered_is_502(p: &dyn ProxyUnderTest) {
    const SUBPROTOCOL: &str = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\r\n";
    const EXTENSION: &str = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    assert!(SUBPROTOCOL.contains(UPGRADE_ACCEPT) && EXTENSION.contains(UPGRADE_ACCEPT));
    let request = upgrade_request("example.test");
    let what = "101 with a subprotocol not offered";
    bad_101(p, &request, SUBPROTOCOL.as_bytes(), what).await;
    let what = "101 with an extension not offered";
    bad_101(p, &request, EXTENSION.as_bytes(), what).await;
}

/// Bytes the client sends right behind its upgrade request, in the same write (here a
/// WebSocket frame), are held until the backend's `101` and then forwarded exactly once:
/// the backend, which waits before answering, records nothing but the request head
/// before its `101`, and the frame, byte-exact, after it.
pub async fn bytes_after_upgrade_request_held_until_101(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        // Anything that arrives now arrived before the 101: it is recorded as such.
        let early = c.read_for(Duration::from_millis(200)).await;
        c.conn.unread(&early);
        c.write(&switching_protocols(&req)).await?;
        let frame = ws::read_frame(&mut c.conn).await?.expect("a frame");
        let reply = format!("got:{}", String::from_utf8_lossy(&frame.payload));
        c.write(&ws::frame(ws::TEXT, reply.as_bytes(), None))
            .await?;
        c.drain_to_eof().await;
        Ok(())
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let early_frame = ws::frame(ws::TEXT, b"early", Some([1, 2, 3, 4]));
    let mut first_write = upgrade_request("example.test");
    first_write.extend_from_slice(&early_frame);
    c.write(&first_write).await.unwrap();
    let r = response(&mut c, "GET", "upgrade").await;
    assert_eq!(
        r.status, 101,
        "upgrade answered with {:?}",
        r.head.start_line
    );
    assert_eq!(r.header("sec-websocket-accept"), Some(UPGRADE_ACCEPT));
    let reply = tokio::time::timeout(RESPONSE_WAIT, ws::read_frame(&mut c))
        .await
        .expect("reply frame")
        .unwrap();
    assert_eq!(reply.map(|f| f.payload), Some(b"got:early".to_vec()));

    let conns = backend.connections();
    assert_eq!(conns.len(), 1);
    let (before, after) = conns[0].received_before_and_after_first_send();
    let (head, used) = http::parse_head(&before)
        .unwrap()
        .expect("a request head before the 101");
    assert_eq!(
        used,
        before.len(),
        "bytes forwarded before the 101: {:?}",
        String::from_utf8_lossy(&before[used..])
    );
    assert!(
        head.start_line.starts_with("GET /ws "),
        "{}",
        head.start_line
    );
    assert_eq!(
        after, early_frame,
        "tunnel bytes at the backend after its 101"
    );
}

/// The same for an opaque protocol: raw bytes after the upgrade request are held, then
/// forwarded once, after the `101`.
pub async fn opaque_bytes_after_upgrade_request_held_until_101(p: &dyn ProxyUnderTest) {
    let backend =
        Backend::upgrade_then_echo(Duration::from_millis(200), opaque_switching_protocols).await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    let mut first_write = opaque_upgrade_request("example.test");
    first_write.extend_from_slice(b"EARLY-BYTES");
    c.write(&first_write).await.unwrap();
    let r = response(&mut c, "GET", "upgrade").await;
    assert_eq!(
        r.status, 101,
        "upgrade answered with {:?}",
        r.head.start_line
    );
    let echoed = tokio::time::timeout(RESPONSE_WAIT, c.read_exact(11))
        .await
        .expect("echo")
        .unwrap();
    assert_eq!(echoed, b"EARLY-BYTES");
    c.write(b"later").await.unwrap();
    let echoed = tokio::time::timeout(RESPONSE_WAIT, c.read_exact(5))
        .await
        .expect("echo")
        .unwrap();
    assert_eq!(echoed, b"later");
    let conns = backend.connections();
    let (before, after) = conns[0].received_before_and_after_first_send();
    let (_, used) = http::parse_head(&before)
        .unwrap()
        .expect("a request head before the 101");
    assert_eq!(
        used,
        before.len(),
        "bytes forwarded before the 101: {:?}",
        String::from_utf8_lossy(&before[used..])
    );
    assert_eq!(
        after, b"EARLY-BYTESlater",
        "tunnel bytes at the backend after its 101"
    );
}

/// A non-`101` answer to an upgrade request is an ordinary response: the client gets
/// it, and the connection either says it closes or carries the next request.
pub async fn non_101_answer_to_upgrade_is_normal_response(p: &dyn ProxyUnderTest) {
    let backend = Backend::http(|r| {
        if r.head.has("upgrade") {
            Reply::Bytes(http::response(
                200,
                "OK",
                &[("X-Declined", "yes")],
                b"no upgrade here",
            ))
        } else {
            Reply::Bytes(http::ok(format!("plain {}", r.target).as_bytes()))
        }
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    // the next request rides in the same write: held bytes, then parsed as a request
    let mut both = upgrade_request("example.test");
    both.extend_from_slice(&get("/next"));
    c.write(&both).await.unwrap();
    let r = response(&mut c, "GET", "declined upgrade").await;
    assert_eq!((r.status, r.text().as_str()), (200, "no upgrade here"));
    assert_eq!(r.header("x-declined"), Some("yes"));
    if r.closes() {
        c.expect_close(RESPONSE_WAIT)
            .await
            .expect("the response said close");
    } else {
        let r = response(&mut c, "GET", "request held behind the declined upgrade").await;
        assert_eq!((r.status, r.text().as_str()), (200, "plain /next"));
    }
}
