// Invariant: a near-valid request/response pair (fuzz-chosen mutations) opens a tunnel exactly when an independent model of RFC 9110 §7.8 / RFC 6455 §4 says so, else a 101 gets 502 and the upstream is dropped; the client's bytes after the request never reach the upstream before the tunnel opens, then exactly once and in order, and after another final response only as a parsed, rewritten next request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::upgrade::check(data));
