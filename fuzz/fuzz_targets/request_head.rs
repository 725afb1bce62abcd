// Invariant: client bytes split anywhere give the same outcome as in one piece, and each upstream connection gets exactly one well-formed, unambiguously framed request with no hop-by-hop field but `Connection: Upgrade`/`Upgrade` on upgrades.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::request_head::check(data));
