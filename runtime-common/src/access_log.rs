//! Access log: one line per request and one per tunnel, from the session's events.
//!
//! Lines go to the tracing target [`TARGET`], so they are switched on and off like
//! any other log (the binary's `[log] access = false` adds `switchyard::access=off`).
//! Each line is written here into one message, `key=value` pairs in a fixed order:
//!
//! ```text
//! request client=203.0.113.7:51514 method=GET target=/chat status=101 request_bytes=0 response_bytes=0 duration_ms=1.204 upstream=10.0.0.2:9000 error=-
//! tunnel client=203.0.113.7:51514 protocol=websocket client_to_upstream=812 upstream_to_client=90211 duration_ms=60001.532 end=IdleTimeout upstream=10.0.0.2:9000
//! ```
//!
//! Handed to tracing's formatter, a line cost about 17,000 instructions (more than
//! proxying the request): it styles, pads and escapes every field character by
//! character. With the binaries' log ([`crate::init_logging`]) the line is written
//! here whole, timestamp and level included, in the formatter's layout, and queued to
//! the log's writer thread; under another subscriber it is one tracing event.
//!
//! With `[log] format = "json"` the line is one JSON object in the layout of
//! tracing-subscriber's JSON formatter, the values typed (numbers as numbers, an
//! unknown address or no error as `null`):
//!
//! ```text
//! {"timestamp":"2026-11-26T21:31:39.842934Z","level":"INFO","fields":{"kind":"request","client":"203.0.113.7:51514","method":"GET","target":"/chat","status":101,"request_bytes":0,"response_bytes":0,"duration_ms":1.204,"upstream":"10.0.0.2:9000","error":null},"target":"switchyard::access"}
//! ```

use crate::logging::{access_sink, AccessSink, LogFormat};
use proxy_core::Event;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tracing::info;

/// The tracing target of access log lines.
pub const TARGET: &str = "switchyard::access";

thread_local! {
    /// This thread's line buffer (reused) and its handle on the log's writer.
    static LINE: RefCell<(String, Option<AccessSink>)> = RefCell::new((String::with_capacity(256), None));
}

/// Logs one line for a session's [`Event`]; `client` and `upstream` show as `-` when unknown.
pub fn event(event: &Event, client: Option<SocketAddr>, upstream: Option<SocketAddr>) {
    // A given-up dial is a metric; its request gets its own line when it ends.
    let logged = matches!(event, Event::Request(_) | Event::Tunnel(_));
    if !logged || !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    LINE.with(|cell| {
        let mut own = (String::new(), None);
        let mut shared = cell.try_borrow_mut();
        let (line, sink) = shared.as_deref_mut().unwrap_or(&mut own);
        line.clear();
        if sink.is_none() {
            *sink = access_sink().cloned();
        }
        let Some(sink) = sink else {
            write_line(line, event, client, upstream);
            info!(target: TARGET, "{line}");
            return;
        };
        match sink.format {
            LogFormat::Text => {
                write_prefix(line, SystemTime::now(), sink.ansi);
                write_line(line, event, client, upstream);
            }
            LogFormat::Json => write_json_line(line, SystemTime::now(), event, client, upstream),
        }
        line.push('\n');
        // Queued, never dropped (the writer is not lossy), so no error to handle.
        let _ = std::io::Write::write_all(&mut sink.writer, line.as_bytes());
    });
}

/// What the subscriber writes ahead of a message: `2026-11-26T21:27:24.703978Z  INFO
/// switchyard::access: `, the level green on a terminal.
fn write_prefix(out: &mut String, now: SystemTime, ansi: bool) {
    let time = humantime::format_rfc3339_micros(now);
    let _ = match ansi {
        true => write!(
            out,
            "\x1b[2m{time}\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2m{TARGET}:\x1b[0m "
        ),
        false => write!(out, "{time}  INFO {TARGET}: "),
    };
}

/// The line for `event`, without the timestamp and level the subscriber adds.
fn write_line(
    out: &mut String,
    event: &Event,
    client: Option<SocketAddr>,
    upstream: Option<SocketAddr>,
) {
    match event {
        Event::Request(r) => {
            out.push_str("request client=");
            push_addr(out, client);
            out.push_str(" method=");
            push_lossy(out, &r.method);
            out.push_str(" target=");
            push_lossy(out, &r.target);
            out.push_str(" status=");
            push_number(out, r.status);
            out.push_str(" request_bytes=");
            push_number(out, r.request_body_bytes);
            out.push_str(" response_bytes=");
            push_number(out, r.response_body_bytes);
            out.push_str(" duration_ms=");
            push_millis(out, r.duration);
            out.push_str(" upstream=");
            push_addr(out, upstream);
            out.push_str(" error=");
            out.push_str(r.error.unwrap_or("-"));
        }
        Event::Tunnel(t) => {
            out.push_str("tunnel client=");
            push_addr(out, client);
            out.push_str(" protocol=");
            out.push_str(&t.protocol);
            out.push_str(" client_to_upstream=");
            push_number(out, t.client_to_upstream);
            out.push_str(" upstream_to_client=");
            push_number(out, t.upstream_to_client);
            out.push_str(" duration_ms=");
            push_millis(out, t.duration);
            out.push_str(" end=");
            let _ = write!(out, "{:?}", t.end); // rare: once per tunnel
            out.push_str(" upstream=");
            push_addr(out, upstream);
        }
        // Not logged (see `event`).
        Event::UpstreamConnectTimeout => {}
    }
}

/// The line for `event` as one JSON object, laid out as tracing-subscriber's JSON
/// formatter lays out an event (`timestamp`, `level`, `fields`, `target`).
fn write_json_line(
    out: &mut String,
    now: SystemTime,
    event: &Event,
    client: Option<SocketAddr>,
    upstream: Option<SocketAddr>,
) {
    let _ = write!(
        out,
        "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"fields\":{{",
        humantime::format_rfc3339_micros(now)
    );
    match event {
        Event::Request(r) => {
            out.push_str("\"kind\":\"request\",\"client\":");
            push_json_addr(out, client);
            out.push_str(",\"method\":");
            push_json_str(out, &String::from_utf8_lossy(&r.method));
            out.push_str(",\"target\":");
            push_json_str(out, &String::from_utf8_lossy(&r.target));
            out.push_str(",\"status\":");
            push_number(out, r.status);
            out.push_str(",\"request_bytes\":");
            push_number(out, r.request_body_bytes);
            out.push_str(",\"response_bytes\":");
            push_number(out, r.response_body_bytes);
            out.push_str(",\"duration_ms\":");
            push_millis(out, r.duration);
            out.push_str(",\"upstream\":");
            push_json_addr(out, upstream);
            out.push_str(",\"error\":");
            match r.error {
                Some(error) => push_json_str(out, error),
                None => out.push_str("null"),
            }
        }
        Event::Tunnel(t) => {
            out.push_str("\"kind\":\"tunnel\",\"client\":");
            push_json_addr(out, client);
            out.push_str(",\"protocol\":");
            push_json_str(out, &t.protocol);
            out.push_str(",\"client_to_upstream\":");
            push_number(out, t.client_to_upstream);
            out.push_str(",\"upstream_to_client\":");
            push_number(out, t.upstream_to_client);
            out.push_str(",\"duration_ms\":");
            push_millis(out, t.duration);
            out.push_str(",\"end\":");
            push_json_str(out, &format!("{:?}", t.end)); // rare: once per tunnel
            out.push_str(",\"upstream\":");
            push_json_addr(out, upstream);
        }
        // Not logged (see `event`).
        Event::UpstreamConnectTimeout => {}
    }
    out.push_str("},\"target\":\"switchyard::access\"}");
}

/// A JSON string: `"` and `\` escaped, control characters as `\u00XX`.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An address as a JSON string, or `null` when unknown.
fn push_json_addr(out: &mut String, addr: Option<SocketAddr>) {
    match addr {
        Some(_) => {
            out.push('"');
            push_addr(out, addr);
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

fn push_number(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `a.b.c.d:port` digit by digit (`core::fmt` takes a dozen times as long); IPv6
/// through `Display`; `-` when unknown.
fn push_addr(out: &mut String, addr: Option<SocketAddr>) {
    match addr {
        Some(SocketAddr::V4(v4)) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_number(out, octet);
            }
            out.push(':');
            push_number(out, v4.port());
        }
        Some(v6) => {
            let _ = write!(out, "{v6}");
        }
        None => out.push('-'),
    }
}

/// Milliseconds with three decimals (microseconds), e.g. `1.204`.
fn push_millis(out: &mut String, duration: Duration) {
    let micros = duration.as_micros();
    push_number(out, micros / 1000);
    let fraction = (micros % 1000) as u16;
    out.push('.');
    for digit in [fraction / 100, fraction / 10 % 10, fraction % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Bytes as received, invalid UTF-8 replaced (a request-target need not be UTF-8).
fn push_lossy(out: &mut String, bytes: &[u8]) {
    out.push_str(&String::from_utf8_lossy(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proxy_core::{RequestLog, Side, TunnelEnd, TunnelLog};

    #[test]
    fn a_request_line_has_every_field_in_order() {
        let log = RequestLog {
            method: Bytes::from_static(b"GET"),
            target: Bytes::from_static(b"/chat?x=\xff"),
            status: 502,
            request_body_bytes: 0,
            response_body_bytes: 1234567,
            duration: Duration::from_micros(1_204),
            from_proxy: true,
            error: Some("upstream refused the connection"),
        };
        let mut line = String::new();
        let client = "203.0.113.7:51514".parse().ok();
        write_line(&mut line, &Event::Request(Box::new(log)), client, None);
        assert_eq!(
            line,
            "request client=203.0.113.7:51514 method=GET target=/chat?x=\u{fffd} status=502 \
             request_bytes=0 response_bytes=1234567 duration_ms=1.204 upstream=- \
             error=upstream refused the connection"
        );
    }

    /// Under an embedder's subscriber the line is one event at `switchyard::access`, and
    /// that subscriber's filter decides whether it is written.
    #[test]
    fn a_filter_on_the_target_switches_lines_off() {
        use std::sync::{Arc, Mutex};
        let written = |filter: &str| {
            let out = Arc::new(Mutex::new(Vec::<u8>::new()));
            let sink = out.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(move || Capture(sink.clone()))
                .with_ansi(false)
                .finish();
            let log = TunnelLog {
                protocol: "websocket".into(),
                client_to_upstream: 1,
                upstream_to_client: 2,
                duration: Duration::ZERO,
                end: TunnelEnd::Closed,
            };
            tracing::subscriber::with_default(subscriber, || {
                event(&Event::Tunnel(Box::new(log)), None, None);
            });
            let text = out.lock().unwrap().clone();
            String::from_utf8(text).unwrap()
        };
        let on = written("info");
        assert!(
            on.contains("INFO switchyard::access: tunnel client=- protocol=websocket "),
            "{on}"
        );
        assert_eq!(written("info,switchyard::access=off"), "");
        assert_eq!(written("warn"), "");
    }

    /// A writer into a shared buffer.
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The layout tracing's formatter gives every other line.
    #[test]
    fn the_prefix_is_the_subscribers() {
        let mut line = String::new();
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_192_444_703_978);
        write_prefix(&mut line, t, false);
        assert_eq!(
            line,
            "2025-11-26T21:27:24.703978Z  INFO switchyard::access: "
        );
    }

    /// The JSON line of `event` at a fixed time, parsed.
    fn json_line(event: &Event, client: &str, upstream: Option<&str>) -> serde_json::Value {
        let mut line = String::new();
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_192_444_703_978);
        let upstream = upstream.map(|u| u.parse().unwrap());
        write_json_line(&mut line, t, event, client.parse().ok(), upstream);
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    #[test]
    fn a_json_request_line_is_one_object_with_typed_values() {
        let log = RequestLog {
            method: Bytes::from_static(b"GET"),
            // Quotes, a backslash, a control byte and bytes that are not UTF-8 (none of
            // which a refused target could carry into the log raw).
            target: Bytes::from_static(b"/a\"b\\c\x01\xff"),
            status: 403,
            request_body_bytes: 0,
            response_body_bytes: 1234567,
            duration: Duration::from_micros(1_204),
            from_proxy: true,
            error: Some("origin not allowed"),
        };
        let line = json_line(&Event::Request(Box::new(log)), "203.0.113.7:51514", None);
        assert_eq!(
            line,
            serde_json::json!({
                "timestamp": "2025-11-26T21:27:24.703978Z",
                "level": "INFO",
                "fields": {
                    "kind": "request",
                    "client": "203.0.113.7:51514",
                    "method": "GET",
                    "target": "/a\"b\\c\u{1}\u{fffd}",
                    "status": 403,
                    "request_bytes": 0,
                    "response_bytes": 1234567,
                    "duration_ms": 1.204,
                    "upstream": null,
                    "error": "origin not allowed",
                },
                "target": "switchyard::access",
            })
        );
    }

    /// The two formats are written out by hand, each as fast as it can be (a shared
    /// list of fields cost some 300 instructions more per request, callgrind): this
    /// holds them to the same fields.
    #[test]
    fn text_and_json_lines_carry_the_same_fields() {
        let request = RequestLog {
            method: Bytes::from_static(b"GET"),
            target: Bytes::from_static(b"/"),
            status: 200,
            request_body_bytes: 0,
            response_body_bytes: 13,
            duration: Duration::ZERO,
            from_proxy: false,
            error: None,
        };
        let tunnel = TunnelLog {
            protocol: "websocket".into(),
            client_to_upstream: 1,
            upstream_to_client: 2,
            duration: Duration::ZERO,
            end: TunnelEnd::Closed,
        };
        for event in [
            Event::Request(Box::new(request)),
            Event::Tunnel(Box::new(tunnel)),
        ] {
            let mut text = String::new();
            write_line(&mut text, &event, None, None);
            let mut words = text.split(' ');
            let kind = words.next().unwrap();
            let text_keys: Vec<&str> = words.map(|w| w.split('=').next().unwrap()).collect();
            let json = json_line(&event, "-", None);
            let fields = json["fields"].as_object().unwrap();
            assert_eq!(fields["kind"], kind);
            let mut json_keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            json_keys.retain(|k| *k != "kind");
            let mut sorted = text_keys.clone();
            sorted.sort_unstable();
            json_keys.sort_unstable();
            assert_eq!(sorted, json_keys, "{kind}: text {text_keys:?}");
        }
    }

    #[test]
    fn a_json_tunnel_line_is_one_object_with_typed_values() {
        let log = TunnelLog {
            protocol: "websocket".into(),
            client_to_upstream: 812,
            upstream_to_client: 90211,
            duration: Duration::from_millis(60_001),
            end: TunnelEnd::MessageTooBig(Side::Client),
        };
        let line = json_line(
            &Event::Tunnel(Box::new(log)),
            "[2001:db8::1]:443",
            Some("10.0.0.2:9000"),
        );
        assert_eq!(line["fields"]["kind"], "tunnel");
        assert_eq!(line["fields"]["client"], "[2001:db8::1]:443");
        assert_eq!(line["fields"]["upstream_to_client"], 90211);
        assert_eq!(line["fields"]["duration_ms"], 60001.0);
        assert_eq!(line["fields"]["end"], "MessageTooBig(Client)");
        assert_eq!(line["fields"]["upstream"], "10.0.0.2:9000");
    }

    #[test]
    fn a_tunnel_line_has_every_field_in_order() {
        let log = TunnelLog {
            protocol: "websocket".into(),
            client_to_upstream: 812,
            upstream_to_client: 90211,
            duration: Duration::from_millis(60_001) + Duration::from_micros(32),
            end: TunnelEnd::PeerGone(Side::Upstream),
        };
        let mut line = String::new();
        let client = "[2001:db8::1]:443".parse().ok();
        let upstream = "10.0.0.2:9000".parse().ok();
        write_line(&mut line, &Event::Tunnel(Box::new(log)), client, upstream);
        assert_eq!(
            line,
            "tunnel client=[2001:db8::1]:443 protocol=websocket client_to_upstream=812 \
             upstream_to_client=90211 duration_ms=60001.032 end=PeerGone(Upstream) \
             upstream=10.0.0.2:9000"
        );
    }
}
