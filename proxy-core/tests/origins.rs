//! `websocket.allowed_origins`: a WebSocket handshake from a page origin not listed
//! gets 403 and never reaches the upstream (cross-site WebSocket hijacking).

mod common;
use common::*;
use proxy_core::sim::Sim;
use proxy_core::{Config, Route};

fn allowing(origins: &[&str]) -> Config {
    let mut config = Config::default();
    config.websocket.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    config.validate().unwrap();
    config
}

/// The WebSocket handshake of `websocket_request`, to `path`, with these extra fields.
fn handshake(path: &str, fields: &[&str]) -> Vec<u8> {
    let mut request = String::from_utf8(websocket_request()).unwrap();
    request = request.replacen("/chat", path, 1);
    let extra: String = fields.iter().map(|f| format!("{f}\r\n")).collect();
    request.insert_str(request.len() - 2, &extra);
    request.into_bytes()
}

/// What the client sees and whether the upstream was dialled, for one request.
fn outcome(config: &Config, request: &[u8]) -> (String, bool) {
    let mut sim = Sim::new(config.clone());
    sim.client_sends(request);
    let dialled = sim.has_pending_connect();
    (sim.client_received_str(), dialled)
}

fn refused(config: &Config, request: &[u8]) -> bool {
    let (client, dialled) = outcome(config, request);
    match client.starts_with("HTTP/1.1 403 ") {
        true => {
            assert!(!dialled, "a refused handshake dials no upstream");
            assert!(client.contains("origin not allowed"), "{client}");
            true
        }
        false => {
            assert!(dialled && client.is_empty(), "forwarded: {client}");
            false
        }
    }
}

#[test]
fn a_handshake_from_an_origin_not_listed_gets_403_and_reaches_no_upstream() {
    let config = allowing(&["https://app.example.com", "https://*.example.org"]);
    let from = |origin: &str| handshake("/chat", &[&format!("Origin: {origin}")]);
    assert!(!refused(&config, &from("https://app.example.com")));
    assert!(!refused(&config, &from("https://chat.example.org")));
    for origin in [
        "https://evil.test",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.test",
        "https://example.org",
        "null",
        "",
        "*",
    ] {
        assert!(refused(&config, &from(origin)), "{origin:?}");
    }
}

#[test]
fn a_handshake_without_origin_passes_and_two_origins_are_refused() {
    let config = allowing(&["https://app.example.com"]);
    assert!(!refused(&config, &handshake("/chat", &[])), "not a browser");
    let two = handshake(
        "/chat",
        &[
            "Origin: https://app.example.com",
            "Origin: https://evil.test",
        ],
    );
    assert!(refused(&config, &two));
}

#[test]
fn only_websocket_handshakes_are_checked() {
    let config = allowing(&["https://app.example.com"]);
    let get = b"GET / HTTP/1.1\r\nHost: a\r\nOrigin: https://evil.test\r\n\r\n";
    assert!(
        !refused(&config, get),
        "a plain request: CORS is the application's"
    );
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: raw\r\nConnection: upgrade\r\n\
                Origin: https://evil.test\r\n\r\n";
    assert!(
        !refused(&config, raw),
        "no browser can send another upgrade"
    );
}

#[test]
fn with_no_list_every_origin_passes() {
    let request = handshake("/chat", &["Origin: https://evil.test"]);
    assert!(!refused(&Config::default(), &request));
}

#[test]
fn a_routes_list_takes_the_place_of_the_global_one() {
    let mut config = allowing(&["https://app.example.com"]);
    config.routes = vec![
        Route::default(),
        Route {
            path_prefix: "/public".into(),
            allowed_origins: Some(vec![]), // any origin
            ..Route::default()
        },
        Route {
            path_prefix: "/admin".into(),
            allowed_origins: Some(vec!["https://admin.example.com".into()]),
            ..Route::default()
        },
    ];
    config.validate().unwrap();
    let evil = "Origin: https://evil.test";
    let app = "Origin: https://app.example.com";
    let admin = "Origin: https://admin.example.com";
    assert!(refused(&config, &handshake("/chat", &[evil])));
    assert!(!refused(&config, &handshake("/chat", &[app])));
    assert!(!refused(&config, &handshake("/public/feed", &[evil])));
    assert!(refused(&config, &handshake("/admin/live", &[app])));
    assert!(!refused(&config, &handshake("/admin/live", &[admin])));
}

#[test]
fn entries_that_are_not_origins_are_config_errors_naming_the_key() {
    let mut config = Config::default();
    config.websocket.allowed_origins = vec!["https://app.example.com/".into()];
    let error = config.validate().unwrap_err();
    assert!(
        error.starts_with(
            "websocket.allowed_origins: \"https://app.example.com/\" is not an origin"
        ),
        "{error}"
    );
    let config = Config {
        routes: vec![Route {
            allowed_origins: Some(vec!["app.example.com".into()]),
            ..Route::default()
        }],
        ..Config::default()
    };
    let error = config.validate().unwrap_err();
    assert!(error.starts_with("routes[0].allowed_origins: "), "{error}");
}

proptest::proptest! {
    /// For any host name: an entry admits its own origin in any case and with the
    /// default port written out, and never the same host under another scheme or
    /// port, a longer name ending in it, or one it ends in; `*.host` admits exactly
    /// the names with a label before `.host`. Any `Origin` bytes get an answer.
    #[test]
    fn entries_admit_their_origin_and_nothing_that_only_looks_like_it(
        host in "[a-z0-9]{1,10}(\\.[a-z0-9-]{1,10}){0,3}",
        label in "[a-z0-9]{1,8}",
        junk in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
    ) {
        let config = allowing(&[&format!("https://{host}")]);
        let wildcard = allowing(&[&format!("https://*.{host}")]);
        let from = |origin: &str| handshake("/chat", &[&format!("Origin: {origin}")]);
        assert!(!refused(&config, &from(&format!("https://{host}"))));
        let upper = host.to_ascii_uppercase();
        assert!(!refused(&config, &from(&format!("HTTPS://{upper}:443"))));
        for other in [
            format!("http://{host}"),
            format!("https://{host}:8443"),
            format!("https://{host}.evil"),
            format!("https://{label}{host}"),
            format!("https://{label}.{host}"),
        ] {
            assert!(refused(&config, &from(&other)), "{other}");
        }
        assert!(!refused(&wildcard, &from(&format!("https://{label}.{host}"))));
        assert!(refused(&wildcard, &from(&format!("https://{host}"))));
        assert!(refused(&wildcard, &from(&format!("https://{label}{host}"))));
        // Arbitrary value bytes (those a field value may hold): refused or passed,
        // never dialled and refused at once (`refused` checks that).
        let value: Vec<u8> = junk.into_iter().filter(|b| (0x21..0x7f).contains(b)).collect();
        let value = String::from_utf8(value).unwrap();
        let _ = refused(&config, &from(&value));
    }
}
