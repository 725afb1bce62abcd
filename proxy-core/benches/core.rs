//! Hot paths of the core, measured with criterion.
//!
//! - `request_head/switchyard_parse_forward`: `RequestHead::parse` + `forward` on a browser-like GET
//!   (the strict parse and the rewrite the upstream gets);
//! - `request_head/httparse`: the same bytes through bare `httparse::Request::parse`,
//!   the floor the strict parse is built on, measured in the same run;
//! - `session/exchange`: one whole request/response exchange through a fresh `Session`
//!   (head in, connect, head out, response head + 13-byte body back, writes acked);
//! - `session/exchange_keepalive`: the same exchange repeated on one kept-alive
//!   session of a long-lived `Proxy` (a pooled upstream connection each time);
//! - `session/tunnel_64k`: a 64 KiB client read (one whole masked binary frame) through
//!   an open WebSocket tunnel (`Data` in, the `Send`s out, `Written` back), reported as
//!   bytes per second.
//!
//! Quick check (CI): `cargo bench -p proxy-core --bench core -- --test`.
//! Full run: `cargo bench -p proxy-core --bench core -- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use proxy_core::request::RequestHead;
use proxy_core::upgrade::websocket_accept;
use proxy_core::{ClientInfo, Config, Input, Output, Proxy, Session, Side};

/// A request head as a current desktop browser sends it (~400 bytes).
const BROWSER_GET: &[u8] = b"GET /articles/2024/sans-io-proxies?ref=home&page=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, world!";

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The clock origin: only differences between instants matter to the session.
fn origin() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn client_info() -> ClientInfo {
    ClientInfo {
        addr: Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            40000,
        )),
        tls: false,
        redirect_to_https: None,
    }
}

/// Drains every output, acknowledging each `Send` at once as a runtime whose writes
/// never block would. Returns the number of bytes sent towards the client.
fn drain_and_ack(session: &mut Session, now: Instant) -> usize {
    let mut to_client = 0;
    loop {
        let mut acks = [0usize; 2];
        while let Some(output) = session.poll_output() {
            if let Output::Send(side, bytes) = &output {
                let i = usize::from(*side == Side::Upstream);
                acks[i] += bytes.len();
                if *side == Side::Client {
                    to_client += bytes.len();
                }
            }
            drop(black_box(output));
        }
        if acks == [0, 0] {
            return to_client;
        }
        for (side, n) in [(Side::Client, acks[0]), (Side::Upstream, acks[1])] {
            if n > 0 {
                session.handle_input(now, Input::Written(side, n));
            }
        }
    }
}

fn request_head(c: &mut Criterion) {
    assert!(
        (380..=480).contains(&BROWSER_GET.len()),
        "head is {} bytes",
        BROWSER_GET.len()
    );
    let config = Config::default();
    let client = client_info();
    let head = Bytes::from_static(BROWSER_GET);
    // The benchmark is only meaningful if both paths accept the head.
    let forwarded = RequestHead::parse(head.clone(), &config)
        .expect("valid head")
        .forward(&config, &client, b"127.0.0.1:9000");
    assert!(forwarded.starts_with(b"GET /articles/"));

    let mut group = c.benchmark_group("request_head");
    group.throughput(Throughput::Bytes(BROWSER_GET.len() as u64));
    group.bench_function("switchyard_parse_forward", |b| {
        b.iter(|| {
            let request = RequestHead::parse(black_box(head.clone()), &config).unwrap();
            black_box(request.forward(&config, &client, b"127.0.0.1:9000"))
        })
    });
    group.bench_function("httparse", |b| {
        b.iter(|| {
            // The same header capacity as the core's `limits.max_headers`.
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut request = httparse::Request::new(&mut headers);
            let status = request.parse(black_box(BROWSER_GET)).unwrap();
            assert!(status.is_complete());
            black_box(request.headers.len())
        })
    });
    group.finish();
}

fn session_exchange(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    let client = client_info();
    let now = origin();
    let run = |config: &Arc<Config>| {
        let mut session = Session::new(config.clone(), client.clone(), now);
        session.handle_input(
            now,
            Input::Data(Side::Client, Bytes::from_static(BROWSER_GET)),
        );
        drain_and_ack(&mut session, now);
        session.handle_input(now, Input::UpstreamConnected { reused: false });
        drain_and_ack(&mut session, now);
        session.handle_input(
            now,
            Input::Data(Side::Upstream, Bytes::from_static(RESPONSE)),
        );
        let to_client = drain_and_ack(&mut session, now);
        (session, to_client)
    };
    // The exchange must complete: the whole response reached the client and the
    // session waits for the next request on the kept-alive connection.
    let (session, to_client) = run(&config);
    assert!(to_client >= RESPONSE.len(), "client got {to_client} bytes");
    assert!(!session.is_closed() && session.wants_read(Side::Client));

    let mut group = c.benchmark_group("session");
    group.bench_function("exchange", |b| b.iter(|| black_box(run(&config))));
    // The same exchange on a kept-alive connection of a long-lived proxy, as a
    // server runs it: no proxy and session set up per request.
    let proxy = Proxy::new(config.clone());
    let mut session = proxy.session(client.clone(), now);
    let mut again = || {
        session.handle_input(
            now,
            Input::Data(Side::Client, Bytes::from_static(BROWSER_GET)),
        );
        drain_and_ack(&mut session, now);
        session.handle_input(now, Input::UpstreamConnected { reused: true });
        drain_and_ack(&mut session, now);
        session.handle_input(
            now,
            Input::Data(Side::Upstream, Bytes::from_static(RESPONSE)),
        );
        drain_and_ack(&mut session, now)
    };
    assert!(again() >= RESPONSE.len());
    group.bench_function("exchange_keepalive", |b| b.iter(|| black_box(again())));
    group.finish();
    assert!(!session.is_closed() && session.wants_read(Side::Client));
}

/// A session whose WebSocket upgrade was accepted, with every output drained.
fn open_tunnel(config: Arc<Config>, now: Instant) -> Session {
    let mut session = Session::new(config, client_info(), now);
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: www.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        websocket_accept(WS_KEY)
    );
    session.handle_input(now, Input::Data(Side::Client, Bytes::from(request)));
    drain_and_ack(&mut session, now);
    session.handle_input(now, Input::UpstreamConnected { reused: false });
    drain_and_ack(&mut session, now);
    session.handle_input(now, Input::Data(Side::Upstream, Bytes::from(response)));
    let to_client = drain_and_ack(&mut session, now);
    assert!(
        to_client > 0 && !session.is_closed(),
        "the upgrade was not accepted"
    );
    session
}

/// One masked binary WebSocket frame (as a client sends it) of `total` bytes in all.
fn binary_frame(total: usize) -> Bytes {
    let payload = total - 14; // 2 + 8 (64-bit length) + 4 (mask key)
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&[0x82, 0x80 | 127]);
    frame.extend_from_slice(&(payload as u64).to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    frame.resize(total, 0x5a);
    Bytes::from(frame)
}

fn tunnel(c: &mut Criterion) {
    const CHUNK: usize = 64 * 1024;
    let now = origin();
    let mut session = open_tunnel(Arc::new(Config::default()), now);
    let chunk = binary_frame(CHUNK);
    let step = |session: &mut Session| {
        session.handle_input(now, Input::Data(Side::Client, chunk.clone()));
        let mut sent = 0;
        while let Some(output) = session.poll_output() {
            if let Output::Send(Side::Upstream, bytes) = &output {
                sent += bytes.len();
            }
            drop(black_box(output));
        }
        session.handle_input(now, Input::Written(Side::Upstream, sent));
        sent
    };
    assert_eq!(
        step(&mut session),
        CHUNK,
        "the tunnel must forward the whole read"
    );

    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Bytes(CHUNK as u64));
    group.bench_function("tunnel_64k", |b| b.iter(|| black_box(step(&mut session))));
    group.finish();
    assert!(!session.is_closed());
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = request_head, session_exchange, tunnel
}
criterion_main!(benches);
