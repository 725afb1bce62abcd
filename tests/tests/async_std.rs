//! Every end-to-end scenario against runtime-smol on async-std's executor, with
//! async-std's `TcpListener` and `TcpStream`, through runtime-smol's generic
//! `serve_connection`: the way an async-std program embeds the proxy.

use async_std::net::{TcpListener, TcpStream};
use runtime_smol::proxy_core::ClientInfo;
use runtime_smol::{serve_connection, Context, OnClose};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;
use switchyard_e2e::futures_util::future::BoxFuture;
use switchyard_e2e::{Config, ProxyUnderTest, RunningProxy};

/// An accept loop on async-std; every task (sessions, the pool's sweeper) is spawned
/// with `async_std::task::spawn`.
struct AsyncStd;

impl ProxyUnderTest for AsyncStd {
    fn name(&self) -> &'static str {
        "runtime-smol on async-std"
    }

    fn start(&self, config: Config) -> BoxFuture<'static, RunningProxy> {
        Box::pin(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
            let addr = listener.local_addr().unwrap();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            async_std::task::spawn(async move {
                let runtime =
                    runtime_smol::Smol::with_spawner(|task| drop(async_std::task::spawn(task)));
                let ctx = Arc::new(Context::with_runtime(Arc::new(config), runtime));
                let listener = TcpListener::from(listener);
                let stop = async move {
                    let _ = stop_rx.await;
                };
                smol::future::or(accept_loop(&listener, &ctx), stop).await;
                drop(listener);
                ctx.drain().await;
                let _ = done_tx.send(Ok(()));
            });
            RunningProxy::new(addr, stop_tx, done_rx)
        })
    }
}

async fn accept_loop(listener: &TcpListener, ctx: &Arc<Context>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                async_std::task::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // async-std's close only flushes; the sessions need it to end the write half.
        let stream = OnClose::new(stream, |s: &mut TcpStream| s.shutdown(Shutdown::Write));
        let client = ClientInfo {
            addr: Some(addr),
            tls: false,
            redirect_to_https: None,
        };
        let ctx = ctx.clone();
        async_std::task::spawn(async move { serve_connection(stream, client, &ctx).await });
    }
}

switchyard_e2e::scenarios!(AsyncStd);
