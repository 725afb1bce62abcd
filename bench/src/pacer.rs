//! A send schedule kept to the microsecond, for the fixed-rate echo.
//!
//! tokio's timer wakes on millisecond ticks, so with 64 connections at 10 000
//! messages/s all the sends due within one tick (about ten) went out together, and
//! each round trip queued behind the rest of its burst on the load generator's core:
//! the p99 measured the burst, not the proxy. A `timerfd` fires on the kernel's
//! high-resolution clock, so each connection sends on its own point of the schedule.

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Ticks every `period`, the first after `first`.
pub(crate) struct Pacer(AsyncFd<OwnedFd>);

impl Pacer {
    pub(crate) fn new(first: Duration, period: Duration) -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Zero would disarm it.
        let timespec = |d: Duration| Timespec::try_from(d.max(Duration::from_nanos(1)));
        let schedule = Itimerspec {
            it_interval: timespec(period).map_err(io::Error::other)?,
            it_value: timespec(first).map_err(io::Error::other)?,
        };
        timerfd_settime(&fd, TimerfdTimerFlags::empty(), &schedule)?;
        // SAFETY: the `AsyncFd` owns the descriptor, so it stays open (and is not
        // replaced: nothing here takes it out) for as long as it is registered.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        Ok(Pacer(registered.map_err(io::Error::from)?))
    }

    /// Waits for the next tick. Ticks missed meanwhile (a late echo) count as one: the
    /// next send goes at once, and the one after on the schedule, rather than queueing
    /// sends up.
    pub(crate) async fn tick(&self) -> io::Result<()> {
        loop {
            let mut ready = self.0.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(read) => return read.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn ticks_keep_the_period_well_below_a_millisecond() {
        let period = Duration::from_micros(100);
        let pacer = Pacer::new(period, period).unwrap();
        let start = Instant::now();
        for _ in 0..50 {
            pacer.tick().await.unwrap();
        }
        let took = start.elapsed();
        // The first tick comes one period after the timer was set, a little before
        // `start`. tokio's timer rounds each wait up to a whole millisecond: 50 ms.
        assert!(took >= period * 49, "{took:?}");
        assert!(took < Duration::from_millis(40), "{took:?}");
    }

    #[tokio::test]
    async fn missed_ticks_count_as_one() {
        let period = Duration::from_micros(100);
        let pacer = Pacer::new(period, period).unwrap();
        std::thread::sleep(Duration::from_millis(5)); // about 50 ticks missed
        let start = Instant::now();
        let mut ticks = 0;
        while start.elapsed() < Duration::from_millis(1) {
            pacer.tick().await.unwrap();
            ticks += 1;
        }
        // On the schedule: about ten in a millisecond, not the 50 missed ones first.
        assert!(ticks <= 20, "{ticks} ticks in 1 ms");
    }
}
