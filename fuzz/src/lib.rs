//! Invariant checks over `proxy-core`, one module per fuzz target.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling `<name>::check(data)`; the bodies
//! live here so that a stable `cargo test --no-default-features` compiles them and
//! replays the checked-in corpora and regressions (see `tests/corpus.rs`). A check
//! panics, with a message saying which invariant broke and on what, when the core
//! breaks one; libFuzzer reports that panic as a crash.

pub mod chunked;
pub mod http;
pub mod input;
pub mod proxy_protocol;
pub mod request_head;
pub mod response_head;
pub mod session;
pub mod tunnel;
pub mod upgrade;
pub mod websocket_frames;
