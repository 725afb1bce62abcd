//! Every end-to-end scenario against runtime-smol's `serve`, on smol's global
//! executor, plus the `switchyard-smol` example run from a config file.

use std::sync::Arc;
use switchyard_e2e::futures_util::future::BoxFuture;
use switchyard_e2e::{readdress, Config, ProxyUnderTest, RunningProxy, RunningSetup, Setup};

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

    fn start_setup(&self, mut setup: Setup) -> BoxFuture<'static, Option<RunningSetup>> {
        Box::pin(async move {
            let bind = || {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
                smol::net::TcpListener::try_from(listener).expect("async listener")
            };
            let listeners: Vec<_> = setup.listeners.iter().map(|_| bind()).collect();
            let listen: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
            readdress(&mut setup, &listen);
            let admin = bind();
            let admin_addr = admin.local_addr().unwrap();
            let ctx = Arc::new(runtime_smol::Context::with_setup(
                setup,
                runtime_smol::Smol::global(),
            ));
            let admin_ctx = ctx.clone();
            smol::spawn(async move { admin_ctx.serve_admin(admin).await }).detach();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let serve_ctx = ctx.clone();
            smol::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                serve_ctx.serve_all(listeners, shutdown).await;
                let _ = done_tx.send(Ok(()));
            })
            .detach();
            let proxy = RunningProxy::new(listen[0], stop_tx, done_rx);
            let reload = move |setup| ctx.reload(setup);
            Some(RunningSetup::new(proxy, listen, admin_addr, reload))
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
    async fn example_json_log_lines_are_json_objects() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_json_log_lines_are_json_objects",
            "switchyard-smol",
            binary::json_log_lines_are_json_objects(&exe),
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_open_file_limit_is_raised_to_the_hard_limit() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_open_file_limit_is_raised_to_the_hard_limit",
            "switchyard-smol",
            binary::open_file_limit_is_raised_to_the_hard_limit(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers",
            "switchyard-smol",
            binary::fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack",
            "switchyard-smol",
            binary::a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_sighup_reloads_and_a_bad_file_is_rejected() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "example_sighup_reloads_and_a_bad_file_is_rejected",
            "switchyard-smol",
            binary::sighup_reloads_and_a_bad_file_is_rejected(&exe),
        )
        .await;
    }
}
