//! # runtime-smol: Switchyard on smol, async-std or any executor
//!
//! A thin adapter that runs [`proxy_core::Session`]s over futures-io streams
//! (`AsyncRead + AsyncWrite`: smol's and async-net's `TcpStream`, async-std's, TLS
//! streams) with async-io's reactor and timers. It makes no protocol decision, and it
//! has no drive loop of its own either: the loop, the write queues, the upstream
//! pool, the drain and the accept loop are `runtime_common`'s, shared with
//! runtime-tokio. This crate is the smol glue (`runtime.rs`, `transport.rs`).
//!
//! async-std runs on the same reactor (async-io); its users are served by this crate
//! through [`serve_connection`] and an executor of their choice ([`Smol::with_spawner`]).
//!
//! ## Serving
//! [`serve()`] is the whole proxy: accept, one task per connection on smol's global
//! executor, graceful drain on shutdown.
//!
//! ```no_run
//! use runtime_smol::proxy_core::Config;
//! use std::sync::Arc;
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let config = Config { upstream: "127.0.0.1:9000".into(), ..Config::default() };
//!         let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
//!         let shutdown = std::future::pending::<()>(); // a signal, in a real program
//!         runtime_smol::serve(listener, Arc::new(config), shutdown).await
//!     })
//! }
//! ```
//!
//! `examples/switchyard-smol.rs` runs it from the same TOML file as the `switchyard`
//! binary (`runtime_common::config_file`), on a [`smol::Executor`] with the file's
//! `threads`.
//!
//! ## Embedding: your own accept loop, your own executor
//! With TLS, a Unix socket or any other stream, bring the accept loop and hand each
//! stream to [`serve_connection`]. A [`Context`] holds what the sessions share (the
//! configuration, the upstream [`pool`], the executor, the drain signal, the count of
//! live connections); [`Context::drain`](runtime_common::Context::drain) is the
//! graceful shutdown.
//!
//! ```no_run
//! use runtime_smol::proxy_core::{ClientInfo, Config};
//! use runtime_smol::{serve_connection, Context, Smol};
//! use smol::{future, Executor, Timer};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! fn main() -> std::io::Result<()> {
//!     // Two threads run the sessions; this one runs the accept loop.
//!     let executor = Arc::new(Executor::new());
//!     for _ in 0..2 {
//!         let executor = executor.clone();
//!         std::thread::spawn(move || smol::block_on(executor.run(future::pending::<()>())));
//!     }
//!     let config = Config { upstream: "127.0.0.1:9000".into(), ..Config::default() };
//!     let ctx = Arc::new(Context::with_runtime(Arc::new(config), Smol::on(executor.clone())));
//!     smol::block_on(async {
//!         let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
//!         let mut shutdown = Timer::after(Duration::from_secs(3600)); // a signal, really
//!         loop {
//!             let accept = async { Some(listener.accept().await) };
//!             let stop = async { (&mut shutdown).await; None };
//!             let (stream, addr) = match future::or(accept, stop).await {
//!                 Some(Ok(accepted)) => accepted,
//!                 Some(Err(e)) => {
//!                     // EMFILE and the like: back off rather than spin.
//!                     eprintln!("accept: {e}");
//!                     Timer::after(Duration::from_millis(100)).await;
//!                     continue;
//!                 }
//!                 None => break,
//!             };
//!             // A TLS handshake would go here (then `tls: true`).
//!             let client = ClientInfo { addr: Some(addr), ..ClientInfo::default() };
//!             let ctx = ctx.clone();
//!             executor
//!                 .spawn(async move { serve_connection(stream, client, &ctx).await })
//!                 .detach();
//!         }
//!         drop(listener); // stop accepting
//!         ctx.drain().await; // every session gets `Input::Drain`; wait for them to end
//!         Ok(())
//!     })
//! }
//! ```
//!
//! For a plain smol `TcpStream`, [`serve_tcp`] is the cheaper path: it reads and
//! writes the async-io socket directly instead of sharing the stream between a reader
//! and a writer behind a lock.
//!
//! ## On async-std
//! The same, with async-std's executor and `TcpStream`. Its `poll_close` only flushes,
//! so [`OnClose`] gives it the write-half shutdown the sessions need:
//!
//! ```no_run
//! use async_std::net::{TcpListener, TcpStream};
//! use runtime_smol::proxy_core::{ClientInfo, Config};
//! use runtime_smol::{serve_connection, Context, OnClose, Smol};
//! use std::net::Shutdown;
//! use std::sync::Arc;
//!
//! #[async_std::main]
//! async fn main() -> std::io::Result<()> {
//!     let config = Config { upstream: "127.0.0.1:9000".into(), ..Config::default() };
//!     let runtime = Smol::with_spawner(|task| drop(async_std::task::spawn(task)));
//!     let ctx = Arc::new(Context::with_runtime(Arc::new(config), runtime));
//!     let listener = TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (stream, addr) = listener.accept().await?; // (a real loop backs off)
//!         stream.set_nodelay(true)?;
//!         let stream = OnClose::new(stream, |s: &mut TcpStream| s.shutdown(Shutdown::Write));
//!         let client = ClientInfo { addr: Some(addr), ..ClientInfo::default() };
//!         let ctx = ctx.clone();
//!         async_std::task::spawn(async move { serve_connection(stream, client, &ctx).await });
//!     }
//! }
//! ```
//!
//! ## The drive loop
//! Each connection runs the loop of `proxy_core`'s docs, as written once in
//! `runtime_common` (`drive.rs`): carry out every output (`Send` queues bytes on a
//! side, `ShutdownWrite` closes a side's write half once its queue is written,
//! `Connect` takes a pooled connection or dials with `TCP_NODELAY`, `ReleaseUpstream`
//! pools or closes, `Event` is an access log line, `Close` flushes for at most 1 s),
//! then wait for the first of: the drain signal, the session's deadline (an async-io
//! timer), the dial, write progress, a readable side the session wants, and feed
//! exactly that in.
//!
//! ## Memory
//! An idle connection holds no read buffer: futures-io reads into initialized memory,
//! so reads land in one scratch buffer per thread and only what arrived is copied out,
//! into an exact-size [`bytes::Bytes`]; a read that finds nothing allocates nothing.
//! The write queues hold only what the session sent and the stream has not taken yet,
//! which the session's flow control bounds by `buffer_size` per direction.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use proxy_core;
pub use runtime_common::{access_log, config_file};

mod on_close;
pub mod pool;
mod runtime;
mod serve;
mod transport;

pub use on_close::OnClose;
pub use runtime::{Smol, SmolTimer, Task, Tcp, TlsClient, TlsServer};
pub use runtime_common::{metrics, tls, ListenMode, ListenerSetup, Setup, UpstreamTls};
pub use serve::{serve, serve_all, serve_connection, serve_tcp, Context};
pub use transport::{Shared, TcpIo};

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_core::ClientInfo;
    use std::sync::Arc;

    /// The whole per-connection task (session, sockets, timer, what it waits on) is
    /// what an idle connection costs besides the kernel's socket buffers.
    #[test]
    fn an_idle_session_task_stays_under_one_and_a_half_kib() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = smol::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let ctx = Context::new(Arc::new(proxy_core::Config::default()));
            let task = ctx.serve_connection(Tcp::from(client), ClientInfo::default());
            let size = std::mem::size_of_val(&task);
            assert!(size <= 1536, "the session task is {size} bytes");
        })
    }

    /// The pool's liveness check on async-io sockets: a quiet connection is kept, one
    /// the upstream closed is not handed out.
    #[test]
    fn the_pool_hands_out_only_quiet_connections() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let pool = pool::Pool::new(proxy_core::Pool::default(), Smol::global());
            let (quiet, closed) = (
                Tcp::from(smol::net::TcpStream::connect(addr).await.unwrap()),
                Tcp::from(smol::net::TcpStream::connect(addr).await.unwrap()),
            );
            let (_keep, _) = listener.accept().await.unwrap();
            let (theirs, _) = listener.accept().await.unwrap();
            pool.put("up:1", runtime_common::Conn::Plain(quiet));
            pool.put("gone:1", runtime_common::Conn::Plain(closed));
            drop(theirs);
            smol::Timer::after(std::time::Duration::from_millis(20)).await;
            assert!(pool.take("up:1").is_some());
            assert!(pool.take("gone:1").is_none());
            assert_eq!(pool.idle_count(), 0);
        })
    }
}
