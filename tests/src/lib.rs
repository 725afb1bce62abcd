//! # Switchyard end-to-end scenarios
//!
//! Every scenario is written once, in [`scenarios`](mod@scenarios), against the runtime-neutral
//! [`ProxyUnderTest`]: "start a proxy with this [`Config`] on 127.0.0.1, tell me its
//! address, and stop it when I say so". A runtime's test file implements that trait
//! and expands the whole list with [`scenarios!`], one `#[tokio::test]` per scenario:
//!
//! ```ignore
//! struct Tokio;
//! impl switchyard_e2e::ProxyUnderTest for Tokio { /* start runtime_tokio::serve */ }
//! switchyard_e2e::scenarios!(Tokio);
//! ```
//!
//! The clients and backends always run on tokio (tokio-tungstenite is the real
//! WebSocket peer); the proxy under test may run on any executor, e.g. on a thread of
//! its own, as long as it listens on the address it reports.
//!
//! Rules every scenario keeps: ports come from binding port 0, every wait is bounded,
//! nothing sleeps except where a timeout is the thing under test, and each one stops
//! by itself within [`SCENARIO_LIMIT`].

pub mod backend;
pub mod binary;
pub mod http;
pub mod scenarios;
pub mod tls;
pub mod ws;

#[doc(hidden)]
pub use futures_util;
use futures_util::future::BoxFuture;
pub use proxy_core::Config;
pub use runtime_common::{ListenMode, ListenerSetup, Setup};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;

#[doc(hidden)]
pub use tokio as __tokio;

/// Upper bound on one scenario's run time.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(10);

/// A runtime that can run the proxy for a test.
pub trait ProxyUnderTest: Send + Sync {
    /// A name for messages, e.g. `runtime-tokio`.
    fn name(&self) -> &'static str;
    /// Starts a proxy with `config` listening on a fresh port of 127.0.0.1.
    fn start(&self, config: Config) -> BoxFuture<'static, RunningProxy>;
    /// Starts a proxy serving `setup` through the shared accept loop: each of its
    /// listeners on a fresh port of 127.0.0.1 (their addresses are replaced, in
    /// order, see [`readdress`]), plus an admin listener for `/metrics`. `None` for a
    /// runtime embedded through `serve_connection` only (async-std's), whose own accept
    /// loop knows no listener setups: scenarios that need one pass there vacuously.
    fn start_setup(&self, setup: Setup) -> BoxFuture<'static, Option<RunningSetup>> {
        let _ = setup;
        Box::pin(async { None })
    }
}

/// Gives `setup`'s listeners the addresses actually bound, in order.
pub fn readdress(setup: &mut Setup, addrs: &[SocketAddr]) {
    for (listener, addr) in setup.listeners.iter_mut().zip(addrs) {
        listener.address = *addr;
    }
}

/// A proxy started by [`ProxyUnderTest::start_setup`].
pub struct RunningSetup {
    /// The proxy (its `addr` is the first listener's).
    pub proxy: RunningProxy,
    /// Every listener's address, in the setup's order.
    pub listen: Vec<SocketAddr>,
    /// Where `GET /metrics` is served.
    pub admin: SocketAddr,
    reload: Box<dyn Fn(Setup) -> Result<(), String> + Send + Sync>,
}

impl RunningSetup {
    /// `reload` swaps in a setup (readdressed to the same listeners) and says whether
    /// the proxy took it.
    pub fn new(
        proxy: RunningProxy,
        listen: Vec<SocketAddr>,
        admin: SocketAddr,
        reload: impl Fn(Setup) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        RunningSetup {
            proxy,
            listen,
            admin,
            reload: Box::new(reload),
        }
    }

    /// Reloads the proxy with `setup` (its listeners readdressed to the running ones).
    pub fn reload(&self, mut setup: Setup) -> Result<(), String> {
        readdress(&mut setup, &self.listen);
        (self.reload)(setup)
    }
}

/// A proxy started by a [`ProxyUnderTest`]. Dropping it asks the proxy to shut down
/// without waiting; [`RunningProxy::shutdown`] waits for `serve` to return.
pub struct RunningProxy {
    /// Where the proxy accepts clients.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<io::Result<()>>>,
}

impl RunningProxy {
    /// `stop` is sent (or dropped) to make the proxy's shutdown future complete;
    /// `done` yields what `serve` returned.
    pub fn new(
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        done: oneshot::Receiver<io::Result<()>>,
    ) -> Self {
        RunningProxy {
            addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// Completes the proxy's shutdown future without waiting for it to finish.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Completes the shutdown future and waits (at most `max`) for `serve` to return.
    /// `Err` describes a timeout, an error from `serve`, or a serve task that died.
    pub async fn shutdown(mut self, max: Duration) -> Result<(), String> {
        self.begin_shutdown();
        let done = self.done.take().expect("shutdown called once");
        match tokio::time::timeout(max, done).await {
            Err(_) => Err(format!(
                "serve did not return within {max:?} of the shutdown signal"
            )),
            Ok(Err(_)) => Err("the serve task ended without a result (panicked?)".into()),
            Ok(Ok(Err(e))) => Err(format!("serve returned an error: {e}")),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The configuration scenarios start from: upstream `upstream`, every deadline short
/// enough that a stuck exchange ends well inside [`SCENARIO_LIMIT`], but long enough
/// that no deadline fires during a healthy exchange on a loaded 2-core machine.
/// Scenarios that test a deadline set it lower themselves.
pub fn test_config(upstream: SocketAddr) -> Config {
    let mut c = Config {
        upstream: upstream.to_string(),
        ..Config::default()
    };
    let t = &mut c.timeouts;
    let s = Duration::from_secs;
    t.upstream_connect = s(3);
    t.client_head = s(5);
    t.upstream_response_head = s(5);
    t.body_read = s(5);
    t.keepalive_idle = s(5);
    t.send = s(5);
    t.tunnel_idle = s(8);
    t.fin = s(3);
    t.linger = Duration::from_millis(300);
    t.shutdown = s(1);
    c
}

/// Sets `SO_SNDBUF` of a connected stream to `bytes` (the kernel doubles it for its
/// bookkeeping, and stops autotuning it), so that what it buffers is small and known.
pub fn set_send_buffer(stream: &tokio::net::TcpStream, bytes: u32) -> io::Result<()> {
    rustix::net::sockopt::set_socket_send_buffer_size(stream, bytes as usize).map_err(Into::into)
}

/// Raises this process's soft limit on open files to at least `wanted` if the hard
/// limit allows (never lowers it); returns the soft limit now in force (`u64::MAX` for
/// unlimited).
pub fn raise_fd_limit(wanted: u64) -> u64 {
    runtime_common::raise_open_file_limit(wanted).1
}

/// Runs one scenario future under [`SCENARIO_LIMIT`]; a timeout is a failure.
pub async fn run_scenario<F: std::future::Future<Output = ()>>(name: &str, runtime: &str, f: F) {
    if tokio::time::timeout(SCENARIO_LIMIT, f).await.is_err() {
        panic!("scenario {name} on {runtime} did not finish within {SCENARIO_LIMIT:?}");
    }
}

/// Expands every scenario in [`scenarios`](mod@scenarios) into a `#[tokio::test]` for the
/// [`ProxyUnderTest`] value given, e.g. `scenarios!(Tokio)`. Test names are the
/// scenario names.
#[macro_export]
macro_rules! scenarios {
    ($put:expr) => {
        $crate::__each_scenario!($put;
            // websocket
            websocket_text_roundtrip,
            websocket_binary_roundtrip,
            websocket_one_mebibyte_message,
            websocket_large_and_small_messages_mixed_in_flight,
            websocket_mixed_messages_with_a_small_odd_pipe,
            websocket_mixed_messages_with_no_pipe,
            websocket_thousand_messages_in_order,
            websocket_client_close_code_and_reason_pass_through,
            websocket_server_close_code_and_reason_pass_through,
            websocket_upgrade_request_headers_reach_backend,
            websocket_message_over_max_message_size_gets_1009,
            websocket_from_an_origin_not_allowed_gets_403,
            fifty_concurrent_websockets,
            // plain http
            keep_alive_reuses_one_upstream_connection,
            pipelined_requests_answered_in_order,
            pipelined_request_not_forwarded_before_previous_response,
            post_with_content_length,
            post_chunked,
            upload_ten_mebibytes_checked_by_sha256,
            upload_chunked_two_mebibytes_checked_by_sha256,
            download_ten_mebibytes_checked_by_sha256,
            download_chunked_ten_mebibytes_checked_by_sha256,
            large_bodies_both_ways_on_one_connection_with_a_request_pipelined,
            head_response_has_no_body,
            status_204_has_no_body,
            status_304_has_no_body,
            expect_100_continue_gets_interim_then_final,
            read_until_close_response_then_eof,
            http10_request_gets_host_and_response,
            // upstream pool
            upstream_pool_reused_across_client_connections,
            more_exchanges_in_flight_than_max_idle_keep_their_connections,
            pool_max_idle_zero_dials_every_time,
            stale_pooled_connection_is_replaced,
            // smuggling and limits
            rejects_content_length_with_transfer_encoding,
            rejects_two_different_content_lengths,
            rejects_non_numeric_content_length,
            rejects_plus_signed_content_length,
            rejects_transfer_encoding_not_ending_in_chunked,
            rejects_unknown_transfer_coding,
            rejects_chunked_applied_twice,
            rejects_transfer_encoding_on_http10,
            rejects_obs_fold,
            rejects_space_before_colon,
            rejects_nul_in_header_value,
            rejects_cr_in_header_value,
            rejects_bare_lf_line_endings,
            rejects_control_character_in_transfer_encoding,
            rejects_missing_host_on_http11,
            rejects_two_host_fields,
            rejects_invalid_chunk_size,
            rejects_chunk_size_overflow,
            rejects_missing_crlf_after_chunk_data,
            rejects_whitespace_after_chunk_size,
            rejects_head_over_limit_with_431,
            rejects_too_many_fields_with_431,
            rejects_long_target_with_414,
            // hop-by-hop
            hop_by_hop_request_fields_not_forwarded_others_byte_exact,
            hop_by_hop_response_fields_not_forwarded_others_byte_exact,
            a_response_without_date_gets_the_proxys,
            connection_close_request_closes_client_connection,
            upgrade_field_without_connection_upgrade_not_forwarded,
            connection_cannot_strip_content_length_or_host,
            // upgrade
            websocket_upgrade_without_one_valid_key_is_400,
            unsolicited_101_is_502,
            switching_to_unrequested_protocol_is_502,
            wrong_websocket_accept_is_502,
            websocket_101_choosing_what_was_not_offered_is_502,
            bytes_after_upgrade_request_held_until_101,
            opaque_bytes_after_upgrade_request_held_until_101,
            non_101_answer_to_upgrade_is_normal_response,
            // tunnel
            tunnel_idle_timeout_sends_close_1001_both_ways,
            opaque_tunnel_idle_timeout_closes_tcp,
            tunnel_activity_keeps_it_open,
            websocket_pings_keep_quiet_tunnel_alive,
            websocket_peer_pings_and_pongs_pass_through,
            websocket_payload_arriving_after_its_header_is_relayed_intact,
            websocket_client_not_answering_pings_is_dropped,
            websocket_silent_peers_are_dropped_by_the_timers_alone,
            websocket_upstream_not_answering_pings_gets_1011,
            websocket_unmasked_client_frame_is_failed_with_1002,
            websocket_client_close_with_reserved_code_is_failed_with_1002,
            websocket_upstream_vanishing_gives_client_1014,
            websocket_client_vanishing_gives_upstream_1001,
            websocket_close_handshake_closes_the_client_without_waiting_for_the_upstream,
            tunnel_client_half_close,
            tunnel_upstream_half_close,
            opaque_tunnel_stalled_upstream_resumes_with_every_byte_in_order,
            opaque_tunnel_fin_timeout_closes_both,
            // upstream failures and deadlines
            upstream_unreachable_is_502,
            upstream_closes_without_answer_is_502,
            upstream_silent_is_504,
            an_earlier_deadline_on_a_kept_alive_connection_fires_on_time,
            slow_client_head_is_408,
            idle_keepalive_client_closed_after_keepalive_idle,
            stalled_request_body_is_408,
            a_slow_request_body_is_gathered_before_the_backend_is_dialled,
            a_request_body_below_min_request_body_rate_is_408,
            request_bodies_over_max_request_body_get_413,
            stalled_response_body_closes_client,
            client_not_reading_hits_send_timeout,
            upstream_invalid_content_length_is_502,
            upstream_response_head_over_limit_is_502,
            upstream_garbage_response_is_502,
            // upstream groups and routes
            round_robin_alternates_between_two_backends,
            weights_and_backup_servers_share_requests_as_configured,
            client_ip_balance_keeps_each_client_on_one_server,
            dead_backend_is_skipped_and_the_request_retried_on_the_next,
            routes_by_host_and_prefix_with_strip,
            // limits
            over_max_connections_gets_503,
            over_max_connections_per_ip_gets_503,
            over_max_tunnels_gets_503,
            new_connections_over_the_rate_get_503,
            // TLS (needs start_setup)
            https_through_a_tls_listener,
            wss_through_a_tls_listener,
            sni_picks_the_certificate_by_server_name,
            tls_sessions_resume_for_hundreds_of_clients_and_across_a_reload,
            a_redirect_https_listener_sends_requests_to_the_tls_one,
            unfinished_tls_handshake_is_closed_after_client_head,
            // PROXY protocol listeners (needs start_setup)
            proxy_protocol_headers_name_the_client,
            a_connection_without_a_valid_proxy_header_is_closed,
            proxy_protocol_comes_before_tls,
            upstream_tls_verified_with_a_ca_file,
            // layer 4 (needs start_setup)
            tcp_listener_relays_bytes_untouched_with_half_close,
            tcp_listener_sends_a_proxy_header_upstream,
            tcp_listener_passes_tls_through_intact,
            tcp_listener_idle_timeout_closes_both,
            // metrics and reload (need start_setup)
            metrics_count_requests_tunnels_and_connect_failures,
            reload_new_connections_get_it_and_tunnels_keep_the_old_until_the_deadline,
            reload_with_an_invalid_config_is_refused_and_the_old_stays,
            // shutdown
            shutdown_with_idle_keepalive_connection_returns_promptly,
            shutdown_lets_in_flight_request_finish,
            shutdown_ends_open_tunnel_by_deadline,
            // reliability (issue 11), CI-sized
            churn_two_thousand_websocket_cycles_leave_nothing_open,
            five_hundred_concurrent_websockets_echo_and_close_cleanly,
            slowloris_gets_408_at_client_head_while_others_are_served,
            slow_readers_stall_the_upstream_while_others_are_served,
            backend_death_gives_websockets_1014_and_in_flight_request_502,
            upstream_refused_is_502_promptly,
            upstream_blackholed_is_504_at_the_deadline,
            upstream_connect_timeout_is_502_at_the_deadline,
            malformed_flood_gets_4xx_or_close_and_reaches_no_backend,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __each_scenario {
    ($put:expr; $($name:ident),* $(,)?) => {
        $(
            #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let put = $put;
                let runtime = $crate::ProxyUnderTest::name(&put);
                $crate::run_scenario(stringify!($name), runtime, $crate::scenarios::$name(&put)).await;
            }
        )*
    };
}
