//! Tokio adapter (placeholder docs)
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use proxy_core;

pub mod access_log;
pub mod config_file;
mod drive;
mod peer;
pub mod pool;
mod serve;
mod transport;

pub use serve::{serve, serve_all, serve_connection, serve_tcp, Context};
