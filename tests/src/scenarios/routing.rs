//! Upstream groups and routes, end to end: round-robin visible across two backends,
//! a dead backend skipped with the request retried on the next, routes by `Host` and
//! path prefix with the prefix stripped.

use super::{exchange, start_with};
use crate::backend::{Backend, Reply};
use crate::http;
use crate::ProxyUnderTest;
use proxy_core::{Route, UpstreamGroup};
use std::net::SocketAddr;

/// An HTTP backend answering `200` with the body `<name> <METHOD> <target>`.
pub(crate) async fn labelled(name: &'static str) -> Backend {
    Backend::http(move |r| {
        Reply::Bytes(http::ok(
            format!("{name} {} {}", r.method, r.target).as_bytes(),
        ))
    })
    .await
}

/// A group of these servers with the default policy.
pub(crate) fn group(servers: &[SocketAddr]) -> UpstreamGroup {
    UpstreamGroup {
        servers: servers.iter().map(|s| s.to_string()).collect(),
        ..UpstreamGroup::default()
    }
}

/// An address nothing listens on (bound, then released).
pub(crate) fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap()
}

fn request(host: &str, target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// `[upstreams.default]` with two servers: requests alternate between them.
pub async fn round_robin_alternates_between_two_backends(p: &dyn ProxyUnderTest) {
    let (a, b) = (labelled("a").await, labelled("b").await);
    let proxy = start_with(p, a.addr, |c| {
        c.upstreams
            .insert("default".into(), group(&[a.addr, b.addr]));
    })
    .await;
    let mut served = Vec::new();
    for i in 0..4 {
        let r = exchange(&proxy, &request("example.test", &format!("/{i}")), "GET").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        served.push(r.text().split(' ').next().unwrap_or_default().to_string());
    }
    assert_ne!(served[0], served[1], "round-robin: {served:?}");
    assert_eq!(
        (&served[0], &served[1]),
        (&served[2], &served[3]),
        "round-robin: {served:?}"
    );
}

/// `balance = "client_ip"`: each client address (127.0.0.2 to 127.0.0.9, each on three
/// connections of its own) stays on one server, and the eight spread over both.
pub async fn client_ip_balance_keeps_each_client_on_one_server(p: &dyn ProxyUnderTest) {
    let (a, b) = (labelled("a").await, labelled("b").await);
    let proxy = start_with(p, a.addr, |c| {
        let mut g = group(&[a.addr, b.addr]);
        g.balance = proxy_core::Balance::ClientIp;
        c.upstreams.insert("default".into(), g);
    })
    .await;
    let mut servers = std::collections::BTreeSet::new();
    for host in 2..10u8 {
        let mut served = Vec::new();
        for i in 0..3 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(SocketAddr::from(([127, 0, 0, host], 0)))
                .unwrap();
            let stream = socket.connect(proxy.addr).await.unwrap();
            let mut c = http::Conn::new(stream);
            c.write(&request("example.test", &format!("/{i}")))
                .await
                .unwrap();
            let r = super::response(&mut c, "GET", "client_ip balance").await;
            assert_eq!(r.status, 200, "{}", r.text());
            served.push(r.text().split(' ').next().unwrap_or_default().to_string());
        }
        assert!(
            served.iter().all(|s| *s == served[0]),
            "127.0.0.{host}: {served:?}"
        );
        servers.insert(served[0].clone());
    }
    assert_eq!(servers.len(), 2, "eight clients all on {servers:?}");
}

/// A server that refuses connections is skipped: the request is retried on the next
/// server (nothing was sent yet), so every client gets its answer.
pub async fn dead_backend_is_skipped_and_the_request_retried_on_the_next(p: &dyn ProxyUnderTest) {
    let live = labelled("live").await;
    let dead = dead_addr();
    let proxy = start_with(p, live.addr, |c| {
        let mut g = group(&[dead, live.addr]);
        g.max_fails = 1;
        c.upstreams.insert("default".into(), g);
    })
    .await;
    for i in 0..4 {
        let r = exchange(&proxy, &request("example.test", &format!("/{i}")), "GET").await;
        assert_eq!(
            (r.status, r.text()),
            (200, format!("live GET /{i}")),
            "request {i}"
        );
    }
    assert_eq!(live.requests().len(), 4);
}

/// `[[routes]]`: an exact host beats a path prefix for any host; `/static` goes to
/// its group with the prefix stripped; the rest goes to `default` (`upstream`).
pub async fn routes_by_host_and_prefix_with_strip(p: &dyn ProxyUnderTest) {
    let (api, web, rest) = (
        labelled("api").await,
        labelled("web").await,
        labelled("default").await,
    );
    let proxy = start_with(p, rest.addr, |c| {
        c.upstreams.insert("api".into(), group(&[api.addr]));
        c.upstreams.insert("web".into(), group(&[web.addr]));
        c.routes = vec![
            Route {
                host: Some("api.test".into()),
                upstream: "api".into(),
                ..Route::default()
            },
            Route {
                path_prefix: "/static".into(),
                upstream: "web".into(),
                strip_prefix: true,
                ..Route::default()
            },
            Route::default(),
        ];
    })
    .await;
    for (host, target, expected) in [
        ("api.test", "/v1/users", "api GET /v1/users"),
        ("API.test:8080", "/static/x", "api GET /static/x"),
        ("example.test", "/static/app.js", "web GET /app.js"),
        ("example.test", "/static", "web GET /"),
        ("example.test", "/staticky", "default GET /staticky"),
        ("example.test", "/other", "default GET /other"),
    ] {
        let r = exchange(&proxy, &request(host, target), "GET").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, expected),
            "{host} {target}"
        );
    }
}

/// Which backend (by label) answered each of `n` requests through `proxy`.
async fn served_by(proxy: &crate::RunningProxy, n: usize) -> Vec<String> {
    let mut served = Vec::new();
    for i in 0..n {
        let r = exchange(proxy, &request("example.test", &format!("/{i}")), "GET").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        served.push(r.text().split(' ').next().unwrap_or_default().to_string());
    }
    served
}

/// `"a weight=2"` beside `b`: two requests in three go to `a`; a `backup` gets none
/// while the other server is up, and every request (retried onto it) once that one
/// is down.
pub async fn weights_and_backup_servers_share_requests_as_configured(p: &dyn ProxyUnderTest) {
    let (a, b) = (labelled("a").await, labelled("b").await);
    let proxy = start_with(p, a.addr, |c| {
        let servers = vec![format!("{} weight=2", a.addr), b.addr.to_string()];
        c.upstreams.insert(
            "default".into(),
            UpstreamGroup {
                servers,
                ..UpstreamGroup::default()
            },
        );
    })
    .await;
    let served = served_by(&proxy, 6).await;
    let on_a = served.iter().filter(|s| *s == "a").count();
    assert_eq!((on_a, 6 - on_a), (4, 2), "weights 2:1: {served:?}");
    let with_backup = |primary: SocketAddr| {
        move |c: &mut crate::Config| {
            let servers = vec![primary.to_string(), format!("{} backup", b.addr)];
            c.upstreams.insert(
                "default".into(),
                UpstreamGroup {
                    servers,
                    ..UpstreamGroup::default()
                },
            );
        }
    };
    let proxy = start_with(p, a.addr, with_backup(a.addr)).await;
    assert_eq!(served_by(&proxy, 4).await, ["a"; 4], "the backup idles");
    let proxy = start_with(p, a.addr, with_backup(dead_addr())).await;
    assert_eq!(served_by(&proxy, 4).await, ["b"; 4], "the primary is down");
}
