//! Replays the checked-in seed corpora through every target's checks on stable Rust:
//! `cargo test --no-default-features` (in `fuzz/`).
//!
//! `regressions/<target>/` holds inputs that once broke an invariant in proxy-core;
//! `regressions_hold` replays them and names each that breaks one again.
//!
//! The seeds are written by `examples/write_seeds.rs` (`cargo run --no-default-features
//! --example write_seeds`), so that the binary formats stay readable in code.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use switchyard_fuzz::{
    chunked, proxy_protocol, request_head, response_head, session, upgrade, websocket_frames,
};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("request_head", request_head::check),
    ("response_head", response_head::check),
    ("chunked", chunked::check),
    ("session", session::check),
    ("upgrade", upgrade::check),
    ("websocket_frames", websocket_frames::check),
    ("proxy_protocol", proxy_protocol::check),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every file under `<kind>/<target>/`; returns the failures.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        for file in files(&root().join(kind).join(target)) {
            count += 1;
            let data = fs::read(&file).unwrap();
            if let Err(e) = panic::catch_unwind(|| check(&data)) {
                let message = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {message}", file.display()));
            }
        }
    }
    (count, failures)
}

#[test]
fn seed_corpora_hold_every_invariant() {
    let (count, failures) = replay("corpus");
    assert!(count >= 20, "only {count} seeds found");
    assert!(
        failures.is_empty(),
        "{} seeds broke an invariant:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn regressions_hold() {
    let (_, failures) = replay("regressions");
    assert!(
        failures.is_empty(),
        "{} regressions break an invariant again:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
