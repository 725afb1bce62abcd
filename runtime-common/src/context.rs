//! What all sessions of one proxy share: the current configuration (a
//! [`Generation`]: the core's [`Proxy`], the runtime's [`Setup`], an upstream pool),
//! the runtime, the drain signal, the count of live connections and the metrics.
//!
//! A reload swaps the current generation: new connections get the new one, and every
//! session keeps the generation it started with. The generation a reload replaced
//! *retires*: its pool closes, its sessions that are not tunnels are drained at once
//! (in-flight requests finish, idle keep-alive connections close), and its tunnels
//! run on until they end or `timeouts.shutdown` after the reload, when they are
//! drained too (WebSocket: `Close 1001 "going away"`).

use crate::drive::drive;
use crate::metrics::{Gauges, Metrics};
use crate::pool::Pool;
use crate::runtime::{sleep, Runtime, Transport};
use crate::serve::AcceptErrors;
use crate::setup::{ListenMode, Setup};
use crate::signal::{Registration, Signal};
use proxy_core::{ClientInfo, Config, Proxy, WallClock};
use std::collections::BTreeSet;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// How long past the drain deadline shutdown waits for sessions to finish closing.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// State shared by every session of one proxy.
pub struct Context<R: Runtime> {
    runtime: R,
    current: RwLock<Arc<Generation<R>>>,
    /// Every generation that may still have sessions, for gauges and the drain.
    generations: Mutex<Vec<Weak<Generation<R>>>>,
    /// Set once draining started.
    drain: OnceLock<Instant>,
    /// Notified when draining starts and when a reload retires a generation: one
    /// registration per session covers both.
    signal: Signal,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    /// Dates responses that lack `Date`, for every generation; set each second by a
    /// task that starts with the first session (see [`tick_wall_clock`]).
    clock: WallClock,
    clock_ticking: AtomicBool,
    /// Throttles accept-error lines over every thread's accept loops.
    pub(crate) accept_errors: Mutex<AcceptErrors>,
}

/// One configuration and what its sessions share.
pub struct Generation<R: Runtime> {
    pub(crate) proxy: Proxy,
    pub(crate) setup: Setup,
    pub(crate) pool: Arc<Pool<R>>,
    /// When its sessions must be drained by, once a reload replaced it.
    retire: OnceLock<Instant>,
}

impl<R: Runtime> Generation<R> {
    fn new(setup: Setup, runtime: &R, clock: &WallClock) -> Self {
        Generation {
            proxy: Proxy::with_wall_clock(setup.config.clone(), clock.clone()),
            pool: Pool::new(setup.config.pool.clone(), runtime.clone()),
            setup,
            retire: OnceLock::new(),
        }
    }

    /// The core's shared side of this configuration.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// This configuration.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }
}

/// Sessions being driven right now.
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    /// Notified when `count` drops to zero.
    none_left: Signal,
}

/// Counts a session as live until it drops.
pub(crate) struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_all();
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
        Context::with_setup(Setup::new(config), runtime)
    }

    /// A context for `setup` (listener modes, TLS, upstream TLS), on `runtime`.
    pub fn with_setup(setup: Setup, runtime: R) -> Self {
        let clock = WallClock::default();
        let first = Arc::new(Generation::new(setup, &runtime, &clock));
        Context {
            generations: Mutex::new(vec![Arc::downgrade(&first)]),
            current: RwLock::new(first),
            runtime,
            drain: OnceLock::new(),
            signal: Signal::default(),
            live: Arc::default(),
            metrics: Arc::default(),
            clock,
            clock_ticking: AtomicBool::new(false),
            accept_errors: Mutex::default(),
        }
    }

    /// The configuration new sessions get.
    pub fn config(&self) -> Arc<Config> {
        self.current().setup.config.clone()
    }

    /// The current generation: what new sessions get.
    pub fn current(&self) -> Arc<Generation<R>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The upstream keep-alive pool of the current configuration.
    pub fn pool(&self) -> Arc<Pool<R>> {
        self.current().pool.clone()
    }

    /// The runtime sessions are timed and spawned on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// How many connections are being served right now.
    pub fn live_connections(&self) -> usize {
        self.live.count.load(Ordering::Acquire)
    }

    /// Every metric, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let now = self.runtime.now();
        let current = self.current();
        let mut proxies = vec![current.proxy.status(now)];
        for generation in self.live_generations() {
            if !Arc::ptr_eq(&generation, &current) {
                proxies.push(generation.proxy.status(now));
            }
        }
        let gauges = Gauges {
            connections: self.live_connections(),
            proxies,
        };
        self.metrics.render(&gauges)
    }

    /// Drives one accepted stream (plain HTTP, whatever the listener setup says) to
    /// its end, counted as live while it runs.
    pub async fn serve_connection<C: Transport<R>>(&self, stream: C, client: ClientInfo) {
        let live = self.enter();
        let generation = self.current();
        drive(stream, client, self, generation, ListenMode::Http, (), live).await;
    }

    /// Swaps in a new configuration: new connections get it; sessions already running
    /// keep theirs, and the replaced configuration retires (see the module docs). A
    /// configuration that fails [`Config::validate`], or that listens elsewhere than
    /// the current one (that needs a restart), is refused and the current one stays.
    pub fn reload(&self, setup: Setup) -> Result<(), String> {
        let result = self.try_reload(setup);
        self.metrics.reloaded(result.is_ok());
        result
    }

    fn try_reload(&self, setup: Setup) -> Result<(), String> {
        setup.config.validate()?;
        let old = self.current();
        let addresses = |s: &Setup| {
            s.listeners
                .iter()
                .map(|l| l.address)
                .collect::<BTreeSet<_>>()
        };
        let (before, after) = (addresses(&old.setup), addresses(&setup));
        if before != after {
            return Err(format!(
                "listen addresses changed ({before:?} → {after:?}): restart switchyard to change them"
            ));
        }
        if self.drain.get().is_some() {
            return Err("shutting down".into());
        }
        let new = Arc::new(Generation::new(setup, &self.runtime, &self.clock));
        {
            let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
            generations.retain(|g| g.strong_count() > 0);
            generations.push(Arc::downgrade(&new));
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new;
        let deadline = self.runtime.now() + old.setup.config.timeouts.shutdown;
        let _ = old.retire.set(deadline);
        self.signal.notify_all();
        old.pool.close();
        info!(
            tunnels_kept = old.proxy.status(self.runtime.now()).tunnels,
            "configuration reloaded: new connections use it; open tunnels keep the old one until they end or {:?} from now",
            old.setup.config.timeouts.shutdown
        );
        Ok(())
    }

    fn live_generations(&self) -> Vec<Arc<Generation<R>>> {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        generations.iter().filter_map(Weak::upgrade).collect()
    }

    /// Starts a graceful shutdown: closes the upstream pools, sends every session
    /// (present and future) `Input::Drain { deadline: now + config.timeouts.shutdown }`,
    /// and waits until all sessions ended or the deadline plus one second passed.
    /// Stop accepting before calling this.
    pub async fn drain(&self) {
        let deadline = *self
            .drain
            .get_or_init(|| self.runtime.now() + self.config().timeouts.shutdown);
        self.signal.notify_all();
        for generation in self.live_generations() {
            generation.pool.close();
        }
        let mut give_up = pin!(self.runtime.timer(deadline + DRAIN_GRACE));
        let live = &self.live;
        let mut registration = Registration::default();
        let all_done = poll_fn(|cx| {
            if R::poll_timer(give_up.as_mut(), cx).is_ready() {
                return Poll::Ready(false);
            }
            let none_left = || (live.count.load(Ordering::Acquire) == 0).then_some(());
            (live.none_left)
                .poll_wait(&mut registration, cx, none_left)
                .map(|()| true)
        })
        .await;
        live.none_left.cancel(&mut registration);
        if !all_done {
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
        registration: &mut Registration,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Instant> {
        (self.signal).poll_wait(registration, cx, || self.drain.get().copied())
    }

    /// Ready once draining started (if `want_drain`) or `generation` was retired (if
    /// `want_retire`), with the deadlines of those that happened.
    pub(crate) fn poll_signals(
        &self,
        generation: &Generation<R>,
        (want_drain, want_retire): (bool, bool),
        registration: &mut Registration,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<(Option<Instant>, Option<Instant>)> {
        (self.signal).poll_wait(registration, cx, || {
            let drain = self.drain.get().copied().filter(|_| want_drain);
            let retire = generation.retire.get().copied().filter(|_| want_retire);
            (drain.is_some() || retire.is_some()).then_some((drain, retire))
        })
    }

    /// Gives up a place waiting for [`poll_signals`](Self::poll_signals).
    pub(crate) fn cancel_signal(&self, registration: &mut Registration) {
        self.signal.cancel(registration);
    }

    /// Counts a session as live until the returned guard drops.
    pub(crate) fn enter(&self) -> LiveGuard {
        // Read first: a swap would write the shared flag on every accept.
        let ticking = &self.clock_ticking;
        if !ticking.load(Ordering::Relaxed) && !ticking.swap(true, Ordering::Relaxed) {
            let live = Arc::downgrade(&self.live);
            (self.runtime).spawn(tick_wall_clock(
                self.clock.clone(),
                live,
                self.runtime.clone(),
            ));
        }
        self.live.count.fetch_add(1, Ordering::AcqRel);
        LiveGuard(self.live.clone())
    }
}

/// Keeps `clock` at the wall-clock second (the core reads no clock), waking just
/// after each second begins, until the context (`live`) is gone.
async fn tick_wall_clock<R: Runtime>(clock: WallClock, live: Weak<Live>, runtime: R) {
    while live.strong_count() > 0 {
        let since_epoch =
            (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)).unwrap_or_default();
        clock.set(since_epoch.as_secs());
        let into_second = Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
        sleep(&runtime, Duration::from_secs(1).saturating_sub(into_second)).await;
    }
}
