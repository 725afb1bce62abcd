//! Accepting connections, and shutting down gracefully: the shared accept loop and
//! [`Context`] of `runtime_common`, on smol.

use crate::runtime::{Smol, Tcp};
use crate::transport::Shared;
use proxy_core::{ClientInfo, Config};
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::debug;

/// State shared by every session of one proxy: the configuration, the upstream
/// [`pool`](crate::pool), the runtime tasks are spawned on, the drain signal, the
/// count of live connections.
///
/// `Context::new(config)` spawns on smol's global executor;
/// `Context::with_runtime(config, Smol::on(executor))` on yours.
/// [`drain`](runtime_common::Context::drain) is the graceful shutdown.
pub type Context = runtime_common::Context<Smol>;

/// Accepts connections until `shutdown` completes, each served by a task on smol's
/// global executor; then stops accepting, sends every live session
/// `Input::Drain { deadline: now + config.timeouts.shutdown }`, waits for all sessions
/// to end (at most until the deadline + 1s), and returns.
///
/// Accept errors (EMFILE and the like) are logged and retried after a short pause, so
/// this returns `Ok` today; the `Result` leaves room for fatal errors.
pub async fn serve(
    listener: TcpListener,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_all(vec![listener], config, shutdown).await
}

/// [`serve`] over several listeners sharing one configuration and pool. For another
/// executor, `Arc::new(Context::with_runtime(config, runtime)).serve_all(...)`.
pub async fn serve_all(
    listeners: Vec<TcpListener>,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let ctx = Arc::new(Context::new(config));
    ctx.serve_all(listeners, shutdown).await;
    Ok(())
}

/// Drives one accepted TCP connection to its end over its async-io socket directly
/// (the cheapest path: no lock).
pub async fn serve_tcp(stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "set_nodelay on client connection");
    }
    let client = ClientInfo {
        addr: Some(peer),
        tls: false,
        redirect_to_https: None,
    };
    ctx.serve_connection(Tcp::from(stream), client).await;
}

/// Drives one accepted stream of any kind to its end: anything implementing
/// futures-io's `AsyncRead + AsyncWrite` (a TLS stream, async-std's `TcpStream`, a Unix
/// socket, an in-memory pipe). Embedders bring their own accept loop; see the crate
/// docs for one.
///
/// The stream's `poll_close` is how its write half is shut down, so it must end the
/// write half (a FIN for TCP; TLS sends close_notify first). For a stream whose close
/// only flushes, such as async-std's `TcpStream`, wrap it in [`OnClose`](crate::OnClose).
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
