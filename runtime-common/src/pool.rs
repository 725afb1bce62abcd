//! Upstream keep-alive pool: idle connections by key (the address, marked when the
//! connection is TLS), newest first, bounded in age (`pool.idle_timeout`) and, once
//! load falls, in count (`pool.max_idle` per address).
//!
//! Every connection released while the load lasts is kept, however many: each was in
//! use a moment ago and the next request needs it again. Closing the ones over
//! `max_idle` at once (as nginx's `keepalive` does) would make a proxy with more
//! exchanges in flight than `max_idle` dial a fresh upstream connection for a large
//! share of its requests (an eighth to a fifth of them at twice `max_idle`, measured),
//! and leave as many sockets in TIME_WAIT. Handing out the newest first leaves the
//! surplus at the old end of the list; the sweeper closes what of it went a whole
//! sweep interval without being needed.
//!
//! The core decides *whether* a connection may be reused (`ReleaseUpstream { reusable }`);
//! the pool only keeps it. A connection the upstream closed (or wrote to) while idle is
//! stale and is dropped when found: on hand-out, and by a sweeper task that runs while
//! the pool is not empty, so idle sockets neither outlive `idle_timeout` nor sit in
//! CLOSE_WAIT.

use crate::runtime::{sleep, Conn, Runtime, Upstream};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Idle upstream connections, shared by every session of one
/// [`Context`](crate::Context).
pub struct Pool<R: Runtime> {
    runtime: R,
    config: proxy_core::Pool,
    inner: Mutex<Inner<Upstream<R>>>,
}

struct Inner<T> {
    /// Keyed with FxHash: every request hashes its key twice (take, then put), the
    /// keys come from the configuration rather than from clients (no flooding to
    /// fear), and SipHash cost more than the rest of the pool's work together.
    idle: FxHashMap<String, Vec<Idle<T>>>,
    sweeping: bool,
    /// Shutting down: nothing is kept any more.
    closed: bool,
}

struct Idle<T> {
    stream: T,
    since: Instant,
    /// The peer address, kept from the dial so that reuse needs no `getpeername`.
    peer: Option<SocketAddr>,
}

impl<R: Runtime> Pool<R> {
    /// An empty pool with these bounds; its sweeper runs on `runtime`.
    pub fn new(config: proxy_core::Pool, runtime: R) -> Arc<Self> {
        Arc::new(Pool {
            runtime,
            config,
            inner: Mutex::new(Inner {
                idle: FxHashMap::default(),
                sweeping: false,
                closed: false,
            }),
        })
    }

    /// The most recently pooled live connection to `address`, if any.
    pub fn take(&self, address: &str) -> Option<Upstream<R>> {
        let now = self.runtime.now();
        self.take_with_peer(address, now).map(|(stream, _)| stream)
    }

    /// [`Pool::take`], with the peer address the connection was pooled with; `now` is
    /// the caller's reading of the runtime's clock.
    pub fn take_with_peer(
        &self,
        address: &str,
        now: Instant,
    ) -> Option<(Upstream<R>, Option<SocketAddr>)> {
        let mut dropped = Vec::new(); // closed after the lock is released
        let mut inner = self.lock();
        let list = inner.idle.get_mut(address)?;
        let mut found = None;
        while let Some(idle) = list.pop() {
            if self.alive(&idle, now) {
                found = Some((idle.stream, idle.peer));
                break;
            }
            dropped.push(idle);
        }
        // An emptied list stays (the sweeper removes it): a busy address does not
        // give up and re-allocate its entry on every request.
        found
    }

    /// Keeps `stream` for a later request to `address`. Past `max_idle`, the sweeper
    /// trims the connections that stay unused (see the module docs).
    pub fn put(self: &Arc<Self>, address: &str, stream: Upstream<R>) {
        self.put_with_peer(address, stream, None, self.runtime.now());
    }

    /// [`Pool::put`], keeping `peer` (the address it was dialled to) with the
    /// connection, which [`Pool::take_with_peer`] hands back; `now` is the caller's
    /// reading of the runtime's clock.
    pub fn put_with_peer(
        self: &Arc<Self>,
        address: &str,
        stream: Upstream<R>,
        peer: Option<SocketAddr>,
        now: Instant,
    ) {
        if self.config.max_idle == 0 || self.config.idle_timeout.is_zero() {
            return;
        }
        let idle = Idle {
            stream,
            since: now,
            peer,
        };
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        match inner.idle.get_mut(address) {
            Some(list) => list.push(idle),
            None => {
                inner.idle.insert(address.to_owned(), vec![idle]);
            }
        }
        if !inner.sweeping {
            inner.sweeping = true;
            self.runtime
                .spawn(sweep(Arc::downgrade(self), self.runtime.clone()));
        }
    }

    /// Closes every idle connection and keeps none from now on (on shutdown).
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        let idle = std::mem::take(&mut inner.idle);
        drop(inner);
        drop(idle);
    }

    /// Number of idle connections, over all addresses.
    pub fn idle_count(&self) -> usize {
        self.lock().idle.values().map(Vec::len).sum()
    }

    /// Young enough, and the upstream has neither closed it nor sent anything
    /// unasked (either makes it unusable for a new request).
    fn alive(&self, idle: &Idle<Upstream<R>>, now: Instant) -> bool {
        now.saturating_duration_since(idle.since) < self.config.idle_timeout
            && match &idle.stream {
                Conn::Plain(tcp) => R::is_quiet(tcp),
                Conn::Tls(tls) => R::is_quiet_tls(tls),
            }
    }

    /// Drops expired and stale connections, and the surplus over `max_idle` that was
    /// not needed for a whole sweep interval; returns whether any are left.
    fn sweep_once(&self) -> bool {
        let now = self.runtime.now();
        let unused_since = now.checked_sub(self.sweep_interval());
        let mut dropped = Vec::new();
        let mut inner = self.lock();
        inner.idle.retain(|_, list| {
            let (keep, stale): (Vec<_>, Vec<_>) =
                list.drain(..).partition(|idle| self.alive(idle, now));
            dropped.extend(stale);
            *list = keep;
            // Oldest first: the surplus is at the front, and what of it was pooled
            // before `unused_since` has not been taken since.
            let surplus = list.len().saturating_sub(self.config.max_idle);
            let unused = list[..surplus]
                .iter()
                .take_while(|idle| unused_since.is_some_and(|t| idle.since <= t))
                .count();
            dropped.extend(list.drain(..unused));
            !list.is_empty()
        });
        let any_left = !inner.idle.is_empty();
        inner.sweeping = any_left;
        any_left
    }

    fn sweep_interval(&self) -> Duration {
        (self.config.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    fn lock(&self) -> MutexGuard<'_, Inner<Upstream<R>>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs while the pool has idle connections and the pool itself is alive.
async fn sweep<R: Runtime>(pool: Weak<Pool<R>>, runtime: R) {
    loop {
        let Some(interval) = pool.upgrade().map(|p| p.sweep_interval()) else {
            return;
        };
        sleep(&runtime, interval).await;
        match pool.upgrade() {
            Some(pool) if pool.sweep_once() => continue,
            _ => return,
        }
    }
}
