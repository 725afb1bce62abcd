// Invariant: `ChunkedDecoder` fed in any split agrees with the reference model step for step (same chunks and data, an error at the same byte, the same end and leftover), valid encodings decode to their body, and the proxy's re-encoding of what it decoded is valid and carries the same body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::chunked::check(data));
