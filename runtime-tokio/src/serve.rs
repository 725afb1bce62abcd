//! Accepting connections, and shutting down gracefully: the shared accept loop and
//! [`Context`] of `runtime_common`, on tokio.
//!
//! A [`Context`] is what all sessions of one proxy share: the configuration, the
//! upstream pool, the drain signal and the count of live connections. [`serve`] is the
//! ready-made accept loop; embedders with their own (TLS, Unix sockets, …) call
//! [`serve_connection`] per stream and [`Context::drain`] on shutdown.

use crate::runtime::Tokio;
use crate::transport::Shared;
use proxy_core::{ClientInfo, Config};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// State shared by every session of one proxy: the configuration, the upstream
/// [`pool`](crate::pool), the drain signal, the count of live connections.
///
/// `Context::new(config)`; [`drain`](runtime_common::Context::drain) is the graceful
/// shutdown.
pub type Context = runtime_common::Context<Tokio>;

/// Accepts connections until `shutdown` completes; then stops accepting, sends every
/// live session `Input::Drain { deadline: now + config.timeouts.shutdown }`, waits for
/// all sessions to end (at most until the deadline + 1s), and returns.
///
/// Accept errors (EMFILE and the like) are logged and retried after a short pause, so
/// this returns `Ok` today; the `Result` leaves room for fatal errors.
pub async fn serve(
    listener: TcpListener,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    serve_all(vec![listener], config, shutdown).await
}

/// [`serve`] over several listeners sharing one configuration and pool.
pub async fn serve_all(
    listeners: Vec<TcpListener>,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let ctx = Arc::new(Context::new(config));
    ctx.serve_all(listeners, shutdown).await;
    Ok(())
}

/// Drives one accepted TCP connection to its end, waiting on socket readiness
/// directly (the cheapest path; no lock, no buffer while idle).
pub async fn serve_tcp(stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "set_nodelay on client connection");
    }
    let client = ClientInfo {
        addr: Some(peer),
        tls: false,
        redirect_to_https: None,
    };
    ctx.serve_connection(stream, client).await;
}

/// Drives one accepted stream of any kind (TLS, Unix socket, in-memory) to its end.
/// Embedders bring their own accept loop; see the crate docs for one.
///
/// Socket errors are fed to the session and end in its log events, so this returns
/// `Ok` today; the `Result` leaves room for setup errors.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    client: ClientInfo,
    ctx: &Context,
) -> io::Result<()> {
    ctx.serve_connection(Shared::new(stream), client).await;
    Ok(())
}
