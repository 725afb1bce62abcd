//! Every end-to-end scenario against runtime-smol's `serve`, on smol's global
//! executor, plus the `switchyard-smol` example run from a config file.

use std::sync::Arc;
use switchyard_e2e::futures_util::future::BoxFuture;
use switchyard_e2e::{Config, ProxyUnderTest, RunningProxy};

/// runtime-smol's `serve`, spawned on smol's global executor (its own threads).
struct Smol;

impl ProxyUnderTest for Smol {
    fn name(&self) -> &'static str {
        "runtime-smol on smol"
    }

    fn start(&self, config: Config) -> BoxFuture<'static, RunningProxy> {
        Box::pin(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
            let addr = listener.local_addr().unwrap();
            let listener = smol::net::TcpListener::try_from(listener).expect("async listener");
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            smol::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                let result = runtime_smol::serve(listener, Arc::new(config), shutdown).await;
                let _ = done_tx.send(result);
            })
            .detach();
            RunningProxy::new(addr, stop_tx, done_rx)
        })
    }
}

switchyard_e2e::scenarios!(Smol);

/// The `switchyard-smol` example of runtime-smol: the `switchyard` binary's config
/// file, on smol.
mod example {
    use std::path::PathBuf;
    use switchyard_e2e::binary;

    fn exe() -> PathBuf {
        binary::cargo_example("runtime-smol", "switchyard-smol")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_config_file_proxies_then_sigterm_exits_0() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_config_file_proxies_then_sigterm_exits_0",
            "switchyard-smol",
            binary::config_file_proxies_then_sigterm_exits_0(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_sigterm_with_open_websocket_exits_0_by_deadline() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_sigterm_with_open_websocket_exits_0_by_deadline",
            "switchyard-smol",
            binary::sigterm_with_open_websocket_exits_0_by_deadline(&exe),
        )
        .await;
    }
}
