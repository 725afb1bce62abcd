// Invariant: upstream bytes split anywhere give the same outcome as in one piece, and the client gets nothing or well-formed responses: 1xx (never to HTTP/1.0), then one final head framing what follows it, or a solicited, verified 101 followed byte-exact by the upstream's bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::response_head::check(data));
