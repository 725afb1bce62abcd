// Invariant: `proxy_protocol::parse` reaches its verdict exactly when a PROXY header's last byte arrives and never changes it with more bytes; lengths stay within the versions' bounds; generated v1 and v2 headers parse back to their client.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::proxy_protocol::check(data));
