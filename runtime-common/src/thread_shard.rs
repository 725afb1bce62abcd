//! Which shard of a per-thread structure this thread uses. The upstream pool and the
//! metrics keep one shard per worker thread (as far as there are enough), so that
//! threads serving requests do not all write one lock or one counter's cache line:
//! at every request that line would move from core to core.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most shards a structure makes, however many cores there are.
pub(crate) const MAX_SHARDS: usize = 64;

/// Shards for a structure shared by every worker thread: one per core, at most
/// [`MAX_SHARDS`] (then rounded up by [`shard_count`]).
pub(crate) fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `wanted` shards as a structure makes them: a power of two from 1 to
/// [`MAX_SHARDS`], so that picking one takes a mask rather than a division.
pub(crate) fn shard_count(wanted: usize) -> usize {
    wanted.clamp(1, MAX_SHARDS).next_power_of_two()
}

/// This thread's shard of `shards` (a [`shard_count`]). Threads are numbered as they
/// first ask, so the worker threads of one runtime, which ask from their first request
/// on, get distinct shards while there are as many shards as threads.
#[inline]
pub(crate) fn this_thread(shards: usize) -> usize {
    debug_assert!(shards.is_power_of_two());
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Constant-initialised, with `usize::MAX` for "not numbered yet": read without a
    // lazy initialiser's check.
    thread_local!(static NUMBER: Cell<usize> = const { Cell::new(usize::MAX) });
    let number = NUMBER.with(|number| match number.get() {
        usize::MAX => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % MAX_SHARDS;
            number.set(n);
            n
        }
        n => n,
    });
    number & (shards - 1)
}

thread_local!(static OWN_SHARD_ONLY: Cell<bool> = const { Cell::new(false) });

/// Marks the calling thread as running an event loop of its own: from now on it
/// takes pooled connections only from its own shard. A connection stays registered
/// with the event loop of the thread that dialled it, so on another thread each of
/// its reads would be a wake-up from that thread; such a thread dials instead.
pub fn take_from_own_shard_only() {
    OWN_SHARD_ONLY.with(|only| only.set(true));
}

/// Whether [`take_from_own_shard_only`] was called on this thread.
#[inline]
pub(crate) fn own_shard_only() -> bool {
    OWN_SHARD_ONLY.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_shard_and_the_next_thread_takes_another() {
        assert_eq!(shard_count(0), 1);
        assert_eq!(shard_count(6), 8);
        assert_eq!(shard_count(1000), MAX_SHARDS);
        let mine = this_thread(MAX_SHARDS);
        assert_eq!(this_thread(MAX_SHARDS), mine);
        let (first, again) =
            std::thread::spawn(|| (this_thread(MAX_SHARDS), this_thread(MAX_SHARDS)))
                .join()
                .unwrap();
        assert_eq!(first, again);
        assert_ne!(first, mine, "a later thread is numbered after this one");
        assert_eq!(this_thread(1), 0);
    }
}
