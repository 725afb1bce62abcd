//! What goes upstream and back: hop-by-hop fields (RFC 9110 §7.6.1), byte-exact
//! end-to-end fields, request-target forms (RFC 9112 §3.2), X-Forwarded-*, and
//! malformed upstream responses (502).

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::{ClientInfo, Config, Side};

#[test]
fn hop_by_hop_fields_are_not_forwarded_and_the_rest_is_byte_exact_in_order() {
    let sim = connected(
        b"GET /p HTTP/1.1\r\nHost: Example.COM\r\nX-First: 1\r\nConnection: keep-alive, X-Secret\r\n\
          Keep-Alive: timeout=5\r\nX-Secret: s\r\nproxy-connection: keep-alive\r\nTE: trailers\r\n\
          Trailer: X-T\r\nx-MiXeD-CaSe:  spaced  value\r\nX-Last: \"q\"\r\n\r\n",
    );
    assert_eq!(
        sim.upstream_received_str(),
        "GET /p HTTP/1.1\r\nHost: Example.COM\r\nX-First: 1\r\nx-MiXeD-CaSe: spaced  value\r\nX-Last: \"q\"\r\n\
         X-Forwarded-For: 192.0.2.1\r\nVia: 1.1 switchyard\r\nX-Forwarded-Proto: http\r\n\r\n"
    );
}

#[test]
fn response_hop_by_hop_fields_are_not_forwarded() {
    let mut sim = connected(GET);
    sim.upstream_sends(
        b"HTTP/1.1 200 Fine Thanks\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=9\r\n\
          Set-Cookie: a=b\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 200 Fine Thanks\r\nSet-Cookie: a=b\r\nContent-Length: 2\r\n\r\nok"
    );
}

#[test]
fn absolute_form_is_forwarded_in_origin_form_with_host_from_the_authority() {
    let sim = connected(
        b"GET http://Origin.example:8080/a/b?c HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
    );
    let upstream = sim.upstream_received_str();
    assert!(
        upstream.starts_with("GET /a/b?c HTTP/1.1\r\nHost: Origin.example:8080\r\n"),
        "{upstream}"
    );
    assert!(!upstream.contains("ignored"));
}

#[test]
fn absolute_form_without_a_path_gets_a_slash() {
    let sim = connected(b"GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .starts_with("GET /?x=1 HTTP/1.1\r\n"));
}

#[test]
fn absolute_form_with_userinfo_is_400() {
    let mut sim = sim();
    sim.client_sends(b"GET http://user@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert!(sim.client_received_str().starts_with("HTTP/1.1 400 "));
}

#[test]
fn asterisk_form_is_only_for_options() {
    let sim = connected(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .starts_with("OPTIONS * HTTP/1.1\r\n"));
    let mut sim = self::sim();
    sim.client_sends(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(sim.client_received_str().starts_with("HTTP/1.1 400 "));
}

#[test]
fn x_forwarded_for_is_appended_in_one_field() {
    let sim = connected(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n");
    let upstream = sim.upstream_received_str();
    assert!(
        upstream.contains("\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.1\r\n"),
        "{upstream}"
    );
    assert_eq!(upstream.matches("X-Forwarded-For").count(), 1);
}

#[test]
fn x_forwarded_proto_is_set_by_the_proxy_not_the_client() {
    let mut sim = Sim::with_client(
        Config::default(),
        ClientInfo {
            addr: None,
            tls: true,
            redirect_to_https: None,
        },
    );
    sim.client_sends(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    let upstream = sim.upstream_received_str();
    assert!(
        upstream.contains("\r\nX-Forwarded-Proto: https\r\n"),
        "{upstream}"
    );
    assert_eq!(upstream.matches("X-Forwarded-Proto").count(), 1);
    assert!(
        !upstream.contains("X-Forwarded-For"),
        "no client address known"
    );
}

#[test]
fn x_forwarded_fields_can_be_turned_off() {
    let mut config = Config::default();
    config.forwarded.x_forwarded_for = false;
    config.forwarded.x_forwarded_proto = false;
    config.forwarded.via = false;
    let mut sim = Sim::new(config);
    sim.client_sends(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    assert_eq!(
        sim.upstream_received_str(),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    );
}

fn assert_upstream_response_is_502(response: &[u8]) {
    let mut sim = connected(GET);
    sim.upstream_sends(response);
    let client = sim.client_received_str();
    assert!(
        client.starts_with("HTTP/1.1 502 "),
        "{:?} gave {client:?}",
        String::from_utf8_lossy(response)
    );
    assert_eq!(sim.releases(), &[false]);
}

#[test]
fn malformed_upstream_responses_are_502() {
    assert_upstream_response_is_502(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    assert_upstream_response_is_502(b"HTTP/2.0 200 OK\r\n\r\n");
    assert_upstream_response_is_502(b"HTTP/1.1 2000 OK\r\n\r\n");
    assert_upstream_response_is_502(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n");
    assert_upstream_response_is_502(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n");
    assert_upstream_response_is_502(b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n");
}

#[test]
fn contradictory_upstream_framing_is_502() {
    assert_upstream_response_is_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_upstream_response_is_502(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
    assert_upstream_response_is_502(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_upstream_response_is_502(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n",
    );
    // RFC 9112 §6.1: HTTP/1.0 has no transfer codings, so the framing is faulty.
    assert_upstream_response_is_502(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_upstream_response_is_502(
        b"HTTP/1.0 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
}

#[test]
fn upstream_closing_before_a_response_is_502() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 O");
    sim.eof(Side::Upstream);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
}

#[test]
fn oversized_upstream_head_is_502() {
    let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
    while response.len() < 17 * 1024 {
        response.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    let mut sim = connected(GET);
    sim.upstream_sends(&response);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
}

#[test]
fn invalid_chunked_response_body_closes_the_client() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    sim.upstream_sends(b"cdeXX");
    assert!(sim.is_closed());
    assert!(
        !sim.client_received_str().contains("502"),
        "the head was already sent"
    );
}

#[test]
fn truncated_response_body_closes_the_client() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    sim.eof(Side::Upstream);
    assert!(sim.is_closed());
}

#[test]
fn stale_pooled_connection_is_retried_once_on_a_fresh_one() {
    let mut sim = sim();
    sim.client_sends(GET);
    assert!(sim.expect_connect().allow_pooled);
    sim.upstream_connected_pooled();
    sim.eof(Side::Upstream);
    assert_eq!(sim.releases(), &[false]);
    let retry = sim.expect_connect();
    assert!(!retry.allow_pooled, "the retry must dial afresh");
    sim.upstream_connected();
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().ends_with("hello"));
    assert_eq!(
        sim.upstream_received_str()
            .matches("GET /index.html")
            .count(),
        2
    );
}

#[test]
fn fresh_connection_closing_early_is_not_retried() {
    let mut sim = connected(GET);
    sim.eof(Side::Upstream);
    assert!(!sim.has_pending_connect());
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
}

#[test]
fn request_with_a_body_is_not_retried() {
    let mut sim = sim();
    sim.client_sends(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    sim.expect_connect();
    sim.upstream_connected_pooled();
    sim.reset(Side::Upstream);
    assert!(!sim.has_pending_connect());
    assert!(sim.client_received_str().starts_with("HTTP/1.1 502 "));
}

#[test]
fn error_responses_echo_nothing_the_peer_sent() {
    let mut sim = sim();
    sim.client_sends(b"GET /<script>alert(1)</script> HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    let client = sim.client_received_str();
    assert!(client.starts_with("HTTP/1.1 400 "));
    assert!(!client.contains("script"));
}

#[test]
fn error_response_to_head_has_no_body() {
    let mut sim = connected(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
    let client = sim.client_received_str();
    assert!(client.starts_with("HTTP/1.1 502 "));
    assert!(client.ends_with("\r\n\r\n"), "{client:?}");
}

#[test]
fn empty_lines_before_a_status_line_do_not_garble_it() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert!(
        sim.client_received_str().starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        sim.client_received_str()
    );
}

#[test]
fn contradictory_framing_is_502_even_on_bodiless_responses() {
    for status in ["204 No Content", "304 Not Modified"] {
        assert_upstream_response_is_502(
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        );
    }
}

#[test]
fn via_names_the_proxy_hop_after_earlier_ones() {
    let sim = connected(b"GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 cdn-edge\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .contains("\r\nVia: 1.1 cdn-edge, 1.1 switchyard\r\n"));
    let sim = connected(b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        sim.upstream_received_str()
            .contains("\r\nVia: 1.0 switchyard\r\n"),
        "the protocol received"
    );
}

#[test]
fn a_content_length_list_reaches_the_client_as_one_value() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nX-A: b\r\n\r\nok");
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok"
    );
}

#[test]
fn a_status_line_without_a_reason_keeps_its_space() {
    // RFC 9112 §4: `status-line = HTTP-version SP status-code SP [ reason-phrase ]`.
    for (sent, forwarded) in [
        ("HTTP/1.1 200\r\n", "HTTP/1.1 200 \r\n"),
        ("HTTP/1.1 200 \r\n", "HTTP/1.1 200 \r\n"),
        ("HTTP/1.1 404 Not Here\r\n", "HTTP/1.1 404 Not Here\r\n"),
    ] {
        let mut sim = connected(GET);
        sim.upstream_sends(format!("{sent}Content-Length: 2\r\n\r\nok").as_bytes());
        let client = sim.client_received_str();
        assert!(client.starts_with(forwarded), "{sent:?}: {client:?}");
        assert!(client.ends_with("\r\n\r\nok"), "{sent:?}: {client:?}");
    }
}

#[test]
fn no_content_length_reaches_the_client_in_a_1xx_or_204() {
    // RFC 9110 §8.6: a server must not send one there; a 304 keeps it (the length
    // the full response would have).
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: b\r\n\r\n");
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"
    );
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
    );
}

#[test]
fn max_forwards_of_options_and_trace_is_counted_down() {
    for method in ["OPTIONS", "TRACE"] {
        let head =
            format!("{method} /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 5\r\nX-After: 1\r\n\r\n");
        let sim = connected(head.as_bytes());
        let upstream = sim.upstream_received_str();
        assert!(
            upstream.contains("\r\nMax-Forwards: 4\r\nX-After: 1\r\n"),
            "{upstream}"
        );
        assert_eq!(upstream.matches("Max-Forwards").count(), 1);
    }
}

#[test]
fn max_forwards_of_other_methods_passes_untouched() {
    let sim = connected(b"GET / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .contains("\r\nMax-Forwards: 0\r\n"));
    // Even a value the proxy could not count down: it is not the proxy's to read.
    let sim =
        connected(b"POST / HTTP/1.1\r\nHost: a\r\nMax-Forwards: x\r\nContent-Length: 0\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .contains("\r\nMax-Forwards: x\r\n"));
}

#[test]
fn options_with_max_forwards_zero_is_answered_by_the_proxy() {
    let mut sim = sim();
    sim.client_sends(b"OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
    assert!(!sim.has_pending_connect(), "nothing goes upstream");
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(sim.shutdowns(), [Side::Client]);
}

#[test]
fn trace_with_max_forwards_zero_reflects_the_request_without_credentials() {
    let mut sim = sim();
    sim.client_sends(
        b"TRACE /t?q=1 HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nCookie: c=1\r\n\
          Authorization: Basic eA==\r\nproxy-authorization: x\r\nX-Kept:  v \r\n\r\n",
    );
    assert!(!sim.has_pending_connect());
    let message = "TRACE /t?q=1 HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nX-Kept: v\r\n\r\n";
    assert_eq!(
        sim.client_received_str(),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{message}",
            message.len()
        )
    );
}

#[test]
fn an_unreadable_max_forwards_on_options_or_trace_is_400() {
    for value in ["", "-1", "1, 2", "0x1", "1 1"] {
        let mut sim = sim();
        let head = format!("OPTIONS / HTTP/1.1\r\nHost: a\r\nMax-Forwards: {value}\r\n\r\n");
        sim.client_sends(head.as_bytes());
        assert!(!sim.has_pending_connect(), "{value:?}");
        assert!(
            sim.client_received_str().starts_with("HTTP/1.1 400 "),
            "{value:?}: {}",
            sim.client_received_str()
        );
    }
    let mut sim = sim();
    sim.client_sends(b"TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 1\r\nMax-Forwards: 1\r\n\r\n");
    assert!(sim.client_received_str().starts_with("HTTP/1.1 400 "));
}

#[test]
fn a_huge_max_forwards_is_capped_not_refused() {
    let sim =
        connected(b"OPTIONS / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 99999999999999999999\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .contains(&format!("\r\nMax-Forwards: {}\r\n", u32::MAX - 1)));
}

/// A session of a proxy whose wall clock reads RFC 9110's example date.
fn dated() -> Sim {
    let proxy = proxy_core::Proxy::new(std::sync::Arc::new(Config::default()));
    proxy.wall_clock().set(784_111_777);
    Sim::with_proxy(&proxy)
}

const DATE: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

#[test]
fn a_response_without_date_gets_one_from_the_wall_clock() {
    let mut sim = dated();
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    sim.upstream_sends(OK);
    assert_eq!(
        sim.client_received_str(),
        format!("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n{DATE}\r\nhello"),
        "the interim response gets none"
    );
}

#[test]
fn a_response_with_a_date_keeps_its_own() {
    let mut sim = dated();
    sim.client_sends(GET);
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(
        b"HTTP/1.1 200 OK\r\ndate: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 200 OK\r\ndate: Mon, 07 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn without_a_wall_clock_no_date_is_added() {
    let mut sim = connected(GET);
    sim.upstream_sends(OK);
    assert_eq!(sim.client_received_str(), std::str::from_utf8(OK).unwrap());
}

#[test]
fn the_proxys_own_responses_are_dated() {
    let mut sim = dated();
    sim.client_sends(b"GET / HTTP/1.1\r\n\r\n"); // no Host: 400
    let received = sim.client_received_str();
    assert!(received.starts_with("HTTP/1.1 400 "), "{received}");
    assert_eq!(received.matches(DATE).count(), 1, "{received}");
    let mut sim = dated();
    sim.client_sends(b"OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
    assert_eq!(
        sim.client_received_str(),
        format!("HTTP/1.1 200 OK\r\n{DATE}Content-Length: 0\r\nConnection: close\r\n\r\n")
    );
}
