//! Access log: one line per request and one per tunnel, from the session's events.
//!
//! Lines go to the tracing target [`TARGET`], so they are switched on and off like
//! any other log (the binary's `[log] access = false` adds `switchyard::access=off`).

use proxy_core::Event;
use std::fmt;
use std::net::SocketAddr;
use tracing::info;

/// The tracing target of access log lines.
pub const TARGET: &str = "switchyard::access";

/// Logs one line for a session's [`Event`]; `client` and `upstream` show as `-` when unknown.
pub fn event(event: &Event, client: Option<SocketAddr>, upstream: Option<SocketAddr>) {
    let (client, upstream) = (OrDash(client), OrDash(upstream));
    match event {
        Event::Request(r) => info!(
            target: TARGET,
            %client,
            method = %String::from_utf8_lossy(&r.method),
            target = %String::from_utf8_lossy(&r.target),
            status = r.status,
            request_bytes = r.request_body_bytes,
            response_bytes = r.response_body_bytes,
            duration = ?r.duration,
            %upstream,
            error = %r.error.unwrap_or("-"),
            "request"
        ),
        Event::Tunnel(t) => info!(
            target: TARGET,
            %client,
            protocol = %t.protocol,
            client_to_upstream = t.client_to_upstream,
            upstream_to_client = t.upstream_to_client,
            duration = ?t.duration,
            end = ?t.end,
            %upstream,
            "tunnel"
        ),
    }
}

/// Shows `-` for an unknown value.
struct OrDash<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}
