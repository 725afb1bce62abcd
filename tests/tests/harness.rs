//! Checks on the harness itself, with no proxy in between (the "proxy" address is the
//! backend's own): scenarios that only need a faithful hop pass, which shows the test
//! clients and backends speak correct HTTP and WebSocket; scenarios about what a
//! proxy must refuse or strip fail, which shows their assertions can fail.

use switchyard_e2e::futures_util::future::BoxFuture;
use switchyard_e2e::{scenarios, Config, ProxyUnderTest, RunningProxy};

/// Not a proxy: clients talk to the upstream directly.
#[derive(Clone, Copy)]
struct Direct;

impl ProxyUnderTest for Direct {
    fn name(&self) -> &'static str {
        "direct (no proxy)"
    }

    fn start(&self, config: Config) -> BoxFuture<'static, RunningProxy> {
        Box::pin(async move {
            let addr = config.upstream.parse().expect("upstream is an address");
            let (stop, _) = tokio::sync::oneshot::channel();
            let (done_tx, done) = tokio::sync::oneshot::channel();
            let _ = done_tx.send(Ok(()));
            RunningProxy::new(addr, stop, done)
        })
    }
}

macro_rules! passes_without_proxy {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            switchyard_e2e::run_scenario(stringify!($name), "direct", scenarios::$name(&Direct)).await;
        }
    )*};
}

passes_without_proxy!(
    websocket_text_roundtrip,
    websocket_one_mebibyte_message,
    websocket_client_close_code_and_reason_pass_through,
    websocket_server_close_code_and_reason_pass_through,
    pipelined_requests_answered_in_order,
    post_with_content_length,
    upload_chunked_two_mebibytes_checked_by_sha256,
    download_chunked_ten_mebibytes_checked_by_sha256,
    head_response_has_no_body,
    status_304_has_no_body,
    expect_100_continue_gets_interim_then_final,
    read_until_close_response_then_eof,
    tunnel_client_half_close,
    tunnel_upstream_half_close,
    churn_two_thousand_websocket_cycles_leave_nothing_open,
    five_hundred_concurrent_websockets_echo_and_close_cleanly,
);

/// Every listed scenario must fail (panic) when no proxy is there to do its job.
macro_rules! fail_without_proxy {
    ($($name:ident),* $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn proxy_specific_scenarios_fail_without_a_proxy() {
            let mut passed = Vec::new();
            $(
                let run = tokio::spawn(tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    scenarios::$name(&Direct),
                ));
                if matches!(run.await, Ok(Ok(()))) {
                    passed.push(stringify!($name));
                }
            )*
            assert!(passed.is_empty(), "these scenarios pass without any proxy: {passed:?}");
        }
    };
}

fail_without_proxy!(
    rejects_content_length_with_transfer_encoding,
    rejects_two_different_content_lengths,
    rejects_plus_signed_content_length,
    rejects_transfer_encoding_not_ending_in_chunked,
    rejects_obs_fold,
    rejects_space_before_colon,
    rejects_nul_in_header_value,
    rejects_cr_in_header_value,
    post_chunked,
    rejects_missing_host_on_http11,
    rejects_two_host_fields,
    rejects_invalid_chunk_size,
    rejects_missing_crlf_after_chunk_data,
    rejects_head_over_limit_with_431,
    rejects_too_many_fields_with_431,
    rejects_long_target_with_414,
    hop_by_hop_request_fields_not_forwarded_others_byte_exact,
    hop_by_hop_response_fields_not_forwarded_others_byte_exact,
    a_response_without_date_gets_the_proxys,
    unsolicited_101_is_502,
    switching_to_unrequested_protocol_is_502,
    wrong_websocket_accept_is_502,
    websocket_101_choosing_what_was_not_offered_is_502,
    bytes_after_upgrade_request_held_until_101,
    opaque_bytes_after_upgrade_request_held_until_101,
    pipelined_request_not_forwarded_before_previous_response,
    websocket_unmasked_client_frame_is_failed_with_1002,
    websocket_client_close_with_reserved_code_is_failed_with_1002,
    websocket_message_over_max_message_size_gets_1009,
    websocket_from_an_origin_not_allowed_gets_403,
    upstream_invalid_content_length_is_502,
    upstream_garbage_response_is_502,
    round_robin_alternates_between_two_backends,
    weights_and_backup_servers_share_requests_as_configured,
    routes_by_host_and_prefix_with_strip,
    over_max_connections_gets_503,
    over_max_tunnels_gets_503,
    backend_death_gives_websockets_1014_and_in_flight_request_502,
    upstream_refused_is_502_promptly,
);
