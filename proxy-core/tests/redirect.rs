//! Listeners that send everything to https (`ClientInfo::redirect_to_https`): the
//! proxy answers `301` (`GET`, `HEAD`) or `308` (other methods) to `https://` the same
//! host and target, and nothing goes upstream.

use proxy_core::sim::{Sim, CLIENT_ADDR};
use proxy_core::{ClientInfo, Config, Event};
use std::num::NonZeroU16;

fn redirecting() -> Sim {
    redirecting_to(443)
}

fn redirecting_to(port: u16) -> Sim {
    let mut sim = Sim::with_client(
        Config::default(),
        ClientInfo {
            addr: Some(CLIENT_ADDR),
            tls: false,
            redirect_to_https: NonZeroU16::new(port),
        },
    );
    sim.set_auto_connect(true);
    sim
}

/// The `Location` of the one response the client got, after checking its status
/// line (`status`), that it closes, and that nothing was dialled.
fn location_of(sim: &Sim, status: &str) -> String {
    let response = sim.client_received_str();
    assert!(
        response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
        "{response}"
    );
    assert!(
        response.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"),
        "{response}"
    );
    assert_eq!(sim.upstream_connections(), 0, "nothing goes upstream");
    assert!(sim.upstream_received().is_empty());
    let line = response
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap_or_else(|| panic!("no Location in {response}"));
    line.to_string()
}

/// [`location_of`] a `301 Moved Permanently`, the answer to a `GET`.
fn location(sim: &Sim) -> String {
    location_of(sim, "301 Moved Permanently")
}

#[test]
fn a_request_is_sent_to_https_on_the_same_host_and_target() {
    let mut sim = redirecting();
    sim.client_sends(b"GET /a/b?c=1&d HTTP/1.1\r\nHost: Example.com:80\r\n\r\n");
    assert_eq!(location(&sim), "https://Example.com/a/b?c=1&d");
    let logged = sim.events().iter().find_map(|e| match e {
        Event::Request(r) => Some((r.status, r.from_proxy)),
        _ => None,
    });
    assert_eq!(logged, Some((301, true)));
}

#[test]
fn an_https_port_other_than_443_is_named() {
    let mut sim = redirecting_to(8443);
    sim.client_sends(b"GET /a HTTP/1.1\r\nHost: a.example:8080\r\n\r\n");
    assert_eq!(location(&sim), "https://a.example:8443/a");
    let mut sim = redirecting_to(8443);
    sim.client_sends(b"GET /a HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n");
    assert_eq!(location(&sim), "https://[2001:db8::1]:8443/a");
}

#[test]
fn get_and_head_get_301_and_other_methods_308() {
    for (method, status) in [
        ("HEAD", "301 Moved Permanently"),
        ("PUT", "308 Permanent Redirect"),
        ("DELETE", "308 Permanent Redirect"),
        ("OPTIONS", "308 Permanent Redirect"),
    ] {
        let mut sim = redirecting();
        sim.client_sends(format!("{method} /r HTTP/1.1\r\nHost: a.example\r\n\r\n").as_bytes());
        assert_eq!(location_of(&sim, status), "https://a.example/r", "{method}");
    }
}

#[test]
fn the_host_of_an_absolute_form_target_wins_and_ipv6_keeps_its_brackets() {
    let mut sim = redirecting();
    sim.client_sends(b"GET http://origin.example:8080/p HTTP/1.1\r\nHost: other.example\r\n\r\n");
    assert_eq!(location(&sim), "https://origin.example/p");
    let mut sim = redirecting();
    sim.client_sends(b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n");
    assert_eq!(location(&sim), "https://[2001:db8::1]/");
}

#[test]
fn a_post_with_a_body_is_redirected_and_its_body_never_read_as_a_request() {
    let mut sim = redirecting();
    sim.client_sends(
        b"POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Length: 40\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    // A 308: a client may turn a POST that got a 301 into a GET.
    assert_eq!(
        location_of(&sim, "308 Permanent Redirect"),
        "https://a.example/form"
    );
    assert_eq!(
        sim.client_received_str().matches("HTTP/1.1").count(),
        1,
        "one response only"
    );
}

#[test]
fn a_raw_utf8_target_is_percent_encoded_in_location() {
    let mut sim = redirecting();
    sim.client_sends(
        "GET /caf\u{e9}/%C3%A9?q=\u{fc} HTTP/1.1\r\nHost: a.example\r\n\r\n".as_bytes(),
    );
    assert_eq!(
        location(&sim),
        "https://a.example/caf%C3%A9/%C3%A9?q=%C3%BC"
    );
}

#[test]
fn an_upgrade_is_redirected_too() {
    let mut sim = redirecting();
    sim.client_sends(
        b"GET /chat HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(location(&sim), "https://a.example/chat");
}

#[test]
fn a_request_without_a_host_gets_400() {
    let mut sim = redirecting();
    sim.client_sends(b"GET / HTTP/1.0\r\n\r\n");
    let response = sim.client_received_str();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert_eq!(sim.upstream_connections(), 0);
}

#[test]
fn a_malformed_request_is_refused_before_any_redirect() {
    let mut sim = redirecting();
    sim.client_sends(b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n");
    let response = sim.client_received_str();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(!response.contains("Location"));
}

#[test]
fn without_the_flag_the_request_goes_upstream() {
    let mut sim = Sim::new(Config::default());
    sim.set_auto_connect(true);
    sim.client_sends(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(sim.upstream_connections(), 1);
    assert!(sim
        .upstream_received_str()
        .starts_with("GET / HTTP/1.1\r\n"));
}

/// Mostly a byte of `common`, one time in eight one of `rare`.
fn byte(
    common: &'static [u8],
    rare: &'static [u8],
) -> impl proptest::strategy::Strategy<Value = u8> {
    use proptest::prelude::*;
    prop_oneof![
        7 => proptest::sample::select(common),
        1 => proptest::sample::select(rare),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Whatever the client puts in `Host` and the target (controls, spaces, CR, LF,
    /// non-ASCII, `@`, `#`), the answer is a `400` family refusal or a `301` whose one
    /// `Location` is `https://` plus exactly the host (port dropped) and target sent,
    /// all of it visible ASCII: nothing the client sends can add a field or a line.
    #[test]
    fn location_repeats_only_what_parsed_and_nothing_can_be_injected(
        host in proptest::collection::vec(byte(b"aZ09.-:[]", b"_@#%/?\\ \t\r\n\x00\x7f\xc3\xa9,;"), 0..12),
        target in proptest::collection::vec(byte(b"aZ09./?&=%~-_:", b"#@;,!$'()*+ \t\r\n\x00\x7f\xc3\xa9"), 0..16),
    ) {
        let mut request = b"GET /".to_vec();
        request.extend_from_slice(&target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(&host);
        request.extend_from_slice(b"\r\n\r\n");
        let mut sim = redirecting();
        sim.client_sends(&request);
        let response = sim.client_received().to_vec();
        proptest::prop_assert_eq!(sim.upstream_connections(), 0);
        if response.starts_with(b"HTTP/1.1 301 ") {
            let text = String::from_utf8(response).expect("ASCII");
            let lines: Vec<&str> = text.split("\r\n").collect();
            proptest::prop_assert_eq!(lines.len(), 6, "{}", text);
            let location = lines[1].strip_prefix("Location: https://").expect("Location second");
            proptest::prop_assert!(location.bytes().all(|b| b.is_ascii_graphic()), "{}", location);
            // The field value without its surrounding whitespace (RFC 9112 §5).
            let sent_host = String::from_utf8(host.clone()).unwrap();
            let sent_host = sent_host.trim_matches([' ', '\t']).to_string();
            let name = match sent_host.rsplit_once(':') {
                Some((name, _)) if !sent_host.ends_with(']') => name.to_string(),
                _ => sent_host.clone(),
            };
            let name = name.strip_suffix('.').unwrap_or(&name).to_string();
            // Non-ASCII bytes (a raw UTF-8 path) come back percent-encoded.
            let sent_target: String = std::iter::once(b'/')
                .chain(target.iter().copied())
                .map(|b| match b.is_ascii_graphic() {
                    true => char::from(b).to_string(),
                    false => format!("%{b:02X}"),
                })
                .collect();
            proptest::prop_assert_eq!(location, format!("{name}{sent_target}"));
        } else {
            proptest::prop_assert!(
                response.starts_with(b"HTTP/1.1 4"),
                "{}", String::from_utf8_lossy(&response)
            );
        }
    }
}
