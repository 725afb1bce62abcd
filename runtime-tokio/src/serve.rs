//! Accepting connections, and shutting down gracefully.
//!
//! A [`Context`] is what all sessions of one proxy share: the configuration, the
//! upstream pool, the drain signal and the count of live connections. [`serve`] is the
//! ready-made accept loop; embedders with their own (TLS, Unix sockets, …) call
//! [`serve_connection`] per stream and [`Context::drain`] on shutdown.

use crate::drive::{drive, now};
use crate::pool::Pool;
use crate::transport::Shared;
use proxy_core::{ClientInfo, Config};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Pause after an accept error such as EMFILE, so a full fd table is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one accept-error line per this long.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long past the drain deadline shutdown waits for sessions to finish closing.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// State shared by every session of one proxy.
pub struct Context {
    config: Arc<Config>,
    pool: Arc<Pool>,
    /// `Some(deadline)` once draining started.
    drain: watch::Sender<Option<Instant>>,
    /// Sessions being driven right now.
    live: Arc<watch::Sender<usize>>,
}

impl Context {
    /// A context for sessions that use `config`.
    pub fn new(config: Arc<Config>) -> Context {
        Context {
            pool: Pool::new(config.pool.clone()),
            config,
            drain: watch::Sender::new(None),
            live: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The configuration every session gets.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The upstream keep-alive pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// How many connections are being served right now.
    pub fn live_connections(&self) -> usize {
        *self.live.borrow()
    }

    /// Starts a graceful shutdown: closes the upstream pool, sends every session
    /// (present and future) `Input::Drain { deadline: now + config.timeouts.shutdown }`,
    /// and waits until all sessions ended or the deadline plus one second passed.
    /// Stop accepting before calling this.
    pub async fn drain(&self) {
        let deadline = now() + self.config.timeouts.shutdown;
        self.drain.send_replace(Some(deadline));
        self.pool.close();
        let mut live = self.live.subscribe();
        let all_done = live.wait_for(|&live| live == 0);
        let give_up = tokio::time::Instant::from_std(deadline + DRAIN_GRACE);
        if tokio::time::timeout_at(give_up, all_done).await.is_err() {
            warn!(
                live = self.live_connections(),
                "shutdown deadline passed; dropping remaining connections"
            );
        }
    }

    /// Subscribes one session to the drain signal.
    pub(crate) fn drain_signal(&self) -> watch::Receiver<Option<Instant>> {
        self.drain.subscribe()
    }

    /// Counts a session as live until the returned guard drops.
    fn enter(&self) -> LiveGuard {
        self.live.send_modify(|live| *live += 1);
        LiveGuard(self.live.clone())
    }
}

struct LiveGuard(Arc<watch::Sender<usize>>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|live| *live -= 1);
    }
}

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
    let mut accepting = tokio::task::JoinSet::new();
    for listener in listeners {
        accepting.spawn(accept_loop(listener, ctx.clone()));
    }
    shutdown.await;
    accepting.shutdown().await; // drops the listeners: no new connections from here on
    info!(
        live = ctx.live_connections(),
        "shutting down: draining connections"
    );
    ctx.drain().await;
    Ok(())
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Context>) {
    let mut errors = ErrorLog::default();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                // Counted before the task starts, so a drain right now waits for it.
                let live = ctx.enter();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    drive_tcp(stream, addr, &ctx).await;
                    drop(live);
                });
            }
            // The connection died in the backlog: nothing wrong with us.
            Err(e) if is_connection_error(&e) => debug!(error = %e, "accept: connection lost"),
            // EMFILE and friends: give the system a moment; never spin.
            Err(e) => {
                errors.failed(&e);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Logs the first accept error of a burst, then at most one line per
/// [`ACCEPT_ERROR_LOG_INTERVAL`] with the count of those not logged.
#[derive(Default)]
struct ErrorLog {
    quiet_until: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl ErrorLog {
    fn failed(&mut self, e: &io::Error) {
        let now = tokio::time::Instant::now();
        if self.quiet_until.is_some_and(|until| now < until) {
            self.unlogged += 1;
            return;
        }
        warn!(error = %e, more_since_last_line = self.unlogged, "accept failed; backing off");
        self.quiet_until = Some(now + ACCEPT_ERROR_LOG_INTERVAL);
        self.unlogged = 0;
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}

/// Drives one accepted TCP connection to its end, waiting on socket readiness
/// directly (the cheapest path; no lock, no buffer while idle).
pub async fn serve_tcp(stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    let _live = ctx.enter();
    drive_tcp(stream, peer, ctx).await;
}

async fn drive_tcp(stream: TcpStream, peer: SocketAddr, ctx: &Context) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "set_nodelay on client connection");
    }
    drive(
        stream,
        ClientInfo {
            addr: Some(peer),
            tls: false,
        },
        ctx,
    )
    .await;
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
    let _live = ctx.enter();
    drive(Shared::new(stream), client, ctx).await;
    Ok(())
}
