//! RFC 9112 §6: message framing, one test per rule.

mod common;
use common::*;
use proxy_core::{Config, Side};

#[test]
fn request_head_is_parsed_over_any_split() {
    let request = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Custom: v\r\n\r\n";
    let result = split_everywhere(request, |pieces| client_pieces_outcome(pieces, OK));
    assert!(result
        .upstream
        .starts_with("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Custom: v\r\n"));
    assert!(result.client.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(result.client.ends_with("hello"));
}

#[test]
fn head_larger_than_limit_is_431() {
    let mut sim = sim();
    let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while request.len() <= 16 * 1024 {
        request.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    sim.client_sends(&request);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 431 "));
    assert!(!sim.has_pending_connect());
    assert!(sim.upstream_received().is_empty());
}

#[test]
fn head_limit_is_configurable() {
    let mut config = Config::default();
    config.limits.max_head_size = 64;
    let mut sim = proxy_core::sim::Sim::new(config);
    sim.client_sends(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
    );
    assert!(sim.client_received_str().starts_with("HTTP/1.1 431 "));
}

#[test]
fn more_than_100_fields_is_431() {
    let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100 {
        request.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let mut sim = sim();
    sim.client_sends(&request);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 431 "));
    assert!(!sim.has_pending_connect());
}

#[test]
fn exactly_100_fields_is_accepted() {
    let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..99 {
        request.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let mut sim = sim();
    sim.client_sends(&request);
    assert!(sim.has_pending_connect());
}

#[test]
fn target_longer_than_8k_is_414() {
    let target = "/".to_string() + &"a".repeat(8 * 1024);
    let mut sim = sim();
    sim.client_sends(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    assert!(sim.client_received_str().starts_with("HTTP/1.1 414 "));
}

#[test]
fn target_longer_than_the_head_limit_is_414_before_the_line_ends() {
    let mut sim = sim();
    sim.client_sends(b"GET /");
    sim.client_sends(&vec![b'a'; 17 * 1024]);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 414 "));
}

#[test]
fn a_method_past_the_head_limit_is_501_and_a_long_head_431() {
    // No SP within the limit: the method itself is too long (RFC 9112 §3).
    let mut s = sim();
    s.client_sends(&vec![b'G'; 17 * 1024]);
    assert!(s.client_received_str().starts_with("HTTP/1.1 501 "));
    assert!(!s.has_pending_connect());
    // Split anywhere, the verdict is the same.
    let mut s = sim();
    for _ in 0..17 {
        s.client_sends(&[b'G'; 1024]);
    }
    assert!(s.client_received_str().starts_with("HTTP/1.1 501 "));
    // A method that ends leaves a long target: 414; a long field section: 431.
    let mut s = sim();
    s.client_sends(&[b"GET ".as_slice(), &[b'a'; 17 * 1024]].concat());
    assert!(s.client_received_str().starts_with("HTTP/1.1 414 "));
    let mut s = sim();
    let long_field = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(17 * 1024));
    s.client_sends(long_field.as_bytes());
    assert!(s.client_received_str().starts_with("HTTP/1.1 431 "));
}

#[test]
fn content_length_body_is_forwarded_exactly_and_in_pieces() {
    let mut sim = streaming(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123");
    assert!(sim.upstream_received_str().ends_with("\r\n\r\n0123"));
    sim.client_sends(b"456789GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let upstream = sim.upstream_received_str();
    assert!(upstream.ends_with("\r\n\r\n0123456789"), "{upstream}");
    assert!(
        !upstream.contains("/next"),
        "the pipelined request waits for the response"
    );
}

#[test]
fn chunked_body_is_reencoded_without_extensions_or_trailers() {
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value\r\nhello\r\n0006\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let result = split_everywhere(request, |pieces| client_pieces_outcome(pieces, OK));
    assert!(
        result.upstream.ends_with("Transfer-Encoding: chunked\r\nX-Forwarded-For: 192.0.2.1\r\nVia: 1.1 switchyard\r\nX-Forwarded-Proto: http\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        "{}",
        result.upstream
    );
    assert!(result.client.starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn request_without_body_is_complete_at_its_head() {
    let mut sim = connected(GET);
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().ends_with("hello"));
    assert_eq!(sim.releases(), &[true], "upstream goes back to the pool");
    assert!(!sim.is_closed());
}

#[test]
fn http11_keeps_alive_by_default() {
    let mut sim = connected(GET);
    sim.upstream_sends(OK);
    sim.client_sends(GET);
    assert!(
        sim.has_pending_connect(),
        "second request accepted on the same connection"
    );
}

#[test]
fn http11_connection_close_closes_after_the_response() {
    let mut sim = connected(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    sim.upstream_sends(OK);
    let client = sim.client_received_str();
    assert!(client.contains("\r\nConnection: close\r\n"), "{client}");
    assert_eq!(sim.shutdowns(), &[Side::Client]);
}

#[test]
fn http10_closes_by_default() {
    let mut sim = connected(b"GET / HTTP/1.0\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .starts_with("GET / HTTP/1.1\r\n"));
    assert!(
        sim.upstream_received_str()
            .contains("\r\nHost: 127.0.0.1:9000\r\n"),
        "Host added for HTTP/1.0"
    );
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().contains("Connection: close"));
    assert_eq!(sim.shutdowns(), &[Side::Client]);
}

#[test]
fn http10_keep_alive_is_honoured() {
    let mut sim = connected(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    sim.upstream_sends(OK);
    assert!(sim
        .client_received_str()
        .contains("\r\nConnection: keep-alive\r\n"));
    assert!(sim.shutdowns().is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut sim = sim();
    sim.client_sends(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    sim.expect_connect();
    sim.upstream_connected();
    assert!(sim.upstream_received_str().starts_with("GET /1 "));
    assert!(!sim.upstream_received_str().contains("GET /2"));
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
    sim.expect_connect();
    sim.upstream_connected_pooled();
    assert!(sim.upstream_received_str().contains("GET /2 "));
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo");
    let client = sim.client_received_str();
    let one = client.find("one").unwrap();
    let two = client.find("two").unwrap();
    assert!(one < two);
}

#[test]
fn response_to_head_has_no_body() {
    let mut sim = connected(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    assert!(sim.client_received_str().contains("Content-Length: 1000"));
    assert_eq!(sim.releases(), &[true], "the exchange ended at the head");
}

#[test]
fn responses_204_and_304_have_no_body() {
    for status in ["204 No Content", "304 Not Modified"] {
        let mut sim = connected(GET);
        sim.upstream_sends(format!("HTTP/1.1 {status}\r\nETag: x\r\n\r\n").as_bytes());
        assert_eq!(sim.releases(), &[true], "{status}");
        sim.client_sends(GET);
        assert!(sim.has_pending_connect());
    }
}

#[test]
fn response_without_length_is_read_until_close_then_the_client_closes() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\n\r\npart one ");
    sim.upstream_sends(b"part two");
    sim.eof(Side::Upstream);
    let client = sim.client_received_str();
    assert!(client.contains("Connection: close"));
    assert!(client.ends_with("part one part two"));
    assert_eq!(sim.releases(), &[false]);
    assert_eq!(sim.shutdowns(), &[Side::Client]);
}

#[test]
fn chunked_response_is_reencoded_for_http11_clients() {
    let mut sim = connected(GET);
    sim.upstream_sends_in_pieces(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
        1,
    );
    let client = sim.client_received_str();
    assert!(
        client.ends_with("Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "{client}"
    );
    assert_eq!(sim.releases(), &[true]);
}

#[test]
fn chunked_response_is_decoded_for_http10_clients() {
    let mut sim = connected(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    sim.upstream_sends(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    let client = sim.client_received_str();
    assert!(!client.contains("Transfer-Encoding"));
    assert!(
        client.contains("Connection: close"),
        "close-delimited for HTTP/1.0"
    );
    assert!(client.ends_with("\r\n\r\nabc"), "{client}");
}

#[test]
fn a_coding_beyond_chunked_is_502_for_http10_clients() {
    // RFC 9112 §6.1: an HTTP/1.0 client cannot be sent Transfer-Encoding, and the proxy
    // does not decode gzip: forwarding the coded bytes without the field would hand
    // the client a body it cannot know is compressed.
    for coding in ["gzip, chunked", "gzip"] {
        let mut sim = connected(b"GET / HTTP/1.0\r\n\r\n");
        let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n");
        sim.upstream_sends(head.as_bytes());
        sim.upstream_sends(b"3\r\nabc\r\n0\r\n\r\n");
        let client = sim.client_received_str();
        assert!(client.starts_with("HTTP/1.1 502 "), "{coding}: {client}");
        assert!(
            !client.contains("abc"),
            "{coding}: no coded byte reaches it"
        );
        assert_eq!(sim.releases(), &[false], "{coding}");
    }
    // An HTTP/1.1 client is told of the coding, and gets the body as it came.
    let mut sim = connected(GET);
    sim.upstream_sends(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    let client = sim.client_received_str();
    assert!(
        client.contains("\r\nTransfer-Encoding: gzip, chunked\r\n"),
        "{client}"
    );
    assert!(client.ends_with("3\r\nabc\r\n0\r\n\r\n"), "{client}");
    // Written as one plain list, whatever the spacing and fields it came in.
    let mut sim = connected(GET);
    sim.upstream_sends(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip ,\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
    );
    let client = sim.client_received_str();
    assert!(
        client.contains("\r\nTransfer-Encoding: gzip, chunked\r\n"),
        "{client}"
    );
    assert_eq!(client.matches("Transfer-Encoding").count(), 1, "{client}");
}

#[test]
fn a_response_in_an_unknown_transfer_coding_or_none_is_502() {
    // Close-delimited by the letter of RFC 9112 §6.3, but a name no peer can decode,
    // and most often `chunked` misspelt so that two readers disagree; an empty field
    // is read as none by some and refused by others.
    for coding in [
        "hunked",
        "ch1unked",
        "chunk",
        "gzip, br",
        "x-chunked",
        "",
        " , ",
    ] {
        let mut sim = connected(GET);
        let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n");
        sim.upstream_sends(head.as_bytes());
        sim.upstream_sends(b"3\r\nabc\r\n0\r\n\r\n");
        let client = sim.client_received_str();
        assert!(client.starts_with("HTTP/1.1 502 "), "{coding}: {client}");
        assert!(!client.contains("abc"), "{coding}: {client}");
        assert_eq!(sim.releases(), &[false], "{coding}");
    }
    // A known coding, not chunked, is read until the close and passed on with its field.
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: GZIP\r\n\r\nabc");
    let client = sim.client_received_str();
    assert!(client.starts_with("HTTP/1.1 200 "), "{client}");
    assert!(
        client.contains("\r\nTransfer-Encoding: GZIP\r\n"),
        "{client}"
    );
    assert!(client.ends_with("\r\n\r\nabc"), "{client}");
}

#[test]
fn no_transfer_encoding_reaches_the_client_in_a_1xx_or_204() {
    // RFC 9112 §6.1: a server must not send it there (the status alone says there is
    // no body); a lenient intermediary in front could otherwise wait for chunks.
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n");
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"
    );
    let mut sim = connected(GET);
    sim.upstream_sends(
        b"HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\nLink: </a>\r\n\r\n",
    );
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    );
    // A 304 may keep it (RFC 9112 §6.1: the coding the full response would have had).
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        sim.client_received_str(),
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
}

#[test]
fn expect_100_continue_interim_response_reaches_the_client() {
    let mut sim = connected(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    assert!(sim.upstream_received_str().contains("Expect: 100-continue"));
    sim.upstream_sends(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(sim.client_received_str(), "HTTP/1.1 100 Continue\r\n\r\n");
    sim.client_sends(b"body");
    assert!(sim.upstream_received_str().ends_with("body"));
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().ends_with("hello"));
}

#[test]
fn an_http10_expect_100_continue_is_not_passed_on() {
    // RFC 9110 §10.1.1: it is ignored in an HTTP/1.0 request.
    let sim = connected(
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\nX-After: 1\r\n\r\nbody",
    );
    let upstream = sim.upstream_received_str();
    assert!(!upstream.contains("Expect"), "{upstream}");
    assert!(
        upstream.contains("\r\nContent-Length: 4\r\nX-After: 1\r\n"),
        "{upstream}"
    );
    assert!(upstream.ends_with("\r\n\r\nbody"), "{upstream}");
    // An HTTP/1.1 one is, and so is any other expectation.
    let sim = connected(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(sim
        .upstream_received_str()
        .contains("\r\nExpect: 100-continue\r\n"));
    let sim = connected(b"POST / HTTP/1.0\r\nExpect: other\r\nContent-Length: 0\r\n\r\n");
    assert!(sim
        .upstream_received_str()
        .contains("\r\nExpect: other\r\n"));
}

#[test]
fn interim_responses_are_not_sent_to_http10_clients() {
    let mut sim = connected(b"GET / HTTP/1.0\r\n\r\n");
    sim.upstream_sends(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
    assert!(sim.client_received().is_empty());
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn early_response_before_the_request_body_ends_closes_both() {
    let mut sim = streaming(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial");
    sim.upstream_sends(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
    let client = sim.client_received_str();
    assert!(client.starts_with("HTTP/1.1 413 "));
    assert!(client.contains("Connection: close"));
    assert_eq!(
        sim.releases(),
        &[false],
        "upstream is mid-request: not reusable"
    );
}

#[test]
fn upstream_connection_close_is_not_reused_but_client_stays() {
    let mut sim = connected(GET);
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(sim.releases(), &[false]);
    assert!(!sim.client_received_str().contains("Connection: close"));
    assert!(sim.shutdowns().is_empty());
}

#[test]
fn body_bytes_are_not_copied() {
    // The payload reaches the upstream as the same allocation the runtime read.
    use bytes::Bytes;
    use proxy_core::{ClientInfo, Input, Output, Session};
    use std::sync::Arc;
    let now = proxy_core::sim::Sim::new(Config::default()).now();
    let mut session = Session::new(Arc::new(Config::default()), ClientInfo::default(), now);
    session.handle_input(
        now,
        Input::Data(
            Side::Client,
            Bytes::from_static(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n"),
        ),
    );
    let body = Bytes::from(vec![7u8; 8]);
    let pointer = body.as_ptr();
    // Gathered until it is whole, then sent behind the head once connected.
    session.handle_input(now, Input::Data(Side::Client, body));
    session.handle_input(now, Input::UpstreamConnected { reused: false });
    let sent: Vec<Bytes> = std::iter::from_fn(|| session.poll_output())
        .filter_map(|o| match o {
            Output::Send(Side::Upstream, b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(sent.last().unwrap().as_ptr(), pointer);
}

#[test]
fn body_bytes_logged_do_not_depend_on_the_split_when_a_chunk_is_bad() {
    let request =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\nzz\r\n";
    let logged = |pieces: &[&[u8]]| {
        let mut sim = sim();
        for piece in pieces {
            sim.client_sends(piece);
        }
        sim.events()
            .iter()
            .find_map(|e| match e {
                proxy_core::Event::Request(r) => Some(r.request_body_bytes),
                _ => None,
            })
            .unwrap()
    };
    let whole = logged(&[request]);
    assert_eq!(whole, 1);
    for at in 1..request.len() {
        assert_eq!(
            logged(&[&request[..at], &request[at..]]),
            whole,
            "split at {at}"
        );
    }
}

#[test]
fn an_oversized_head_gets_the_same_status_whatever_the_split() {
    let mut config = Config::default();
    config.limits.max_head_size = 64;
    let mut request = b"GET /".to_vec();
    request.extend_from_slice(&[b'a'; 80]);
    request.extend_from_slice(b" HTTP/1.1\nHost: a\r\n\r\n");
    let status = |pieces: &[&[u8]]| {
        let mut sim = proxy_core::sim::Sim::new(config.clone());
        for piece in pieces {
            sim.client_sends(piece);
        }
        sim.client_received_str()[..12].to_string()
    };
    let whole = status(&[&request]);
    assert_eq!(whole, "HTTP/1.1 414");
    for at in 1..request.len() {
        assert_eq!(
            status(&[&request[..at], &request[at..]]),
            whole,
            "split at {at}"
        );
    }
}

#[test]
fn pipelined_requests_sent_before_a_half_close_are_all_answered() {
    let mut sim = sim();
    sim.client_sends(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    sim.eof(Side::Client);
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
    sim.expect_connect();
    sim.upstream_connected_pooled();
    sim.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo");
    let client = sim.client_received_str();
    assert!(
        client.contains("one") && client.ends_with("two"),
        "{client}"
    );
    assert!(sim.is_closed(), "closed after the last answer");
}

/// `Session::awaits_client`: true while the client is part way through a request (a
/// head in part, a body not all read), so that a runtime holding back its ACKs
/// acknowledges at once; false while a whole request waits for its answer, between
/// requests, and in a tunnel.
#[test]
fn the_session_awaits_the_client_only_part_way_through_a_request() {
    let mut sim = sim();
    assert!(!sim.session().awaits_client());
    sim.client_sends(b"POST /upload HTTP/1.1\r\nHost: example.com\r\n");
    assert!(sim.session().awaits_client());
    sim.client_sends(b"Content-Length: 10\r\n\r\n01234");
    assert!(sim.session().awaits_client());
    sim.client_sends(b"56789");
    assert!(!sim.session().awaits_client());
    sim.expect_connect();
    sim.upstream_connected();
    sim.upstream_sends(OK);
    assert!(sim.client_received_str().ends_with("hello"));
    assert!(!sim.session().awaits_client());
    sim.client_sends(b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert!(!sim.session().awaits_client());

    let mut sim = connected(&websocket_request());
    sim.upstream_sends(&websocket_101());
    assert!(!sim.session().awaits_client());
}
