//! What all sessions of one proxy share: the configuration, the upstream pool, the
//! runtime, the drain signal and the count of live connections.

use crate::drive::drive;
use crate::pool::Pool;
use crate::runtime::{Runtime, Transport};
use event_listener::{Event, EventListener};
use proxy_core::{ClientInfo, Config};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Poll};
use std::time::{Duration, Instant};
use tracing::warn;

/// How long past the drain deadline shutdown waits for sessions to finish closing.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// State shared by every session of one proxy.
pub struct Context<R: Runtime> {
    runtime: R,
    config: Arc<Config>,
    pool: Arc<Pool<R>>,
    /// Set once draining started.
    drain: OnceLock<Instant>,
    drain_started: Event,
    live: Arc<Live>,
}

/// Sessions being driven right now.
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    /// Notified when `count` drops to zero.
    none_left: Event,
}

/// Counts a session as live until it drops.
pub(crate) struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify(usize::MAX);
        }
    }
}

impl<R: Runtime + Default> Context<R> {
    /// A context for sessions that use `config`, on the runtime's default.
    pub fn new(config: Arc<Config>) -> Self {
        Context::with_runtime(config, R::default())
    }
}

impl<R: Runtime> Context<R> {
    /// A context for sessions that use `config`, spawning and timing on `runtime`.
    pub fn with_runtime(config: Arc<Config>, runtime: R) -> Self {
        Context {
            pool: Pool::new(config.pool.clone(), runtime.clone()),
            runtime,
            config,
            drain: OnceLock::new(),
            drain_started: Event::new(),
            live: Arc::default(),
        }
    }

    /// The configuration every session gets.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The upstream keep-alive pool.
    pub fn pool(&self) -> &Arc<Pool<R>> {
        &self.pool
    }

    /// The runtime sessions are timed and spawned on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// How many connections are being served right now.
    pub fn live_connections(&self) -> usize {
        self.live.count.load(Ordering::Acquire)
    }

    /// Drives one accepted stream to its end, counted as live while it runs.
    pub async fn serve_connection<C: Transport<R>>(&self, stream: C, client: ClientInfo) {
        let _live = self.enter();
        drive(stream, client, self).await;
    }

    /// Starts a graceful shutdown: closes the upstream pool, sends every session
    /// (present and future) `Input::Drain { deadline: now + config.timeouts.shutdown }`,
    /// and waits until all sessions ended or the deadline plus one second passed.
    /// Stop accepting before calling this.
    pub async fn drain(&self) {
        let deadline = *self
            .drain
            .get_or_init(|| self.runtime.now() + self.config.timeouts.shutdown);
        self.drain_started.notify(usize::MAX);
        self.pool.close();
        let mut give_up = pin!(self.runtime.timer(deadline + DRAIN_GRACE));
        let mut listener = None;
        let all_done = poll_fn(|cx| {
            if R::poll_timer(give_up.as_mut(), cx).is_ready() {
                return Poll::Ready(false);
            }
            let live = &self.live;
            let none_left = || (live.count.load(Ordering::Acquire) == 0).then_some(());
            wait_for(&live.none_left, &mut listener, cx, none_left).map(|()| true)
        });
        if !all_done.await {
            warn!(
                live = self.live_connections(),
                "shutdown deadline passed; dropping remaining connections"
            );
        }
    }

    /// Ready with the drain deadline once draining started. `listener` keeps the
    /// registration between polls.
    pub(crate) fn poll_drain(
        &self,
        listener: &mut Option<EventListener>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Instant> {
        wait_for(&self.drain_started, listener, cx, || {
            self.drain.get().copied()
        })
    }

    /// Counts a session as live until the returned guard drops.
    pub(crate) fn enter(&self) -> LiveGuard {
        self.live.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.live.clone())
    }
}

/// Ready with `check()`'s value once it has one; `event` is notified when it may.
fn wait_for<T>(
    event: &Event,
    listener: &mut Option<EventListener>,
    cx: &mut std::task::Context<'_>,
    mut check: impl FnMut() -> Option<T>,
) -> Poll<T> {
    loop {
        if let Some(value) = check() {
            *listener = None;
            return Poll::Ready(value);
        }
        match listener {
            Some(waiting) => {
                ready!(Pin::new(waiting).poll(cx));
                *listener = None;
            }
            None => *listener = Some(event.listen()),
        }
    }
}
