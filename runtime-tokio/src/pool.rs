//! Upstream keep-alive pool: idle connections by address, newest first, bounded in
//! age (`pool.idle_timeout`) and, once load falls, in count (`pool.max_idle` per
//! address). The bookkeeping
//! is `runtime_common`'s; the liveness check (a non-blocking peek) and the sweeper
//! task are tokio's.

use crate::runtime::Tokio;

/// Idle upstream connections, shared by every session of one [`Context`](crate::Context).
pub type Pool = runtime_common::pool::Pool<Tokio>;

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_common::Conn;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;
    use tokio::net::TcpStream;

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
        let config = proxy_core::Pool {
            max_idle,
            idle_timeout,
        };
        Pool::new(config, Tokio)
    }

    #[tokio::test]
    async fn hands_out_the_newest_live_connection_once() {
        let pool = pool(4, Duration::from_secs(60));
        let (first, _keep1) = pair().await;
        let (second, _keep2) = pair().await;
        let second_addr = second.local_addr().unwrap();
        pool.put("up:1", Conn::Plain(first));
        pool.put("up:1", Conn::Plain(second));
        let Some(Conn::Plain(taken)) = pool.take("up:1") else {
            panic!("a plain connection was pooled");
        };
        assert_eq!(taken.local_addr().unwrap(), second_addr);
        assert!(pool.take("up:1").is_some());
        assert!(pool.take("up:1").is_none());
        assert!(pool.take("other:1").is_none());
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_handed_out() {
        let pool = pool(4, Duration::from_secs(60));
        let (ours, theirs) = pair().await;
        pool.put("up:1", Conn::Plain(ours));
        drop(theirs);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(pool.take("up:1").is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_with_unsolicited_bytes_is_not_handed_out() {
        let pool = pool(4, Duration::from_secs(60));
        let (ours, mut theirs) = pair().await;
        pool.put("up:1", Conn::Plain(ours));
        theirs
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(pool.take("up:1").is_none());
    }

    /// More connections than `max_idle` come back while the load lasts: all are kept
    /// (each is needed again a moment later). Those over `max_idle` that then go a
    /// whole sweep interval (500 ms here) without being taken are closed, oldest
    /// first; a connection taken and put back in the meantime counts as newly used.
    #[tokio::test]
    async fn keeps_every_connection_under_load_and_trims_the_unused_surplus() {
        let pool = pool(2, Duration::from_secs(2));
        let mut keep = Vec::new();
        let mut locals = Vec::new();
        for _ in 0..4 {
            let (ours, theirs) = pair().await;
            keep.push(theirs);
            locals.push(ours.local_addr().unwrap());
            pool.put("up:1", Conn::Plain(ours));
        }
        assert_eq!(pool.idle_count(), 4, "nothing is closed while in use");
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The newest is used again: it goes back to the young end.
        let Some(Conn::Plain(used)) = pool.take("up:1") else {
            panic!("a plain connection was pooled");
        };
        assert_eq!(used.local_addr().unwrap(), locals[3]);
        pool.put("up:1", Conn::Plain(used));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(pool.idle_count(), 2, "the unused surplus was closed");
        let mut left = Vec::new();
        while let Some(Conn::Plain(c)) = pool.take("up:1") {
            left.push(c.local_addr().unwrap());
        }
        assert_eq!(left, [locals[3], locals[2]], "the newest two stay");
    }

    #[tokio::test]
    async fn a_closed_pool_keeps_nothing() {
        let pool = pool(4, Duration::from_secs(60));
        let (first, _keep1) = pair().await;
        let (second, _keep2) = pair().await;
        pool.put("up:1", Conn::Plain(first));
        pool.close();
        assert_eq!(pool.idle_count(), 0);
        pool.put("up:1", Conn::Plain(second));
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn max_idle_zero_keeps_nothing() {
        let pool = pool(0, Duration::from_secs(60));
        let (ours, _theirs) = pair().await;
        pool.put("up:1", Conn::Plain(ours));
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn idle_connections_expire_and_are_swept() {
        let pool = pool(4, Duration::from_millis(100));
        let (ours, _theirs) = pair().await;
        pool.put("up:1", Conn::Plain(ours));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pool.idle_count(), 0, "the sweeper closed it");
    }

    /// A pool with 64 shards, and a connected pair for each of `n` connections.
    async fn sharded(
        max_idle: usize,
        idle_timeout: Duration,
        n: usize,
    ) -> (Arc<Pool>, Vec<TcpStream>, Vec<TcpStream>) {
        let config = proxy_core::Pool {
            max_idle,
            idle_timeout,
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (o, t) = pair().await;
            ours.push(o);
            theirs.push(t);
        }
        (Pool::with_shards(config, Tokio, 64), ours, theirs)
    }

    /// A thread puts into its own shard; another thread, whose shard is empty, is
    /// handed that connection rather than none (which would mean a dial).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_pooled_by_one_thread_is_handed_to_another() {
        let (pool, ours, _theirs) = sharded(4, Duration::from_secs(60), 1).await;
        let pooled = ours[0].local_addr().unwrap();
        let runtime = tokio::runtime::Handle::current();
        let stream = ours.into_iter().next().unwrap();
        let put = {
            let (pool, runtime) = (pool.clone(), runtime.clone());
            std::thread::spawn(move || {
                let _entered = runtime.enter();
                pool.put("up:1", Conn::Plain(stream));
            })
        };
        put.join().unwrap();
        let taken = std::thread::spawn(move || {
            let _entered = runtime.enter();
            let taken = pool.take("up:1").map(|c| match c {
                Conn::Plain(tcp) => tcp.local_addr().unwrap(),
                Conn::Tls(_) => panic!("a plain connection was pooled"),
            });
            (taken, pool.take("up:1").is_some())
        });
        let (taken, again) = taken.join().unwrap();
        assert_eq!(taken, Some(pooled));
        assert!(!again, "handed out once");
    }

    /// A thread with an event loop of its own takes only from its own shard: another
    /// thread's connection is driven by that thread's event loop, so it dials instead.
    /// It still takes back what it pooled itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_loop_thread_takes_only_what_it_pooled_itself() {
        let (pool, ours, _theirs) = sharded(4, Duration::from_secs(60), 2).await;
        let runtime = tokio::runtime::Handle::current();
        let mut ours = ours.into_iter();
        let (theirs, mine) = (ours.next().unwrap(), ours.next().unwrap());
        let put = {
            let (pool, runtime) = (pool.clone(), runtime.clone());
            std::thread::spawn(move || {
                let _entered = runtime.enter();
                pool.put("up:1", Conn::Plain(theirs));
            })
        };
        put.join().unwrap();
        let own_loop = std::thread::spawn(move || {
            let _entered = runtime.enter();
            runtime_common::take_from_own_shard_only();
            let from_another = pool.take("up:1").is_some();
            pool.put("up:1", Conn::Plain(mine));
            (from_another, pool.take("up:1").is_some(), pool.idle_count())
        });
        let (from_another, own_again, left) = own_loop.join().unwrap();
        assert!(!from_another, "took another thread's connection");
        assert!(own_again, "its own connection, pooled and taken back");
        assert_eq!(left, 1, "the other thread's connection stays pooled");
    }

    /// `max_idle` counts an address's connections over every shard: two threads'
    /// shards of two each are trimmed to two in all, the oldest closed first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_idle_bounds_the_connections_of_every_shard_together() {
        let (pool, ours, _theirs) = sharded(2, Duration::from_secs(2), 4).await;
        let locals: Vec<_> = ours.iter().map(|c| c.local_addr().unwrap()).collect();
        let runtime = tokio::runtime::Handle::current();
        let mut streams = ours.into_iter();
        for _ in 0..2 {
            let two: Vec<_> = streams.by_ref().take(2).collect();
            let (pool, runtime) = (pool.clone(), runtime.clone());
            std::thread::spawn(move || {
                let _entered = runtime.enter();
                for stream in two {
                    pool.put("up:1", Conn::Plain(stream));
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .join()
            .unwrap();
        }
        assert_eq!(pool.idle_count(), 4, "nothing is closed while in use");
        // Two sweeps (every 500 ms): the second finds all four unused for a whole
        // interval.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(pool.idle_count(), 2, "trimmed to max_idle over both shards");
        let mut left = Vec::new();
        while let Some(Conn::Plain(c)) = pool.take("up:1") {
            left.push(c.local_addr().unwrap());
        }
        left.sort();
        let mut newest = locals[2..].to_vec();
        newest.sort();
        assert_eq!(left, newest, "the two pooled last stay");
    }

    /// Threads taking and putting back the same connections at once lose none and
    /// hand none out twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_taking_and_putting_at_once_lose_no_connection() {
        const CONNECTIONS: usize = 6;
        let (pool, ours, _theirs) = sharded(64, Duration::from_secs(60), CONNECTIONS).await;
        for stream in ours {
            pool.put("up:1", Conn::Plain(stream));
        }
        let runtime = tokio::runtime::Handle::current();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (pool, runtime) = (pool.clone(), runtime.clone());
                std::thread::spawn(move || {
                    let _entered = runtime.enter();
                    let mut held = Vec::new();
                    for round in 0..5_000 {
                        if round % 3 != 2 {
                            held.extend(pool.take("up:1"));
                        } else if let Some(stream) = held.pop() {
                            pool.put("up:1", stream);
                        }
                    }
                    for stream in held {
                        pool.put("up:1", stream);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(pool.idle_count(), CONNECTIONS);
        let mut seen = std::collections::HashSet::new();
        while let Some(Conn::Plain(c)) = pool.take("up:1") {
            assert!(seen.insert(c.local_addr().unwrap()), "handed out twice");
        }
        assert_eq!(seen.len(), CONNECTIONS);
    }
}
