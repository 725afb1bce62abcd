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
//!
//! The lists are kept in shards, one per worker thread as far as there are enough
//! (HAProxy keeps its idle connections per thread the same way). A thread puts into its
//! own shard and takes from it first, then from the others, so that a connection idle
//! anywhere is used before a new one is dialled; threads no longer contend for one lock
//! twice per request. `max_idle` bounds the connections to an address over all shards.
//! A thread with an event loop of its own (`work_stealing = false`) takes only from
//! its own shard: a connection is driven by the event loop that dialled it.

use crate::runtime::{sleep, Conn, Runtime, Upstream};
use crate::thread_shard;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Idle upstream connections, shared by every session of one
/// [`Context`](crate::Context).
pub struct Pool<R: Runtime> {
    runtime: R,
    config: proxy_core::Pool,
    shards: Box<[Shard<Upstream<R>>]>,
    /// The sweeper task runs (one for all shards).
    sweeping: AtomicBool,
}

/// One shard's lists, aligned so that two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard<T> {
    inner: Mutex<Inner<T>>,
    /// How many connections the lists hold, written under the lock: a thread whose
    /// own shard has none skips the empty shards of others without locking them.
    held: AtomicUsize,
}

struct Inner<T> {
    /// Keyed with FxHash: every request hashes its key twice (take, then put), the
    /// keys come from the configuration rather than from clients (no flooding to
    /// fear), and SipHash cost more than the rest of the pool's work together.
    idle: FxHashMap<String, Vec<Idle<T>>>,
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
    /// An empty pool with these bounds, with a shard per core; its sweeper runs on
    /// `runtime`.
    pub fn new(config: proxy_core::Pool, runtime: R) -> Arc<Self> {
        Self::with_shards(config, runtime, thread_shard::default_shards())
    }

    /// [`Pool::new`] with `shards` shards (rounded up to a power of two, at most 64):
    /// as many as the threads that run sessions, for an embedder who knows how many
    /// that is.
    pub fn with_shards(config: proxy_core::Pool, runtime: R, shards: usize) -> Arc<Self> {
        let shards = (0..thread_shard::shard_count(shards))
            .map(|_| Shard {
                inner: Mutex::new(Inner {
                    idle: FxHashMap::default(),
                    closed: false,
                }),
                held: AtomicUsize::new(0),
            })
            .collect();
        Arc::new(Pool {
            runtime,
            config,
            shards,
            sweeping: AtomicBool::new(false),
        })
    }

    /// The most recently pooled live connection to `address`, if any.
    pub fn take(&self, address: &str) -> Option<Upstream<R>> {
        let now = self.runtime.now();
        self.take_with_peer(address, now).map(|(stream, _)| stream)
    }

    /// [`Pool::take`], with the peer address the connection was pooled with; `now` is
    /// the caller's reading of the runtime's clock. This thread's shard first, then
    /// the others (unless this thread takes from its own shard only:
    /// [`take_from_own_shard_only`](crate::take_from_own_shard_only)).
    pub fn take_with_peer(
        &self,
        address: &str,
        now: Instant,
    ) -> Option<(Upstream<R>, Option<SocketAddr>)> {
        if self.keeps_nothing() {
            return None;
        }
        let own = self.own_shard();
        if let Some(found) = self.take_from(own, address, now) {
            return Some(found);
        }
        if thread_shard::own_shard_only() {
            return None;
        }
        let n = self.shards.len(); // a power of two
        (1..n)
            .map(|k| (own + k) & (n - 1))
            .filter(|&i| self.shards[i].held.load(Ordering::Relaxed) > 0)
            .find_map(|i| self.take_from(i, address, now))
    }

    /// The newest live connection to `address` in shard `i`; the stale ones found on
    /// the way are closed.
    fn take_from(
        &self,
        i: usize,
        address: &str,
        now: Instant,
    ) -> Option<(Upstream<R>, Option<SocketAddr>)> {
        let mut dropped = Vec::new(); // closed after the lock is released
        let mut inner = self.lock(i);
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
        // Written only when it changes: other threads read it to skip this shard, and
        // a take that finds nothing (every request, with pooling idle) need not
        // invalidate their copy of the line.
        let taken = dropped.len() + usize::from(found.is_some());
        if taken > 0 {
            let held = &self.shards[i].held;
            held.store(
                held.load(Ordering::Relaxed).saturating_sub(taken),
                Ordering::Relaxed,
            );
        }
        found
    }

    /// Keeps `stream` for a later request to `address`. Past `max_idle`, the sweeper
    /// trims the connections that stay unused (see the module docs).
    pub fn put(self: &Arc<Self>, address: &str, stream: Upstream<R>) {
        self.put_with_peer(address, stream, None, self.runtime.now());
    }

    /// [`Pool::put`], keeping `peer` (the address it was dialled to) with the
    /// connection, which [`Pool::take_with_peer`] hands back; `now` is the caller's
    /// reading of the runtime's clock. Into this thread's shard.
    pub fn put_with_peer(
        self: &Arc<Self>,
        address: &str,
        stream: Upstream<R>,
        peer: Option<SocketAddr>,
        now: Instant,
    ) {
        if self.keeps_nothing() {
            return;
        }
        let idle = Idle {
            stream,
            since: now,
            peer,
        };
        let own = self.own_shard();
        let mut inner = self.lock(own);
        if inner.closed {
            return;
        }
        match inner.idle.get_mut(address) {
            Some(list) => list.push(idle),
            None => {
                inner.idle.insert(address.to_owned(), vec![idle]);
            }
        }
        let held = &self.shards[own].held;
        held.store(held.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        drop(inner);
        // Read first: under load the flag stays set, and a read of a line that no
        // thread writes costs no cache-line transfer. The sweeper clears the flag
        // before it looks at the shards a last time, so either it sees this
        // connection or this sees the flag cleared (see `sweep_once`).
        if !self.sweeping.load(Ordering::Acquire) && !self.sweeping.swap(true, Ordering::AcqRel) {
            self.runtime
                .spawn(sweep(Arc::downgrade(self), self.runtime.clone()));
        }
    }

    /// Closes every idle connection and keeps none from now on (on shutdown).
    pub fn close(&self) {
        for i in 0..self.shards.len() {
            let mut inner = self.lock(i);
            inner.closed = true;
            let idle = std::mem::take(&mut inner.idle);
            self.shards[i].held.store(0, Ordering::Relaxed);
            drop(inner);
            drop(idle);
        }
    }

    /// Number of idle connections, over all addresses.
    pub fn idle_count(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.lock(i).idle.values().map(Vec::len).sum::<usize>())
            .sum()
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

    /// Drops expired and stale connections, and the surplus over `max_idle` (over
    /// all shards) that was not needed for a whole sweep interval; returns whether
    /// the sweeper goes on (any are left).
    fn sweep_once(&self) -> bool {
        let now = self.runtime.now();
        let unused_since = now.checked_sub(self.sweep_interval());
        let mut dropped = Vec::new();
        // Every shard at once, in order (nothing else holds two), for an exact count
        // per address; once per sweep interval, for as long as the lists take.
        let mut shards: Vec<_> = (0..self.shards.len()).map(|i| self.lock(i)).collect();
        let mut addresses: Vec<String> = Vec::new();
        for inner in &mut shards {
            for (address, list) in inner.idle.iter_mut() {
                let (keep, stale): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|idle| self.alive(idle, now));
                dropped.extend(stale);
                *list = keep;
                if !addresses.contains(address) {
                    addresses.push(address.clone());
                }
            }
        }
        for address in &addresses {
            let pooled: usize = (shards.iter())
                .filter_map(|inner| inner.idle.get(address))
                .map(Vec::len)
                .sum();
            let surplus = pooled.saturating_sub(self.config.max_idle);
            // Oldest first: each list's surplus is at its front, and what of it was
            // pooled before `unused_since` has not been taken since.
            let mut unused: Vec<(Instant, usize)> = Vec::new();
            for (i, inner) in shards.iter().enumerate() {
                let Some(list) = inner.idle.get(address) else {
                    continue;
                };
                let old =
                    (list.iter()).take_while(|idle| unused_since.is_some_and(|t| idle.since <= t));
                unused.extend(old.map(|idle| (idle.since, i)));
            }
            unused.sort_unstable();
            let mut closing = vec![0; shards.len()];
            for &(_, i) in unused.iter().take(surplus) {
                closing[i] += 1;
            }
            for (inner, n) in shards.iter_mut().zip(closing) {
                if let Some(list) = inner.idle.get_mut(address) {
                    dropped.extend(list.drain(..n));
                }
            }
        }
        let mut any_left = false;
        for (inner, shard) in shards.iter_mut().zip(self.shards.iter()) {
            inner.idle.retain(|_, list| !list.is_empty());
            let held = inner.idle.values().map(Vec::len).sum();
            shard.held.store(held, Ordering::Relaxed);
            any_left |= held > 0;
        }
        drop(shards);
        if any_left {
            return true;
        }
        // A put that still saw the flag set pushed before this looks again.
        self.sweeping.store(false, Ordering::Release);
        let again = (0..self.shards.len()).any(|i| !self.lock(i).idle.is_empty());
        again && !self.sweeping.swap(true, Ordering::AcqRel)
    }

    fn sweep_interval(&self) -> Duration {
        (self.config.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    /// Pooling is off (`max_idle` or `idle_timeout` is 0).
    fn keeps_nothing(&self) -> bool {
        self.config.max_idle == 0 || self.config.idle_timeout.is_zero()
    }

    /// This thread's shard.
    fn own_shard(&self) -> usize {
        thread_shard::this_thread(self.shards.len())
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Inner<Upstream<R>>> {
        self.shards[i]
            .inner
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
