//! Every end-to-end scenario against runtime-tokio's `serve`, plus the `switchyard`
//! binary it ships.

use std::sync::Arc;
use switchyard_e2e::futures_util::future::BoxFuture;
use switchyard_e2e::{readdress, Config, ProxyUnderTest, RunningProxy, RunningSetup, Setup};

/// runtime-tokio's `serve`, spawned on the test's own tokio runtime.
struct Tokio;

impl ProxyUnderTest for Tokio {
    fn name(&self) -> &'static str {
        "runtime-tokio"
    }

    fn start(&self, config: Config) -> BoxFuture<'static, RunningProxy> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind proxy");
            let addr = listener.local_addr().unwrap();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                let result = runtime_tokio::serve(listener, Arc::new(config), shutdown).await;
                let _ = done_tx.send(result);
            });
            RunningProxy::new(addr, stop_tx, done_rx)
        })
    }

    fn start_setup(&self, mut setup: Setup) -> BoxFuture<'static, Option<RunningSetup>> {
        Box::pin(async move {
            let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
            let mut listeners = Vec::new();
            for _ in &setup.listeners {
                listeners.push(bind().await.expect("bind proxy"));
            }
            let listen: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
            readdress(&mut setup, &listen);
            let admin = bind().await.expect("bind admin");
            let admin_addr = admin.local_addr().unwrap();
            let ctx = Arc::new(runtime_tokio::Context::with_setup(
                setup,
                runtime_tokio::Tokio,
            ));
            let admin_ctx = ctx.clone();
            tokio::spawn(async move { admin_ctx.serve_admin(admin).await });
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let serve_ctx = ctx.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                serve_ctx.serve_all(listeners, shutdown).await;
                let _ = done_tx.send(Ok(()));
            });
            let proxy = RunningProxy::new(listen[0], stop_tx, done_rx);
            let reload = move |setup| ctx.reload(setup);
            Some(RunningSetup::new(proxy, listen, admin_addr, reload))
        })
    }
}

switchyard_e2e::scenarios!(Tokio);

/// The `switchyard` binary of runtime-tokio.
mod binary {
    use std::path::PathBuf;
    use switchyard_e2e::binary;

    fn exe() -> PathBuf {
        binary::cargo_bin("runtime-tokio", "switchyard")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_config_file_proxies_then_sigterm_exits_0() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_config_file_proxies_then_sigterm_exits_0",
            "switchyard",
            binary::config_file_proxies_then_sigterm_exits_0(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_json_log_lines_are_json_objects() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_json_log_lines_are_json_objects",
            "switchyard",
            binary::json_log_lines_are_json_objects(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_flags_sigterm_with_idle_keepalive_exits_0() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_flags_sigterm_with_idle_keepalive_exits_0",
            "switchyard",
            binary::flags_sigterm_with_idle_keepalive_exits_0(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_a_body_written_after_its_head_is_not_held_for_the_delayed_ack() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_a_body_written_after_its_head_is_not_held_for_the_delayed_ack",
            "switchyard",
            binary::a_body_written_after_its_head_is_not_held_for_the_delayed_ack(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack",
            "switchyard",
            binary::a_body_written_after_its_head_over_tls_is_not_held_for_the_delayed_ack(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_sigterm_with_open_websocket_exits_0_by_deadline() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_sigterm_with_open_websocket_exits_0_by_deadline",
            "switchyard",
            binary::sigterm_with_open_websocket_exits_0_by_deadline(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_own_event_loop_per_thread_serves_and_a_second_instance_is_refused() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_own_event_loop_per_thread_serves_and_a_second_instance_is_refused",
            "switchyard",
            binary::own_event_loop_per_thread_serves_and_a_second_instance_is_refused(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_bad_config_is_refused_naming_the_key() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_bad_config_is_refused_naming_the_key",
            "switchyard",
            binary::bad_config_is_refused_naming_the_key(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_sighup_reloads_and_a_bad_file_is_rejected() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_sighup_reloads_and_a_bad_file_is_rejected",
            "switchyard",
            binary::sighup_reloads_and_a_bad_file_is_rejected(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_open_file_limit_is_raised_to_the_hard_limit() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_open_file_limit_is_raised_to_the_hard_limit",
            "switchyard",
            binary::open_file_limit_is_raised_to_the_hard_limit(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_fd_exhaustion_with_own_event_loops_logs_rarely_and_recovers() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_fd_exhaustion_with_own_event_loops_logs_rarely_and_recovers",
            "switchyard",
            binary::fd_exhaustion_with_own_event_loops_logs_rarely_and_recovers(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers",
            "switchyard",
            binary::fd_exhaustion_logs_rarely_keeps_tunnels_and_recovers(&exe),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_tls_listener_from_the_file_and_check_loads_certificates() {
        let exe = exe();
        switchyard_e2e::run_scenario(
            "binary_tls_listener_from_the_file_and_check_loads_certificates",
            "switchyard",
            binary::tls_listener_from_the_file_and_check_loads_certificates(&exe),
        )
        .await;
    }
}
