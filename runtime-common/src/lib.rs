//! # runtime-common: what Switchyard's runtime adapters share
//!
//! Everything a runtime adapter needs that does not depend on the runtime, written
//! once: the drive loop (`drive.rs`: one [`proxy_core::Session`] over two streams, a
//! timer, a dial and the drain signal), the per-side write queues and their reports to
//! the session, the upstream keep-alive [`pool`], the [`Context`] with graceful drain,
//! the accept loop ([`Context::serve_all`]), the [`access_log`] and the
//! [`config_file`]. An adapter (runtime-tokio, runtime-smol) supplies only socket and
//! timer glue: the three small traits of [`runtime`].
//!
//! Like the adapters, this crate makes no protocol decision.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use proxy_core;

pub mod access_log;
pub mod config_file;
mod context;
mod drive;
mod peer;
pub mod pool;
pub mod runtime;
mod serve;

pub use context::Context;
pub use drive::MAX_READ;
pub use runtime::{sleep, Listener, Runtime, Transport};
