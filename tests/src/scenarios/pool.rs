//! The upstream keep-alive pool, seen from outside: reuse across client connections,
//! more exchanges at once than `max_idle`, `max_idle = 0`, and a pooled connection
//! that went stale.

use super::{client, get, response, start, start_with};
use crate::backend::{Backend, Reply};
use crate::http;
use crate::ProxyUnderTest;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A request on a second client connection, after the first finished, goes over the
/// upstream connection the first one released to the pool.
pub async fn upstream_pool_reused_across_client_connections(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start(p, backend.addr).await;
    for path in ["/from-a", "/from-b"] {
        let mut c = client(&proxy).await;
        c.write(&get(path)).await.unwrap();
        let r = response(&mut c, "GET", path).await;
        assert_eq!((r.status, r.text()), (200, format!("GET {path}")));
    }
    let conns = backend.connections();
    assert_eq!(
        conns.len(),
        1,
        "upstream connections for two sequential clients (pool not used)"
    );
    assert_eq!(conns[0].requests.len(), 2);
}

/// With `pool.max_idle = 0` nothing is kept: each client connection dials afresh.
pub async fn pool_max_idle_zero_dials_every_time(p: &dyn ProxyUnderTest) {
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| c.pool.max_idle = 0).await;
    for path in ["/one", "/two"] {
        let mut c = client(&proxy).await;
        c.write(&get(path)).await.unwrap();
        assert_eq!(response(&mut c, "GET", path).await.status, 200);
    }
    assert_eq!(
        backend.connections().len(),
        2,
        "upstream connections with max_idle = 0"
    );
}

/// More exchanges in flight than `max_idle` (six keep-alive clients, `max_idle = 2`):
/// every connection released is needed again a moment later, so none is closed, and
/// the backend sees no more connections than there were exchanges at once (a pool
/// that closed the surplus at once made about twenty here).
pub async fn more_exchanges_in_flight_than_max_idle_keep_their_connections(p: &dyn ProxyUnderTest) {
    const CLIENTS: usize = 6;
    let backend = Backend::ok().await;
    let proxy = start_with(p, backend.addr, |c| c.pool.max_idle = 2).await;
    let addr = proxy.addr;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = http::Conn::connect(addr).await.expect("connect");
                for j in 0..20 {
                    let path = format!("/c{i}/r{j}");
                    c.write(&get(&path)).await.unwrap();
                    let r = response(&mut c, "GET", &path).await;
                    assert_eq!((r.status, r.text()), (200, format!("GET {path}")));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a client task failed");
    }
    let conns = backend.connections();
    let requests: usize = conns.iter().map(|c| c.requests.len()).sum();
    assert_eq!(requests, CLIENTS * 20);
    assert!(
        conns.len() <= CLIENTS,
        "{} upstream connections for {CLIENTS} keep-alive clients",
        conns.len()
    );
}

/// The upstream closes a kept-alive connection after answering (without saying so):
/// the next request, which finds that stale connection in the pool, is still answered,
/// on a freshly dialled connection.
pub async fn stale_pooled_connection_is_replaced(p: &dyn ProxyUnderTest) {
    let served = Arc::new(AtomicUsize::new(0));
    let backend = Backend::http(move |r| {
        let n = served.fetch_add(1, Ordering::SeqCst);
        // answer as if keeping the connection, then close it
        Reply::BytesThenClose(http::ok(format!("{n} {}", r.target).as_bytes()))
    })
    .await;
    let proxy = start(p, backend.addr).await;
    let mut c = client(&proxy).await;
    c.write(&get("/first")).await.unwrap();
    assert_eq!(response(&mut c, "GET", "first").await.text(), "0 /first");
    drop(c);
    // make sure the upstream's close has happened before the next request
    assert!(backend.settle(std::time::Duration::from_secs(2)).await);
    let mut c = client(&proxy).await;
    c.write(&get("/second")).await.unwrap();
    let r = response(
        &mut c,
        "GET",
        "second, after the pooled connection went stale",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "1 /second"));
    assert_eq!(backend.connections().len(), 2);
}
