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
    /// Shutting down: nothing is kept any more.
    closed: bool,
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
        if inner.closed {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connected pair: (our end, the upstream's end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        (ours, theirs)
    }

    fn pool(max_idle: usize, idle_timeout: Duration) -> Arc<Pool> {
        Pool::new(proxy_core::Pool {
            max_idle,
            idle_timeout,
        })
    }

    #[tokio::test]
    async fn hands_out_the_newest_live_connection_once() {
        let pool = pool(4, Duration::from_secs(60));
        let (first, _keep1) = pair().await;
        let (second, _keep2) = pair().await;
        let second_addr = second.local_addr().unwrap();
        pool.put("up:1", first);
        pool.put("up:1", second);
        assert_eq!(
            pool.take("up:1").unwrap().local_addr().unwrap(),
            second_addr
        );
        assert!(pool.take("up:1").is_some());
        assert!(pool.take("up:1").is_none());
        assert!(pool.take("other:1").is_none());
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_handed_out() {
        let pool = pool(4, Duration::from_secs(60));
        let (ours, theirs) = pair().await;
        pool.put("up:1", ours);
        drop(theirs);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(pool.take("up:1").is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_with_unsolicited_bytes_is_not_handed_out() {
        let pool = pool(4, Duration::from_secs(60));
        let (ours, mut theirs) = pair().await;
        pool.put("up:1", ours);
        theirs
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(pool.take("up:1").is_none());
    }

    #[tokio::test]
    async fn keeps_at_most_max_idle_per_address() {
        let pool = pool(2, Duration::from_secs(60));
        let mut keep = Vec::new();
        for _ in 0..3 {
            let (ours, theirs) = pair().await;
            keep.push(theirs);
            pool.put("up:1", ours);
        }
        assert_eq!(pool.idle_count(), 2);
    }

    #[tokio::test]
    async fn a_closed_pool_keeps_nothing() {
        let pool = pool(4, Duration::from_secs(60));
        let (first, _keep1) = pair().await;
        let (second, _keep2) = pair().await;
        pool.put("up:1", first);
        pool.close();
        assert_eq!(pool.idle_count(), 0);
        pool.put("up:1", second);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn max_idle_zero_keeps_nothing() {
        let pool = pool(0, Duration::from_secs(60));
        let (ours, _theirs) = pair().await;
        pool.put("up:1", ours);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn idle_connections_expire_and_are_swept() {
        let pool = pool(4, Duration::from_millis(100));
        let (ours, _theirs) = pair().await;
        pool.put("up:1", ours);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pool.idle_count(), 0, "the sweeper closed it");
    }
}
