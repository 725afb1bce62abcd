// Invariant: under any sequence of peer events and clock moves the session never panics, emits nothing after `Close`, never leaves an expired deadline behind `handle_timeout(now)`, writes only to sockets it holds and has not shut, never sends the client much more than the upstream sent, forwards tunnel bytes exactly and in order both ways, and always terminates on its own timers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::session::check(data));
