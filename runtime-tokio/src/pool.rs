//! Upstream keep-alive pool: idle connections by address, newest first, bounded in
//! count (`pool.max_idle` per address) and age (`pool.idle_timeout`).
//!
//! The core decides *whether* a connection may be reused (`ReleaseUpstream { reusable }`);
//! the pool only keeps it. A connection the upstream closed (or wrote to) while idle is
//! stale and is dropped when found: on hand-out, and by a sweeper task that runs while
//! the pool is not empty, so idle sockets neither outlive `idle_timeout` nor sit in
//! CLOSE_WAIT.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle upstream connections, shared by every session of one [`Context`](crate::Context).
pub struct Pool {
    config: proxy_core::Pool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    idle: HashMap<String, Vec<Idle>>,
    sweeping: bool,
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

impl Pool {
    /// An empty pool with these bounds.
    pub fn new(config: proxy_core::Pool) -> Arc<Pool> {
        Arc::new(Pool {
            config,
            inner: Mutex::default(),
        })
    }

    /// The most recently pooled live connection to `address`, if any.
    pub fn take(&self, address: &str) -> Option<TcpStream> {
        let now = Instant::now();
        let mut dropped = Vec::new(); // closed after the lock is released
        let mut inner = self.lock();
        let list = inner.idle.get_mut(address)?;
        let mut found = None;
        while let Some(idle) = list.pop() {
            if self.alive(&idle, now) {
                found = Some(idle.stream);
                break;
            }
            dropped.push(idle);
        }
        if list.is_empty() {
            inner.idle.remove(address);
        }
        found
    }

    /// Keeps `stream` for a later request to `address`; the oldest idle connection
    /// goes if the address already has `max_idle`.
    pub fn put(self: &Arc<Self>, address: &str, stream: TcpStream) {
        if self.config.max_idle == 0 || self.config.idle_timeout.is_zero() {
            return;
        }
        let idle = Idle {
            stream,
            since: Instant::now(),
        };
        let mut inner = self.lock();
        let oldest = match inner.idle.get_mut(address) {
            Some(list) => {
                list.push(idle);
                (list.len() > self.config.max_idle).then(|| list.remove(0))
            }
            None => {
                inner.idle.insert(address.to_owned(), vec![idle]);
                None
            }
        };
        if !inner.sweeping {
            inner.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
        drop(inner);
        drop(oldest);
    }

    /// Closes every idle connection (on shutdown).
    pub fn clear(&self) {
        let idle = std::mem::take(&mut self.lock().idle);
        drop(idle);
    }

    /// Number of idle connections, over all addresses.
    pub fn idle_count(&self) -> usize {
        self.lock().idle.values().map(Vec::len).sum()
    }

    /// Young enough, and the upstream has neither closed it nor sent anything
    /// unasked (either makes it unusable for a new request).
    fn alive(&self, idle: &Idle, now: Instant) -> bool {
        if now.duration_since(idle.since) >= self.config.idle_timeout {
            return false;
        }
        let mut probe = [MaybeUninit::uninit(); 1];
        match socket2::SockRef::from(&idle.stream).peek(&mut probe) {
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            Ok(_) => false, // EOF (0) or unsolicited bytes
        }
    }

    /// Drops expired and stale connections; returns whether any are left.
    fn sweep_once(&self) -> bool {
        let now = Instant::now();
        let mut dropped = Vec::new();
        let mut inner = self.lock();
        inner.idle.retain(|_, list| {
            let (keep, stale): (Vec<Idle>, Vec<Idle>) =
                list.drain(..).partition(|idle| self.alive(idle, now));
            dropped.extend(stale);
            *list = keep;
            !list.is_empty()
        });
        let any_left = !inner.idle.is_empty();
        inner.sweeping = any_left;
        any_left
    }

    fn sweep_interval(&self) -> Duration {
        (self.config.idle_timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs while the pool has idle connections and the pool itself is alive.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(interval) = pool.upgrade().map(|p| p.sweep_interval()) else {
            return;
        };
        tokio::time::sleep(interval).await;
        match pool.upgrade() {
            Some(pool) if pool.sweep_once() => continue,
            _ => return,
        }
    }
}
