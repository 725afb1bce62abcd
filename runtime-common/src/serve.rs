//! The ready-made accept loop, and shutting down gracefully.

use crate::context::{Context, Generation, LiveGuard};
use crate::drive::drive;
use crate::metrics::LogThrottle;
use crate::proxy_header;
use crate::runtime::{sleep, timeout, Listener, Runtime, Transport};
use crate::setup::ListenMode;
use crate::signal::Registration;
use bytes::Bytes;
use proxy_core::proxy_protocol::{self, Source};
use proxy_core::ClientInfo;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Pause after an accept error such as EMFILE, so a full fd table is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one accept-error line per this long.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

impl<R: Runtime> Context<R> {
    /// Accepts connections on every listener, one spawned task per connection, until
    /// `shutdown` completes. Each listener serves as the current configuration's
    /// [`ListenerSetup`](crate::ListenerSetup) for its address says (HTTP or layer 4,
    /// TLS or not; plain HTTP if none), looked up per connection so a reload applies
    /// to the next one. Then it stops accepting (the listeners are dropped), sends
    /// every live session `Input::Drain { deadline: now + config.timeouts.shutdown }`,
    /// and waits for all sessions to end (at most until the deadline + 1s).
    ///
    /// Accept errors (EMFILE and the like) are logged and retried after a short pause.
    pub async fn serve_all<L: Listener<R>>(
        self: &Arc<Self>,
        listeners: Vec<L>,
        shutdown: impl Future<Output = ()>,
    ) {
        self.accept_until(listeners, shutdown).await;
        info!(
            live = self.live_connections(),
            "shutting down: draining connections"
        );
        self.drain().await;
    }

    /// What each further worker thread runs beside [`serve_all`](Self::serve_all):
    /// accepts on its own listeners (its sockets of the same addresses, from
    /// [`bind_listeners_for`](crate::bind_listeners_for)) until a drain starts, then
    /// waits for it like `serve_all`. A connection is served on the thread that
    /// accepted it, so its task never moves: one event loop per thread, as nginx's
    /// workers have, with no work-stealing queues or cross-thread wake-ups per
    /// request.
    pub async fn serve_alongside<L: Listener<R>>(self: &Arc<Self>, listeners: Vec<L>) {
        let mut registration = Registration::default();
        let draining = poll_fn(|cx| self.poll_drain(&mut registration, cx).map(drop));
        self.accept_until(listeners, draining).await;
        self.drain().await;
    }

    /// Accepts on every listener until `shutdown` completes; the listeners drop then.
    async fn accept_until<L: Listener<R>>(
        self: &Arc<Self>,
        listeners: Vec<L>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut accepting: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = listeners
            .into_iter()
            .map(|listener| Box::pin(accept_loop(listener, self.clone())) as _)
            .collect();
        let mut shutdown = pin!(shutdown);
        poll_fn(|cx| {
            for accept in &mut accepting {
                let _ = accept.as_mut().poll(cx); // never ends
            }
            shutdown.as_mut().poll(cx)
        })
        .await;
    }
}

async fn accept_loop<R: Runtime, L: Listener<R>>(listener: L, ctx: Arc<Context<R>>) {
    let local = listener.local_addr().ok();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                // Counted before the task starts, so a drain right now waits for it.
                let live = ctx.enter();
                ctx.metrics().accepted();
                let generation = ctx.current();
                // Served as the listener's setup says (plain HTTP if it has none).
                let listener = local.and_then(|local| generation.setup.listener(local));
                let mode = listener.map_or(ListenMode::Http, |l| l.mode.clone());
                let tls = listener.and_then(|l| l.tls.clone());
                let proxy_protocol = listener.is_some_and(|l| l.proxy_protocol);
                let rt = ctx.runtime();
                // Named in the header sent upstream, for a layer-4 listener that sends one.
                let local = match &mode {
                    ListenMode::Tcp {
                        send_proxy: Some(_),
                        ..
                    } => R::local_addr(&stream),
                    _ => None,
                };
                let deadline = rt.now() + generation.setup.config.timeouts.client_head;
                let accepted = Accepted {
                    ctx: ctx.clone(),
                    generation,
                    mode,
                    local,
                    live,
                };
                match (tls, proxy_protocol) {
                    // The task is the drive loop itself: an idle connection costs
                    // no more than the loop's own state.
                    (None, false) => {
                        let client = plain_client(addr, &accepted.mode);
                        accepted.spawn(stream, client);
                    }
                    (tls, true) => rt.spawn(serve_proxied(stream, addr, tls, deadline, accepted)),
                    (Some(config), false) => {
                        rt.spawn(serve_tls(stream, addr, config, deadline, accepted))
                    }
                }
            }
            // The connection died in the backlog: nothing wrong with us.
            Err(e) if is_connection_error(&e) => debug!(error = %e, "accept: connection lost"),
            // EMFILE and friends: give the system a moment; never spin.
            Err(e) => {
                let now = ctx.runtime().now();
                // (Poisoned only if a log line panicked; the count is still good.)
                (ctx.accept_errors.lock())
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .failed(&e, now);
                sleep(ctx.runtime(), ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Who a plain (not TLS) connection from `addr` is, on a listener of `mode`.
fn plain_client(addr: SocketAddr, mode: &ListenMode) -> ClientInfo {
    ClientInfo {
        addr: Some(addr),
        tls: false,
        redirect_to_https: match mode {
            ListenMode::RedirectHttps { port } => Some(*port),
            _ => None,
        },
    }
}

/// An accepted connection and how its listener serves it, until its session starts.
struct Accepted<R: Runtime> {
    ctx: Arc<Context<R>>,
    /// The configuration it is served with (the current one when it was accepted).
    generation: Arc<Generation<R>>,
    mode: ListenMode,
    /// Its own address at the proxy, for the PROXY header a layer-4 listener sends
    /// upstream (`None` for any other).
    local: Option<SocketAddr>,
    live: LiveGuard,
}

impl<R: Runtime> Accepted<R> {
    /// Runs the session over `stream` for `client` as a task of its own. (The task
    /// of a connection whose session starts after a TLS handshake or a PROXY header
    /// ends here, so that the session's task does not carry their state too.)
    fn spawn<C: Transport<R> + 'static>(self, stream: C, client: ClientInfo) {
        let rt = self.ctx.runtime().clone();
        let (ctx, generation, mode) = (self.ctx, self.generation, self.mode);
        match (&mode, client.addr.zip(self.local)) {
            (
                ListenMode::Tcp {
                    send_proxy: Some(version),
                    ..
                },
                Some((from, to)),
            ) => {
                let header = Bytes::from(proxy_protocol::encode(*version, from, to));
                rt.spawn(drive(
                    stream, client, ctx, generation, mode, header, self.live,
                ))
            }
            _ => rt.spawn(drive(stream, client, ctx, generation, mode, (), self.live)),
        }
    }
}

/// Reads the PROXY protocol header (by `deadline`: `timeouts.client_head` after the
/// accept), then serves the connection, TLS or not, as the client it names (the
/// connection's own peer if it names none). A connection without a valid header is
/// closed unanswered: it may not be the load balancer's, and a client must not pick
/// its own address.
async fn serve_proxied<R: Runtime>(
    mut tcp: R::Tcp,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    deadline: Instant,
    accepted: Accepted<R>,
) {
    let (rt, metrics) = (accepted.ctx.runtime(), accepted.ctx.metrics());
    let addr = match timeout(rt, deadline, proxy_header::read::<R>(&mut tcp)).await {
        Some(Ok(Source::Client(client))) => client,
        Some(Ok(Source::Unnamed)) => peer,
        Some(Err(e)) => return metrics.proxy_header_failed(peer, &e, rt.now()),
        None => {
            let late = "no PROXY header within timeouts.client_head";
            return metrics.proxy_header_failed(peer, &late, rt.now());
        }
    };
    match tls {
        Some(config) => serve_tls(tcp, addr, config, deadline, accepted).await,
        None => {
            let client = plain_client(addr, &accepted.mode);
            accepted.spawn(tcp, client)
        }
    }
}

/// Runs the TLS handshake (to be done by `deadline`: `timeouts.client_head` after the
/// accept), then the session.
async fn serve_tls<R: Runtime>(
    tcp: R::Tcp,
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    deadline: Instant,
    accepted: Accepted<R>,
) {
    let (rt, metrics) = (accepted.ctx.runtime(), accepted.ctx.metrics());
    let stream = match timeout(rt, deadline, rt.tls_accept(tcp, config)).await {
        Some(Ok(stream)) => {
            metrics.tls_handshake_done(R::tls_resumed(&stream));
            stream
        }
        Some(Err(e)) => {
            metrics.tls_handshake_failed();
            debug!(client = %addr, error = %e, "TLS handshake failed");
            return;
        }
        None => {
            metrics.tls_handshake_failed();
            debug!(client = %addr, "TLS handshake not done within timeouts.client_head; closed");
            return;
        }
    };
    let client = ClientInfo {
        addr: Some(addr),
        tls: true,
        redirect_to_https: None,
    };
    accepted.spawn(stream, client);
}

/// Logs the first accept error of a burst, then at most one line per
/// [`ACCEPT_ERROR_LOG_INTERVAL`] with the count of those not logged: one for every
/// thread's accept loops, which hit the same limit at once.
#[derive(Default)]
pub(crate) struct AcceptErrors(LogThrottle);

impl AcceptErrors {
    fn failed(&mut self, e: &io::Error, now: Instant) {
        if let Some(unlogged) = self.0.due(now, ACCEPT_ERROR_LOG_INTERVAL) {
            warn!(error = %e, more_since_last_line = unlogged, "accept failed; backing off");
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}
