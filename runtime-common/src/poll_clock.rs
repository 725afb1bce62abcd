//! The clock as read once per poll of a session's task.
//!
//! The inputs a task takes in one poll come microseconds apart, yet each wanted the
//! time (the session's input, the pool, the log event): a keep-alive request read the
//! clock eight times. Here the first reading in a poll serves the rest of it; timeouts
//! count in milliseconds and up, so a reading some microseconds old changes none of
//! them. A thread runs one task's poll at a time, so the reading is kept per thread:
//! the task [`forget`]s it before its poll ends, and the next poll (of this task or
//! another) reads the clock again. It lives here rather than in the task, whose size
//! is what an idle connection costs.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static READING: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The clock as first read in this poll; `read` reads it (the runtime's clock).
pub(crate) fn now(read: impl FnOnce() -> Instant) -> Instant {
    READING.with(|reading| match reading.get() {
        Some(now) => now,
        None => {
            let now = read();
            reading.set(Some(now));
            now
        }
    })
}

/// Ends this poll's reading: the next [`now`] reads the clock.
pub(crate) fn forget() {
    READING.with(|reading| reading.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_reading_serves_until_forgotten() {
        let (t0, t1) = (Instant::now(), Instant::now() + Duration::from_secs(1));
        forget();
        assert_eq!(now(|| t0), t0);
        assert_eq!(now(|| t1), t0, "read once per poll");
        forget();
        assert_eq!(now(|| t1), t1, "read afresh after forget");
        forget();
    }
}
