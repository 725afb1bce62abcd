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
}
