//! # proxy-core: the protocol brain of Switchyard
//!
//! A deterministic, IO-free state machine for one client connection of an HTTP/1.1 +
//! `Upgrade` reverse proxy. It takes bytes and events with the current time and
//! returns what to do: send bytes, connect, shut a side down, close, and when to wake
//! up next. It never does IO, never reads a clock and never panics on any input.
//!
//! ## The drive loop
//! Every runtime is this loop over real sockets (see `runtime-tokio` for one that runs):
//!
//! ```text
//! let mut session = Session::new(config, client_info, now());
//! loop {
//!     // 1. carry out everything the session asked for, in order
//!     while let Some(output) = session.poll_output() {
//!         match output {
//!             Output::Connect(target)      => start dialling (or take a pooled connection),
//!             Output::Send(side, bytes)    => queue bytes on that side's writer,
//!             Output::ShutdownWrite(side)  => shut down that side once its queue is written,
//!             Output::ReleaseUpstream{reusable} => pool or drop the upstream connection,
//!             Output::Event(event)         => log it,
//!             Output::Close                => flush, close both sides, return,
//!         }
//!     }
//!     // 2. wait for the first of: a readable side the session wants
//!     //    (`session.wants_read(side)`), a write finishing, a connect finishing,
//!     //    the deadline `session.poll_timeout()`.
//!     // 3. feed exactly that in, then go to 1:
//!     //    session.handle_input(now(), Input::Data(side, bytes) | Eof | Reset |
//!     //                         Written(side, n) | UpstreamConnected | UpstreamFailed);
//!     //    or session.handle_timeout(now()) when the deadline passed.
//! }
//! ```
//!
//! A runtime that can move bytes between its sockets without reading them (`splice`)
//! may, in step 2, move up to [`Session::passthrough_room`] bytes from a side instead
//! of reading, and feed [`Input::Passed`]: the payload of WebSocket data frames,
//! non-WebSocket tunnels and HTTP bodies framed by `Content-Length` or by close then
//! never enters user space. Those bytes are bounded by
//! [`Config::pipe_size`] (they sit in a kernel pipe), not by `buffer_size`, the bound on
//! what the proxy holds in its own memory. Such a runtime reads at most
//! [`Session::read_room_when_passing`] bytes per read. When
//! [`Session::passes_once_sent`] says a side's next bytes will pass, it may put what
//! it holds for the other side (a frame's header) into the same pipe ahead of them and
//! feed `Input::Written` for it at once: header and payload then leave in one write.
//!
//! ## Verifying behaviour deterministically
//! [`sim::Sim`] drives a session with a virtual clock and scripted peers, so a test of
//! a 60-second timeout takes microseconds:
//!
//! ```
//! use proxy_core::{sim::Sim, Config, Side};
//! use std::time::Duration;
//!
//! let mut sim = Sim::new(Config::default());
//! sim.client_sends(b"GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n");
//! sim.expect_connect();
//! sim.upstream_connected();
//! assert!(sim.upstream_received_str().starts_with("GET /slow HTTP/1.1\r\n"));
//! sim.advance(Duration::from_secs(61)); // the upstream never answers
//! assert!(sim.client_received_str().starts_with("HTTP/1.1 504 "));
//! assert_eq!(sim.shutdowns(), &[Side::Client]); // then lingers for the client's EOF
//! sim.eof(Side::Client);
//! assert!(sim.is_closed());
//! ```
//!
//! ## Module map
//! The states and their transitions live in [`state`]; each protocol rule lives in
//! the module named after it: [`request`], [`response`], [`framing`], [`chunked`],
//! [`hop_by_hop`], [`upgrade`], [`timer`], [`error`]; [`proxy_protocol`] reads the
//! header a load balancer in front may send before the client's first byte.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod balance;
pub mod chunked;
pub mod config;
pub mod error;
mod field_name;
pub mod framing;
mod head;
mod head_writer;
pub mod hop_by_hop;
mod io;
pub mod origin;
mod outputs;
mod proxy;
pub mod proxy_protocol;
mod redirect;
pub mod request;
pub mod response;
pub mod routing;
mod session;
pub mod sim;
pub mod state;
pub mod timer;
pub mod upgrade;
mod wall_clock;
pub mod websocket;
mod websocket_tunnel;

pub use config::{
    Balance, Config, Forwarded, Limits, Pool, Route, Timeouts, UpstreamGroup, WebSocket,
};
pub use error::ProxyError;
pub use io::{
    ClientInfo, ConnectError, Event, Input, Output, RequestLog, Side, Target, TunnelEnd, TunnelLog,
};
pub use proxy::{Proxy, ProxyStatus};
pub use session::Session;
pub use wall_clock::{http_date, HttpDate, WallClock};
