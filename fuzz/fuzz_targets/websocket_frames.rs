// Invariant: `FrameRelay` fed a stream cut anywhere (masked or not, with or without extensions) agrees with a whole-buffer RFC 6455 §5.2 reference decoder: same frames at the same byte boundaries, data forwarded promptly and never across a boundary, control frames whole with their unmasked payload, `at_boundary` exactly between frames, the same error when the offending header's last byte is read, and the forwarded bytes equal to the input up to it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::websocket_frames::check(data));
