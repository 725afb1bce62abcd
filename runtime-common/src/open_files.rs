//! The open-file limit. Each proxied connection takes two descriptors (client and
//! upstream), and a shell's soft limit is often 1,024 while the hard limit is far
//! higher: a proxy left at the soft limit refuses connections from about 500 at once.
//! So the binaries raise the soft limit to the hard one at start, as HAProxy and the
//! Go runtime do (nginx needs `worker_rlimit_nofile` for it).

/// The soft limit a binary raises to when the hard limit is unlimited (Linux's
/// default `fs.nr_open`; the kernel refuses more).
const UNLIMITED_HARD_TARGET: u64 = 1 << 20;

/// Raises this process's soft limit on open files towards `wanted`, as far as the hard
/// limit allows, and never lowers it. Returns the soft limit before and after
/// (`u64::MAX` for unlimited); equal when nothing changed or the change was refused.
#[cfg(target_os = "linux")]
pub fn raise_open_file_limit(wanted: u64) -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    let target = limit.maximum.unwrap_or(UNLIMITED_HARD_TARGET).min(wanted);
    if target <= before {
        return (before, before);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (before, target),
        Err(_) => (before, before),
    }
}

/// Elsewhere the limit is left as it is.
#[cfg(not(target_os = "linux"))]
pub fn raise_open_file_limit(_wanted: u64) -> (u64, u64) {
    (u64::MAX, u64::MAX)
}

/// Raises the soft limit to the hard one and logs what it is now, with a warning when
/// it allows few connections.
pub fn raise_open_file_limit_and_log() {
    let (before, after) = raise_open_file_limit(u64::MAX);
    if after > before {
        tracing::info!("open-file limit raised from {before} to {after}");
    }
    if after < 4096 {
        tracing::warn!(
            "open-file limit is {after}: about {} proxied connections at once; raise the hard limit (ulimit -Hn, LimitNOFILE=) for more",
            after / 2
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Asking for less than the current soft limit changes nothing (it never lowers).
    #[test]
    fn never_lowers_the_limit() {
        let (before, after) = raise_open_file_limit(1);
        assert_eq!(before, after);
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        assert_eq!(now.unwrap_or(u64::MAX), before);
    }
}
