//! Tunnels after a `101`. Opaque protocols are relayed byte for byte (half-close passes
//! through, timeouts close TCP); WebSocket tunnels are followed frame by frame, so the
//! proxy can ping quiet peers and end things with a Close code (README, "Timeouts and
//! close codes").

use super::{client, response, start, start_with, RESPONSE_WAIT};
use crate::backend::{
    opaque_switching_protocols, opaque_upgrade_request, switching_protocols, upgrade_request,
    Backend, WsEcho,
};
use crate::http::Conn;
use crate::ws::{self, End};
use crate::{ProxyUnderTest, RunningProxy};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Opens a raw tunnel through `proxy` with `request`, checking the `101`.
async fn raw_tunnel(proxy: &RunningProxy, request: &[u8]) -> Conn {
    let mut c = client(proxy).await;
    c.write(request).await.unwrap();
    let r = response(&mut c, "GET", "upgrade").await;
    assert_eq!(
        r.status, 101,
        "upgrade answered with {:?}",
        r.head.start_line
    );
    c
}

/// A large frame whose header comes first and whose payload follows in pieces, later,
/// is echoed intact, and the frame after it too. (A runtime that passes payloads
/// through a pipe puts the header in the pipe first, expecting the payload; here the
/// payload is not there yet and the header must go out on its own.)
pub async fn websocket_payload_arriving_after_its_header_is_relayed_intact(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &upgrade_request("example.test")).await;
    let payload = crate::http::pattern(40_000, 11);
    let frame = ws::frame(ws::BINARY, &payload, Some([9, 8, 7, 6]));
    let header_len = 2 + 2 + 4; // 16-bit length, mask
    for piece in [
        &frame[..header_len],
        &frame[header_len..1_000],
        &frame[1_000..],
    ] {
        c.write(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.write(&ws::frame(ws::TEXT, b"after", Some([1, 2, 3, 4])))
        .await
        .unwrap();
    for (opcode, expected) in [(ws::BINARY, &payload[..]), (ws::TEXT, b"after")] {
        let echo = tokio::time::timeout(RESPONSE_WAIT, ws::read_frame(&mut c))
            .await
            .expect("the echo in time")
            .expect("read")
            .expect("an echo, not EOF");
        assert_eq!(echo.opcode, opcode);
        assert!(
            echo.payload == expected,
            "echo of {} bytes differs",
            expected.len()
        );
    }
}

/// With `tunnel_idle = 500ms`, a quiet WebSocket is ended by the proxy with
/// `Close 1001 "idle timeout"` to both peers, within ~2 s and not before the deadline.
pub async fn tunnel_idle_timeout_sends_close_1001_both_ways(p: &dyn ProxyUnderTest) {
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
        "closed after {after:?}, before the 500 ms idle deadline"
    );
    assert_eq!(
        end,
        End::Close(Some((1001, "idle timeout".into()))),
        "what the client saw"
    );
    let log = backend
        .wait_for(RESPONSE_WAIT, |l| !l.closes.is_empty())
        .await;
    assert_eq!(
        log.closes,
        [Some((1001, "idle timeout".to_string()))],
        "what the upstream saw"
    );
}

/// An opaque tunnel idle for `tunnel_idle = 500ms` is closed (TCP) within ~2 s.
pub async fn opaque_tunnel_idle_timeout_closes_tcp(p: &dyn ProxyUnderTest) {
    let backend = Backend::upgrade_then_echo(Duration::ZERO, opaque_switching_protocols).await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.tunnel_idle = Duration::from_millis(500)
    })
    .await;
    let mut c = raw_tunnel(&proxy, &opaque_upgrade_request("example.test")).await;
    c.write(b"once").await.unwrap();
    assert_eq!(
        tokio::time::timeout(RESPONSE_WAIT, c.read_exact(4))
            .await
            .expect("echo")
            .unwrap(),
        b"once"
    );
    let quiet_since = Instant::now();
    let rest = c
        .expect_close(Duration::from_secs(2))
        .await
        .expect("idle opaque tunnel closed within 2 s");
    assert!(
        rest.is_empty(),
        "bytes injected into an opaque tunnel: {rest:?}"
    );
    let after = quiet_since.elapsed();
    assert!(
        after >= Duration::from_millis(400),
        "closed after {after:?}, before the 500 ms idle deadline"
    );
    assert!(
        backend.settle(RESPONSE_WAIT).await,
        "upstream side of the tunnel not closed"
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

/// With `websocket.ping_interval = 200ms`, a WebSocket where nobody sends data but both
/// peers answer Pings outlives `tunnel_idle = 600ms`: the client sees Pings, and the
/// tunnel still echoes after 1.5 s of quiet.
pub async fn websocket_pings_keep_quiet_tunnel_alive(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.tunnel_idle = Duration::from_millis(600);
        c.websocket.ping_interval = Some(Duration::from_millis(200));
        c.websocket.pong_timeout = Duration::from_secs(1);
    })
    .await;
    let mut client = ws::connect(proxy.addr).await;
    let mut pings = 0;
    let mut pongs = 0;
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    // tungstenite answers each Ping with a Pong while it is polled
    while let Ok(item) = tokio::time::timeout_at(quiet_until, client.next()).await {
        match item {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Pong(_))) => pongs += 1,
            other => panic!("quiet tunnel ended or got data after {pings} pings: {other:?}"),
        }
    }
    assert!(
        pings >= 2,
        "the proxy sent {pings} pings in 1.5 s with ping_interval 200 ms"
    );
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws::next(&mut client, RESPONSE_WAIT).await,
        Some(Ok(Message::text("still here")))
    );
    assert_eq!(
        pongs, 0,
        "the upstream's Pongs to the proxy's Pings reached the client"
    );
    let log = backend.log();
    assert!(!log.pings.is_empty(), "the quiet upstream was never pinged");
    assert!(
        log.pongs.is_empty(),
        "the client's Pongs to the proxy's Pings reached the upstream: {log:?}"
    );
}

/// A backend that answers a WebSocket upgrade, then never sends anything (nor answers
/// Pings), reading until EOF.
async fn silent_websocket_backend() -> Backend {
    Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&switching_protocols(&req)).await?;
        c.drain_to_eof().await; // never answers anything
        Ok(())
    })
    .await
}

/// The opcodes of the frames a client that never answers gets until its connection
/// ends, which must be within 3 s.
async fn frames_until_dropped(c: &mut Conn) -> Vec<u8> {
    let mut frames = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(Some(f)) = ws::read_frame(c).await {
            frames.push(f.opcode);
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "client connection still open 3 s after pings went unanswered; frames {frames:x?}"
    );
    frames
}

/// A WebSocket client that never answers the proxy's Pings is declared dead: the
/// upstream gets `Close 1001 "client not responding"` and the client's connection ends.
pub async fn websocket_client_not_answering_pings_is_dropped(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.websocket.ping_interval = Some(Duration::from_millis(200));
        c.websocket.pong_timeout = Duration::from_millis(300);
    })
    .await;
    let mut c = raw_tunnel(&proxy, &upgrade_request("example.test")).await;
    let frames = frames_until_dropped(&mut c).await;
    assert_eq!(
        frames.first(),
        Some(&ws::PING),
        "first frame the silent client got: {frames:x?}"
    );
    let log = backend
        .wait_for(RESPONSE_WAIT, |l| !l.closes.is_empty())
        .await;
    assert_eq!(
        log.closes,
        [Some((1001, "client not responding".to_string()))],
        "what the upstream saw"
    );
}

/// Both peers silent: nothing but the proxy's own timers can move the tunnel on. The
/// Pings go out when `ping_interval` fires, the unanswered Pings start the close at
/// `pong_timeout`, and the upstream's unanswered Close ends it at `fin`: each a
/// deadline set by the one before, with no byte in between to wake the proxy's task.
pub async fn websocket_silent_peers_are_dropped_by_the_timers_alone(p: &dyn ProxyUnderTest) {
    let backend = silent_websocket_backend().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.websocket.ping_interval = Some(Duration::from_millis(200));
        c.websocket.pong_timeout = Duration::from_millis(300);
        c.timeouts.fin = Duration::from_millis(300);
    })
    .await;
    let mut c = raw_tunnel(&proxy, &upgrade_request("example.test")).await;
    let frames = frames_until_dropped(&mut c).await;
    // A client that does not answer is dead to the proxy: it gets no Close, only EOF.
    assert_eq!(frames, [ws::PING], "what the client got");
    assert!(
        backend.settle(RESPONSE_WAIT).await,
        "the upstream connection is still open"
    );
}

/// An upstream that never answers the proxy's Pings: the client gets
/// `Close 1011 "upstream not responding"`.
pub async fn websocket_upstream_not_answering_pings_gets_1011(p: &dyn ProxyUnderTest) {
    let backend = silent_websocket_backend().await;
    let proxy = start_with(p, backend.addr, |c| {
        c.websocket.ping_interval = Some(Duration::from_millis(200));
        c.websocket.pong_timeout = Duration::from_millis(300);
    })
    .await;
    let mut client = ws::connect(proxy.addr).await;
    let end = ws::wait_end(&mut client, Duration::from_secs(3))
        .await
        .expect("tunnel ended");
    assert_eq!(
        end,
        End::Close(Some((1011, "upstream not responding".into())))
    );
    let got = backend.received_all();
    let (_, after) = backend.connections()[0].received_before_and_after_first_send();
    assert!(
        !after.is_empty(),
        "the upstream got no Ping at all ({} bytes in total)",
        got.len()
    );
    assert_eq!(
        after[0] & 0x0f,
        ws::PING,
        "first frame to the upstream after the 101: {after:x?}"
    );
    assert!(
        after[1] & 0x80 != 0,
        "frames towards the upstream must be masked: {after:x?}"
    );
}

/// A valid message, then an unmasked frame, which breaks RFC 6455 §5.1: the upstream
/// gets the message and `Close 1001 "client protocol error"`, never the invalid frame.
/// The client gets the echo of its message (as with no proxy in between), then the
/// proxy fails its connection (§7.1.7): `Close 1002` and EOF at once, though the client
/// never answers, since nothing more it sends could be read as frames.
pub async fn websocket_unmasked_client_frame_is_failed_with_1002(p: &dyn ProxyUnderTest) {
    let frame = ws::frame(ws::TEXT, b"unmasked", None);
    client_protocol_error_fails_the_client(p, &frame, 1002).await;
}

/// A client Close with a code no peer may send (1005 only reports a Close without a
/// code, §7.4.1) is a protocol error like a bad frame, and is not forwarded.
pub async fn websocket_client_close_with_reserved_code_is_failed_with_1002(p: &dyn ProxyUnderTest) {
    let frame = ws::frame(ws::CLOSE, &1005u16.to_be_bytes(), Some([1, 2, 3, 4]));
    client_protocol_error_fails_the_client(p, &frame, 1002).await;
}

/// The client sends a message and `bad` in one write; it gets the echo, a Close with
/// `code` and EOF, and the upstream gets the message and `Close 1001 "client protocol
/// error"`.
async fn client_protocol_error_fails_the_client(p: &dyn ProxyUnderTest, bad: &[u8], code: u16) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &upgrade_request("example.test")).await;
    let valid = ws::frame(ws::TEXT, b"before", Some([1, 2, 3, 4]));
    c.write(&[valid, bad.to_vec()].concat()).await.unwrap();
    let sent = Instant::now();
    let echo = tokio::time::timeout(RESPONSE_WAIT, ws::read_frame(&mut c))
        .await
        .expect("the echo")
        .expect("read")
        .expect("the echo, not EOF");
    assert_eq!(
        (echo.opcode, &echo.payload[..]),
        (ws::TEXT, &b"before"[..]),
        "{echo:?}"
    );
    let f = tokio::time::timeout(RESPONSE_WAIT, ws::read_frame(&mut c))
        .await
        .expect("a frame from the proxy")
        .expect("read")
        .expect("a Close frame, not EOF");
    assert_eq!(
        f.close().map(|(code, _)| code),
        Some(code),
        "frame to the client: {f:?}"
    );
    let rest = c.expect_close(RESPONSE_WAIT).await.unwrap();
    assert!(rest.is_empty(), "bytes after the Close: {rest:?}");
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "EOF {waited:?} after the bad frame: the proxy waited for a Close reply"
    );
    let log = backend
        .wait_for(RESPONSE_WAIT, |l| !l.closes.is_empty())
        .await;
    assert_eq!(
        log.closes,
        [Some((1001, "client protocol error".to_string()))],
        "what the upstream saw: {log:?}"
    );
    assert_eq!(log.messages, 1, "the valid message only: {log:?}");
}

/// The upstream drops the TCP connection without a Close: the client gets
/// `Close 1014 "upstream went away"`. (Read with a raw client: tungstenite does not know
/// 1014, registered after RFC 6455, and reports any Close carrying it as 1002.)
pub async fn websocket_upstream_vanishing_gives_client_1014(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&switching_protocols(&req)).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(()) // drops the connection
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &upgrade_request("example.test")).await;
    let f = tokio::time::timeout(RESPONSE_WAIT, ws::read_frame(&mut c))
        .await
        .expect("a frame from the proxy")
        .expect("read")
        .expect("a Close frame, not EOF");
    assert_eq!(
        f.close(),
        Some((1014, "upstream went away".into())),
        "frame to the client: {f:?}"
    );
}

/// The client drops the TCP connection without a Close: the upstream gets
/// `Close 1001 "client went away"`.
pub async fn websocket_client_vanishing_gives_upstream_1001(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    client.send(Message::text("hello")).await.unwrap();
    ws::next(&mut client, RESPONSE_WAIT)
        .await
        .expect("echo")
        .expect("echo ok");
    drop(client);
    let log = backend
        .wait_for(RESPONSE_WAIT, |l| !l.closes.is_empty())
        .await;
    assert_eq!(
        log.closes,
        [Some((1001, "client went away".to_string()))],
        "what the upstream saw"
    );
}

/// The client closes; the upstream answers with its Close but keeps TCP open (it
/// waits for its client to close first). The proxy is the client's server, which
/// closes TCP first (RFC 6455 §7.1.1): the client sees EOF right after the Close reply,
/// not when the upstream or a timeout gets round to it. The client's FIN then reaches
/// the upstream, and nothing after the upstream's Close reaches the client.
pub async fn websocket_close_handshake_closes_the_client_without_waiting_for_the_upstream(
    p: &dyn ProxyUnderTest,
) {
    const HOLD: Duration = Duration::from_secs(10);
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&switching_protocols(&req)).await?;
        let close = ws::read_frame(&mut c.conn).await?;
        if close.as_ref().and_then(ws::Frame::close).is_none() {
            return Err(std::io::Error::other(format!(
                "expected Close, got {close:?}"
            )));
        }
        let mut reply = ws::frame(ws::CLOSE, &1000u16.to_be_bytes(), None);
        // Breaks RFC 6455 §5.5.1: nothing may follow a Close. The proxy drops it.
        reply.extend(ws::frame(ws::TEXT, b"after the Close", None));
        c.write(&reply).await?;
        let _ = tokio::time::timeout(HOLD, c.drain_to_eof()).await;
        Ok(())
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &upgrade_request("example.test")).await;
    let mask = Some([1, 2, 3, 4]);
    c.write(&ws::frame(ws::CLOSE, &1000u16.to_be_bytes(), mask))
        .await
        .unwrap();
    let sent = Instant::now();
    let reply = tokio::time::timeout(RESPONSE_WAIT, ws::read_frame(&mut c))
        .await
        .expect("the Close reply")
        .expect("read")
        .expect("a Close frame, not EOF");
    assert_eq!(reply.close().map(|(code, _)| code), Some(1000), "{reply:?}");
    let rest = c.expect_close(RESPONSE_WAIT).await.unwrap();
    assert!(rest.is_empty(), "bytes after the Close reply: {rest:?}");
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "EOF {waited:?} after the Close, the upstream holding TCP for {HOLD:?}"
    );
    drop(c);
    let deadline = Instant::now() + RESPONSE_WAIT;
    while !backend.connections().first().is_some_and(|l| l.saw_eof()) {
        assert!(
            Instant::now() < deadline,
            "the client's FIN never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opaque tunnel: the backend stops reading for a while as the client sends more than
/// the sockets on the way hold. The proxy's bytes towards it wait (in a pipe, where the
/// runtime splices, which the backend's full socket will not take), the proxy stops
/// taking the client's, and once the backend reads again every byte arrives, once and
/// in order. (Small socket buffers set on connected loopback sockets would stall TCP
/// itself: they are left at the kernel's defaults.)
pub async fn opaque_tunnel_stalled_upstream_resumes_with_every_byte_in_order(
    p: &dyn ProxyUnderTest,
) {
    const SENT: usize = 16 << 20;
    const STALL: Duration = Duration::from_millis(300);
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&opaque_switching_protocols(&req)).await?;
        tokio::time::sleep(STALL).await;
        let got = c.drain_to_eof().await;
        c.write(got.len().to_string().as_bytes()).await?;
        c.conn.shutdown_write().await
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &opaque_upgrade_request("example.test")).await;
    let sent = crate::http::pattern(SENT, 7);
    tokio::time::timeout(Duration::from_secs(5), c.write(&sent))
        .await
        .expect("the client's bytes flow again once the backend reads")
        .unwrap();
    c.shutdown_write().await.unwrap();
    let answer = tokio::time::timeout(RESPONSE_WAIT, c.read_to_end())
        .await
        .expect("the backend's count, then EOF")
        .expect("read");
    assert_eq!(String::from_utf8_lossy(&answer), SENT.to_string());
    assert!(backend.settle(RESPONSE_WAIT).await, "the backend finished");
    let (_, received) = backend.connections()[0].received_before_and_after_first_send();
    assert_eq!(received.len(), SENT);
    assert!(
        received == sent,
        "the bytes arrived changed or out of order"
    );
}

/// Opaque tunnel: the client shuts down its write half; the backend sees the data then
/// EOF, and can still send to the client, which then sees the backend's EOF.
pub async fn tunnel_client_half_close(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&opaque_switching_protocols(&req)).await?;
        let got = c.drain_to_eof().await; // until the client's FIN arrives
        c.write(format!("after-eof:{}", String::from_utf8_lossy(&got)).as_bytes())
            .await?;
        c.conn.shutdown_write().await
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &opaque_upgrade_request("example.test")).await;
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

/// Opaque tunnel: the backend shuts down its write half; the client sees the data then
/// EOF, and can still send to the backend, which sees it and then the client's EOF.
pub async fn tunnel_upstream_half_close(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&opaque_switching_protocols(&req)).await?;
        c.write(b"bye").await?;
        c.conn.shutdown_write().await?;
        c.drain_to_eof().await;
        Ok(())
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = raw_tunnel(&proxy, &opaque_upgrade_request("example.test")).await;
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

/// Opaque tunnel: after the client's FIN, the upstream neither sends nor closes; after
/// `fin = 500ms` the proxy closes both connections.
pub async fn opaque_tunnel_fin_timeout_closes_both(p: &dyn ProxyUnderTest) {
    let backend = Backend::start(|mut c| async move {
        let Some(req) = c.read_request().await? else {
            return Ok(());
        };
        c.write(&opaque_switching_protocols(&req)).await?;
        c.drain_to_eof().await; // the client's FIN
                                // neither send nor close: only the proxy's fin deadline can end this
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    })
    .await;
    let proxy = start_with(p, backend.addr, |c| {
        c.timeouts.fin = Duration::from_millis(500)
    })
    .await;
    let mut c = raw_tunnel(&proxy, &opaque_upgrade_request("example.test")).await;
    c.shutdown_write().await.unwrap();
    let start = Instant::now();
    c.expect_close(Duration::from_secs(2))
        .await
        .expect("client connection closed by the fin timeout");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "closed after {:?}, before fin",
        start.elapsed()
    );
    assert!(
        backend.connections()[0].saw_eof(),
        "the client's FIN was not forwarded"
    );
}

/// Pings and Pongs of the peers themselves pass through: the client's Ping reaches the
/// upstream, whose Pong (same payload) reaches the client; an unsolicited Pong reaches
/// the upstream.
pub async fn websocket_peer_pings_and_pongs_pass_through(p: &dyn ProxyUnderTest) {
    let backend = WsEcho::start().await;
    let proxy = start(p, backend.addr).await;
    let mut client = ws::connect(proxy.addr).await;
    client
        .send(Message::Ping(b"client-ping".to_vec().into()))
        .await
        .unwrap();
    let got = tokio::time::timeout(RESPONSE_WAIT, client.next())
        .await
        .expect("a Pong")
        .expect("open");
    assert_eq!(got.unwrap(), Message::Pong(b"client-ping".to_vec().into()));
    client
        .send(Message::Pong(b"unsolicited".to_vec().into()))
        .await
        .unwrap();
    client.send(Message::text("sync")).await.unwrap();
    assert_eq!(
        ws::next(&mut client, RESPONSE_WAIT).await,
        Some(Ok(Message::text("sync")))
    );
    let log = backend.log();
    assert_eq!(log.pings, [b"client-ping".to_vec()]);
    assert_eq!(log.pongs, [b"unsolicited".to_vec()]);
}
