//! Upgrades (RFC 9110 §7.8, RFC 6455 §4): zero configuration, and no switch the client
//! did not ask for.

mod common;
use common::*;
use proxy_core::upgrade::websocket_accept;
use proxy_core::{Event, Side};

#[test]
fn upgrade_request_forwards_upgrade_verbatim_and_connection_upgrade() {
    let request = format!("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n");
    let sim = connected(request.as_bytes());
    let upstream = sim.upstream_received_str();
    assert!(
        upstream.contains("\r\nUpgrade: WebSocket\r\n"),
        "{upstream}"
    );
    assert!(
        upstream.ends_with("\r\nConnection: Upgrade\r\n\r\n"),
        "{upstream}"
    );
    assert_eq!(upstream.matches("Connection").count(), 1);
}

#[test]
fn ordinary_request_forwards_neither_upgrade_nor_connection() {
    let sim = connected(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\r\n",
    );
    let upstream = sim.upstream_received_str();
    assert!(!upstream.contains("Upgrade"), "{upstream}");
    assert!(!upstream.contains("Connection"), "{upstream}");
}

#[test]
fn upgrade_in_http10_is_ignored() {
    let sim = connected(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert!(!sim.upstream_received_str().contains("Upgrade"));
}

#[test]
fn valid_101_opens_a_tunnel_and_reaches_the_client_byte_exact() {
    let mut sim = connected(&websocket_request());
    let response = websocket_101();
    sim.upstream_sends(&response);
    assert_eq!(sim.client_received(), &response[..]);
    sim.take_client_received();
    sim.client_sends(b"\x81\x85maskhello");
    assert!(sim.upstream_received().ends_with(b"\x81\x85maskhello"));
    sim.upstream_sends(b"\x81\x02hi");
    assert_eq!(sim.client_received(), b"\x81\x02hi");
}

#[test]
fn bytes_after_an_upgrade_request_are_held_until_the_101() {
    let (early, more) = (client_frame(b"EARLY"), client_frame(b"MORE"));
    let mut request = websocket_request();
    request.extend_from_slice(&early);
    let mut sim = connected(&request);
    let head_len = sim.upstream_received().len();
    sim.client_sends(&more);
    assert_eq!(
        sim.upstream_received().len(),
        head_len,
        "nothing forwarded before the 101"
    );
    sim.upstream_sends(&websocket_101());
    let upstream = sim.upstream_received();
    assert_eq!(
        &upstream[head_len..],
        &[early, more].concat()[..],
        "forwarded once, in order"
    );
}

#[test]
fn bytes_after_the_101_in_the_same_read_reach_the_client() {
    let mut sim = connected(&websocket_request());
    let mut response = websocket_101();
    response.extend_from_slice(b"\x81\x05hello");
    sim.upstream_sends(&response);
    assert_eq!(sim.client_received(), &response[..]);
}

#[test]
fn upgrade_split_everywhere_gives_the_same_tunnel() {
    let mut request = websocket_request();
    request.extend_from_slice(&client_frame(b"held"));
    let mut response = websocket_101();
    response.extend_from_slice(&server_frame(b"after"));
    let result = split_everywhere(&request, |pieces| client_pieces_outcome(pieces, &response));
    assert!(result
        .upstream
        .ends_with(&*String::from_utf8_lossy(&client_frame(b"held"))));
    assert!(result.client.ends_with("after"));
    // And the response split anywhere.
    let result = split_everywhere(&response, |pieces| {
        let mut sim = connected(&request);
        for piece in pieces {
            sim.upstream_sends(piece);
        }
        outcome(&sim)
    });
    assert!(result
        .upstream
        .ends_with(&*String::from_utf8_lossy(&client_frame(b"held"))));
}

fn assert_502(request: &[u8], response: &[u8]) {
    let mut request = request.to_vec();
    request.extend_from_slice(b"HELD");
    let mut sim = connected(&request);
    sim.upstream_sends(response);
    let client = sim.client_received_str();
    assert!(client.starts_with("HTTP/1.1 502 "), "{client}");
    assert!(
        !sim.upstream_received_str().contains("HELD"),
        "held bytes never forwarded"
    );
    assert_eq!(sim.releases(), &[false], "upstream dropped");
}

#[test]
fn unsolicited_101_is_502() {
    assert_502(GET, &websocket_101());
}

#[test]
fn switch_to_a_protocol_not_offered_is_502() {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        websocket_accept(WS_KEY)
    );
    assert_502(&websocket_request(), response.as_bytes());
}

#[test]
fn switch_without_connection_upgrade_is_502() {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        websocket_accept(WS_KEY)
    );
    assert_502(&websocket_request(), response.as_bytes());
}

#[test]
fn wrong_sec_websocket_accept_is_502() {
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
    assert_502(&websocket_request(), response);
    let missing =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_502(&websocket_request(), missing);
}

/// A WebSocket upgrade offering `offered` (extra request fields) and a valid `101`
/// that also carries `chosen` (extra response fields).
fn negotiation(offered: &str, chosen: &str) -> (Vec<u8>, Vec<u8>) {
    let request = String::from_utf8(websocket_request()).unwrap();
    let request = request.replacen("\r\n\r\n", &format!("\r\n{offered}\r\n"), 1);
    let response = String::from_utf8(websocket_101()).unwrap();
    let response = response.replacen("\r\n\r\n", &format!("\r\n{chosen}\r\n"), 1);
    (request.into_bytes(), response.into_bytes())
}

#[test]
fn a_subprotocol_or_extension_the_client_did_not_offer_is_502() {
    let refused = [
        // No subprotocol offered, one chosen.
        ("X-Other: 1\r\n", "Sec-WebSocket-Protocol: chat\r\n"),
        // Not one of those offered; not the same case; more than one.
        (
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
            "Sec-WebSocket-Protocol: mqtt\r\n",
        ),
        (
            "Sec-WebSocket-Protocol: chat\r\n",
            "Sec-WebSocket-Protocol: Chat\r\n",
        ),
        (
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
        ),
        (
            "Sec-WebSocket-Protocol: chat\r\n",
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
        ),
        // A field that names no subprotocol.
        ("X-Other: 1\r\n", "Sec-WebSocket-Protocol: \r\n"),
        (
            "Sec-WebSocket-Protocol: chat\r\n",
            "Sec-WebSocket-Protocol: ,\r\n",
        ),
        // An extension with none offered, or another than the one offered.
        (
            "X-Other: 1\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
            "Sec-WebSocket-Extensions: permessage-deflate, x-webkit-deflate-frame\r\n",
        ),
    ];
    for (offered, chosen) in refused {
        let (request, response) = negotiation(offered, chosen);
        assert_502(&request, &response);
    }
}

#[test]
fn a_subprotocol_and_extensions_the_client_offered_switch() {
    let accepted = [
        (
            "Sec-WebSocket-Protocol: chat, superchat\r\n",
            "Sec-WebSocket-Protocol: superchat\r\n",
        ),
        (
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: v2.mqtt\r\n",
            "Sec-WebSocket-Protocol: v2.mqtt\r\n",
        ),
        // Offered but not chosen.
        (
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: x-foo\r\n",
            "X-Other: 1\r\n",
        ),
        // Chosen by name, with other parameters than offered, in any case.
        (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n",
            "Sec-WebSocket-Extensions: Permessage-Deflate ; server_no_context_takeover\r\n",
        ),
    ];
    for (offered, chosen) in accepted {
        let (request, response) = negotiation(offered, chosen);
        let mut sim = connected(&request);
        sim.upstream_sends(&response);
        assert_eq!(sim.client_received(), &response[..], "{chosen}");
        assert!(sim.releases().is_empty(), "{chosen}");
    }
}

#[test]
fn other_protocols_switch_without_a_websocket_check() {
    let mut sim = connected(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo/2, bar\r\nConnection: upgrade\r\n\r\n",
    );
    sim.upstream_sends(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: bar\r\nConnection: upgrade\r\n\r\n",
    );
    assert!(sim.client_received_str().starts_with("HTTP/1.1 101 "));
    sim.client_sends(b"raw");
    assert!(sim.upstream_received_str().ends_with("raw"));
}

/// `request` gets a `400` naming `reason`, and nothing goes upstream.
fn assert_refused_with_400(request: &str, reason: &str) {
    let mut sim = sim();
    sim.client_sends(request.as_bytes());
    let response = sim.client_received_str();
    assert!(
        response.starts_with("HTTP/1.1 400 ") && response.contains(reason),
        "{request:?} got {response:?}"
    );
    assert!(
        !sim.has_pending_connect() && sim.upstream_connections() == 0,
        "{request:?} must not go upstream"
    );
}

#[test]
fn an_upgrade_list_with_something_not_a_protocol_is_400() {
    // A looser reader (split on spaces, or on `;`) would find `h2c` in these, which
    // the proxy would not have dropped: refused, nothing forwarded.
    for upgrade in [
        "\" h2c",
        "; h2c",
        "foo bar",
        "websocket/",
        "/1",
        "web socket",
        "a/b/c",
    ] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\n\r\n"
        );
        assert_refused_with_400(&request, "malformed Upgrade");
    }
    // Protocols with versions, any case, spaced as lists may be, still go through.
    let sim = connected(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: foo/1.0 ,  Bar\r\nConnection: upgrade\r\n\r\n",
    );
    let upstream = sim.upstream_received_str();
    assert!(
        upstream.contains("\r\nUpgrade: foo/1.0 ,  Bar\r\n"),
        "{upstream}"
    );
    // Without `Connection: upgrade` the field is no offer and is dropped, malformed or not.
    let sim = connected(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: \" h2c\r\n\r\n");
    let upstream = sim.upstream_received_str();
    assert!(upstream.starts_with("GET / HTTP/1.1\r\n"), "{upstream}");
    assert!(!upstream.contains("h2c"), "{upstream}");
}

#[test]
fn an_upgrade_attempt_with_a_body_is_400() {
    // RFC 9110 §7.8 switches after the body, llhttp right after the head: a server that
    // declined could read the body (here a whole request) as the next request.
    let smuggled = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
    let bodies = [
        format!("Content-Length: {}\r\n\r\n{smuggled}", smuggled.len()),
        format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        ),
    ];
    for protocol in ["websocket", "foo"] {
        for body in &bodies {
            let request = format!(
                "POST /up HTTP/1.1\r\nHost: a\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{body}"
            );
            assert_refused_with_400(&request, "upgrade request with a body");
        }
    }
    // `Content-Length: 0` is no body; without `Connection: upgrade` it is no attempt.
    let request = format!("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n");
    let sim = connected(request.as_bytes());
    assert!(sim
        .upstream_received_str()
        .contains("\r\nUpgrade: websocket\r\n"));
    let sim = connected(
        b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nok",
    );
    let upstream = sim.upstream_received_str();
    assert!(!upstream.contains("Upgrade"), "{upstream}");
    assert!(upstream.ends_with("\r\n\r\nok"), "{upstream}");
}

#[test]
fn h2c_is_never_offered_upstream() {
    // h2c smuggling: a switch to cleartext HTTP/2 would take the client past routing
    // and every check of the proxy. RFC 9113 §3.1 deprecates the upgrade; the request
    // goes on as HTTP/1.1, as from a server that declines it.
    let h2c = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let mut sim = connected(h2c);
    let upstream = sim.upstream_received_str();
    assert!(!upstream.contains("Upgrade"), "{upstream}");
    assert!(!upstream.contains("HTTP2-Settings"), "{upstream}");
    sim.upstream_sends(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    );
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
    assert_eq!(sim.releases(), &[false]);
    // A plain answer reaches the client as usual.
    let mut sim = connected(h2c);
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 200 OK"));

    // Offered beside another protocol (in any case, with a version), h2c is dropped
    // from the list and the other may still be switched to.
    let mut sim = connected(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: H2C/1, bar\r\nConnection: upgrade\r\n\r\n",
    );
    let upstream = sim.upstream_received_str();
    assert!(upstream.contains("\r\nUpgrade: bar\r\n"), "{upstream}");
    assert_eq!(upstream.matches("Upgrade:").count(), 1, "{upstream}");
    sim.upstream_sends(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    );
    assert!(
        sim.client_received_str().starts_with("HTTP/1.1 502 "),
        "h2c was not offered"
    );
}

#[test]
fn non_101_answer_makes_held_bytes_the_next_request() {
    let mut request = websocket_request();
    request.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut sim = connected(&request);
    sim.upstream_sends(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    assert!(sim.client_received_str().starts_with("HTTP/1.1 403 "));
    sim.expect_connect();
    sim.upstream_connected_pooled();
    let upstream = sim.upstream_received_str();
    assert!(upstream.contains("GET /next HTTP/1.1\r\n"), "{upstream}");
}

#[test]
fn non_101_answer_with_garbage_held_is_400_not_forwarded() {
    let mut request = websocket_request();
    request.extend_from_slice(b"\x81\x85maskhello");
    let mut sim = connected(&request);
    sim.upstream_sends(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    let client = sim.client_received_str();
    assert!(client.starts_with("HTTP/1.1 401 "));
    assert!(client.contains("HTTP/1.1 400 "), "{client}");
    assert!(!sim.upstream_received().ends_with(b"hello"));
}

#[test]
fn the_101_is_logged_with_its_status() {
    let mut sim = connected(&websocket_request());
    sim.upstream_sends(&websocket_101());
    let logged = sim
        .events()
        .iter()
        .any(|e| matches!(e, Event::Request(r) if r.status == 101));
    assert!(logged);
    sim.eof(Side::Client);
    sim.eof(Side::Upstream);
    assert!(sim
        .events()
        .iter()
        .any(|e| matches!(e, Event::Tunnel(t) if t.protocol == "websocket")));
}

#[test]
fn a_versioned_websocket_switch_still_needs_the_right_accept() {
    let request = format!("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket/13\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_502(
        request.as_bytes(),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket/13\r\nConnection: Upgrade\r\n\r\n",
    );
}

/// RFC 6455 §4.1, §11.3.1: one key, the base64 of 16 bytes. Without it no upstream
/// could answer with an accept the client takes: the client is told, with a 400, and
/// nothing goes upstream.
#[test]
fn a_websocket_upgrade_without_exactly_one_valid_key_is_400() {
    let head =
        "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
    let refused = [
        format!("{head}Upgrade: websocket\r\n\r\n"),
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}, {WS_KEY}\r\n\r\n"),
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"),
        // 24 characters, but 17 bytes' worth; and one unpadded.
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=A\r\n\r\n"),
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n\r\n"),
        // A key of 16 bytes that is not base64.
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n\r\n"),
        // WebSocket among other protocols still needs its key.
        format!("{head}Upgrade: foo, WebSocket/13\r\nSec-WebSocket-Key: \r\n\r\n"),
    ];
    for request in refused {
        assert_refused_with_400(&request, "Sec-WebSocket-Key");
    }
    // A valid key passes; another protocol alone needs none.
    for request in [
        format!("{head}Upgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"),
        format!("{head}Upgrade: foo\r\n\r\n"),
    ] {
        let sim = connected(request.as_bytes());
        assert!(
            sim.upstream_received_str().starts_with("GET /chat "),
            "{request:?}"
        );
    }
}

/// RFC 6455 §4.2.2: a WebSocket handshake of a version the server does not speak gets
/// `426` naming the one it does. The proxy follows version 13's framing alone (every
/// browser and library sends 13), so it answers so itself and dials nothing.
#[test]
fn a_websocket_version_other_than_13_is_426_naming_13() {
    let head = format!(
        "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
    );
    for version in [
        "",
        "Sec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 99\r\n",
        "Sec-WebSocket-Version: 13, 8\r\n",
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Version: 013\r\n",
    ] {
        let mut sim = sim();
        sim.client_sends(format!("{head}{version}\r\n").as_bytes());
        let client = sim.client_received_str();
        assert!(
            client.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{version:?}: {client}"
        );
        for field in [
            "\r\nUpgrade: websocket\r\n",
            "\r\nSec-WebSocket-Version: 13\r\n",
            "\r\nConnection: upgrade, close\r\n",
        ] {
            assert!(client.contains(field), "{version:?}: {client}");
        }
        assert!(!sim.has_pending_connect(), "{version:?}: dialled");
        assert_eq!(sim.upstream_connections(), 0);
        assert_eq!(sim.shutdowns(), &[Side::Client]);
    }
    // 13 passes, with whitespace around it as any field value may have.
    let sim = connected(format!("{head}Sec-WebSocket-Version:  13 \r\n\r\n").as_bytes());
    assert!(sim.upstream_received_str().starts_with("GET /chat "));
}
