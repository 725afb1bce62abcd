//! The `switchyard` binary's threads with event loops of their own
//! (`work_stealing = false`): each runs tokio's current-thread scheduler over its own
//! listeners and is bound to a CPU of its own while there are enough.

use runtime_tokio::Context;
use std::sync::Arc;
use tracing::warn;

/// tokio's current-thread scheduler: every task stays on the thread that spawned it,
/// with no work-stealing queues or cross-thread wake-ups to pay for (one thread, or
/// each thread's own with `work_stealing = false`: README, "Worker threads").
pub(crate) fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Starts worker thread `number` (the main thread is worker 0), accepting on
/// `listeners` (its own sockets of each listening address) beside the main thread
/// until the drain; bound to `cpu` if given.
pub(crate) fn start_worker(
    number: usize,
    listeners: Vec<std::net::TcpListener>,
    cpu: Option<usize>,
    ctx: &Arc<Context>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = current_thread_runtime()?;
    let ctx = ctx.clone();
    std::thread::Builder::new()
        .name(format!("switchyard-{number}"))
        .spawn(move || {
            settle_here(number, cpu);
            runtime.block_on(async move {
                match registered(listeners) {
                    Ok(listeners) => ctx.serve_alongside(listeners).await,
                    Err(e) => warn!(worker = number, error = %e, "worker thread cannot accept"),
                }
            })
        })
}

/// `listeners` registered with the calling thread's runtime.
pub(crate) fn registered(
    listeners: Vec<std::net::TcpListener>,
) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    (listeners.into_iter())
        .map(tokio::net::TcpListener::from_std)
        .collect()
}

/// Makes the calling thread event loop `number`: bound to `cpu` if given (a failure
/// is logged and leaves it unbound), and taking pooled upstream connections only
/// from its own shard, which holds the connections its own event loop drives.
pub(crate) fn settle_here(number: usize, cpu: Option<usize>) {
    runtime_common::take_from_own_shard_only();
    if let Some(cpu) = cpu {
        if let Err(e) = runtime_common::bind_this_thread(cpu) {
            warn!(worker = number, cpu, error = %e, "cannot bind the thread to its CPU");
        }
    }
}
