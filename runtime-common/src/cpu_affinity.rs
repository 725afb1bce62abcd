//! Binding each event-loop thread to a CPU of its own (`work_stealing = false`).
//!
//! Unbound, two such threads sharing a 2-core machine with a load generator were at
//! times queued on one core while the other ran something else, and every connection
//! of the waiting thread waited with it: a WebSocket echo's p99 was 4.4 ms unbound
//! against 1.5 ms bound (README, "Worker threads"). nginx's `worker_cpu_affinity
//! auto` and HAProxy's `cpu-map` bind their workers the same way.

use std::io;

/// The CPUs this process may run on (its affinity mask, as `taskset` or a cgroup set
/// it), in ascending order; empty where that is unknown.
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    if let Ok(set) = rustix::thread::sched_getaffinity(None) {
        return (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect();
    }
    Vec::new()
}

/// Binds the calling thread to `cpu` (one of [`allowed_cpus`]).
pub fn bind_this_thread(cpu: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU binding is Linux only",
        ))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_bound_thread_runs_on_that_cpu_only_and_others_keep_theirs() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty(), "this process may run somewhere");
        let last = *allowed.last().unwrap();
        let seen_bound = std::thread::spawn(move || {
            bind_this_thread(last).unwrap();
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(seen_bound, vec![last]);
        assert_eq!(allowed_cpus(), allowed, "only the bound thread changed");
    }
}
