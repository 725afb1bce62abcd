//! # runtime-common: what Switchyard's runtime adapters share
//!
//! Everything a runtime adapter needs that does not depend on the runtime, written
//! once and used by runtime-tokio and runtime-smol alike:
//!
//! | piece | where |
//! |---|---|
//! | the drive loop: one [`proxy_core::Session`] over a client stream, an upstream connection, a timer, a dial and the drain signal | `drive.rs` |
//! | per-side write queues, vectored writes, flush and shutdown steps, `Written` reports, the "cleanly idle" check for pooling | `peer.rs` |
//! | the last bytes before a FIN sent in its segment ([`send_before_fin`]) | `fin.rs` |
//! | the upstream keep-alive [`pool`] and its sweeper | `pool.rs` |
//! | the [`Context`]: the current configuration (a [`Generation`]: the core's `Proxy`, the [`Setup`], a pool), [`reload`](Context::reload), graceful [`drain`](Context::drain), count of live connections | `context.rs` |
//! | the accept loop with back-off and rate-limited error log ([`Context::serve_all`], and [`Context::serve_alongside`] on further threads with event loops of their own): per listener HTTP or layer 4 ([`ListenMode`]), TLS handshakes bounded by `client_head` | `serve.rs` |
//! | rustls configurations: certificates picked by SNI, upstream roots ([`tls`]) | `tls.rs` |
//! | Prometheus [`metrics`] and the admin listener ([`Context::serve_admin`]) | `metrics.rs`, `admin.rs` |
//! | the [`access_log`] and the `switchyard.toml` [`config_file`] (and its [`reload`](config_file::reload)) | |
//! | raising the open-file limit at start ([`raise_open_file_limit`]) | `open_files.rs` |
//! | listeners with an accept queue of 4,096 ([`bind_listener`], [`bind_listener_for`] a mode, [`bind_listeners_for`] one per thread in an `SO_REUSEPORT` group) | `listen.rs` |
//! | the ACK of a connection's first request sent with the response | `acks.rs` |
//! | binding each event-loop thread to a CPU of its own ([`allowed_cpus`], [`bind_this_thread`]) | `cpu_affinity.rs` |
//! | the binaries' log: stderr, written off the proxy's threads ([`init_logging`]) | `logging.rs` |
//!
//! Like the adapters, this crate makes no protocol decision: the session makes them
//! all, and this crate only moves bytes, time and connection events.
//!
//! ## Writing an adapter
//! An adapter supplies socket and timer glue only, through the small traits of
//! [`runtime`]: a [`Runtime`] (clock, timer, resolve and dial, TLS handshakes over
//! its TCP streams with its rustls crate, peer address and pool liveness check,
//! spawn), [`Transport`] for its streams (poll-style read, write,
//! flush and shutdown, all through `&self`), and [`Listener`] for its listener. It then
//! offers `Context::new(config)`, [`Context::serve_connection`] per accepted stream
//! and [`Context::serve_all`] over listeners, usually behind `serve`-style functions.
//!
//! ## The drive loop
//! Each connection is one task running the loop of `proxy_core`'s docs: carry out
//! every output the session has, in order; then wait for the first of the drain
//! signal, the session's deadline, the dial, write progress on either side and a read
//! on each side the session [wants](proxy_core::Session::wants_read) (writes before
//! reads, and the side polled first alternates so neither starves), and feed exactly
//! that in; on `Close`, flush for at most a second and drop both sockets. An idle
//! session's task is about 1 KiB and holds no read buffer.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use proxy_core;

pub mod access_log;
mod acks;
mod admin;
pub mod config_file;
mod context;
mod cpu_affinity;
mod drive;
mod fin;
mod listen;
mod logging;
pub mod metrics;
mod open_files;
mod peer;
mod pipe;
mod poll_clock;
pub mod pool;
mod proxy_header;
pub mod runtime;
mod serve;
mod setup;
mod signal;
mod thread_shard;
pub mod tls;
mod write_queue;

pub use acks::acknowledge_now;
pub use context::{Context, Generation};
pub use cpu_affinity::{allowed_cpus, bind_this_thread};
pub use drive::MAX_READ;
pub use fin::send_before_fin;
pub use listen::{bind_listener, bind_listener_for, bind_listeners_for, LISTEN_BACKLOG};
pub use logging::{flush_logs, init_logging, LogFormat};
pub use open_files::{raise_open_file_limit, raise_open_file_limit_and_log};
pub use runtime::{sleep, timeout, Conn, Listener, Pipe, Runtime, Transport, Upstream};
pub use rustls;
pub use setup::{ListenMode, ListenerSetup, Setup, UpstreamTls};
pub use thread_shard::take_from_own_shard_only;
