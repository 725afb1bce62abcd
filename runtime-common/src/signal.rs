//! A signal that wakes every waiting task at once: the drain and retirement signal
//! every session waits on, and the one a drain waits on for the last session to end.

use slab::Slab;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Wakes every registered task when notified. Every session waits on it for its
/// whole life, so a registration is one waker in a shared slab (24 bytes), not an
/// allocation of its own.
///
/// Every session checks the signal at each poll of its task, on every worker
/// thread, so a check that finds the task already registered with the same waker
/// takes no lock: it reads the epoch, which only a notification changes. One lock
/// per poll, shared by all threads, would be one cache line bouncing between every
/// core under load.
#[derive(Default)]
pub(crate) struct Signal {
    inner: Mutex<Inner>,
    /// `Inner::epoch`, readable without the lock (written under it).
    epoch: AtomicU32,
}

#[derive(Default)]
struct Inner {
    waiters: Slab<Waker>,
    /// Bumped by every notification, which empties `waiters`: a registration from
    /// an earlier epoch is gone (its key may have been reused).
    epoch: u32,
}

/// A task's place in a [`Signal`], if it has one: the epoch and slab key, and which
/// waker is stored there (its data and vtable addresses, as `Waker::will_wake`
/// compares them; the addresses are only compared, never followed).
#[derive(Debug, Default)]
pub(crate) struct Registration(Option<Place>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    epoch: u32,
    key: u32,
    waker: (usize, NonZeroUsize),
}

/// What tells two wakers apart, as `Waker::will_wake` does.
fn identity(waker: &Waker) -> (usize, NonZeroUsize) {
    let vtable: *const std::task::RawWakerVTable = waker.vtable();
    // A reference's address is never 0, which leaves `Option<Place>` its niche.
    let vtable = NonZeroUsize::new(vtable as usize).unwrap_or(NonZeroUsize::MIN);
    (waker.data() as usize, vtable)
}

impl Signal {
    /// Wakes every registered task; each finds out what happened by checking again.
    pub(crate) fn notify_all(&self) {
        let waiters = {
            let mut inner = self.lock();
            inner.epoch = inner.epoch.wrapping_add(1);
            self.epoch.store(inner.epoch, Ordering::Release);
            std::mem::take(&mut inner.waiters)
        };
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// Ready with `check()`'s value once it has one. Otherwise the task stays
    /// registered (once, however often it polls) to be woken by the next
    /// notification. State is changed before notifying, so checking again after
    /// registering cannot miss a notification that came in between.
    ///
    /// A task registered in the current epoch with the same waker is left as it is,
    /// without the lock: its waker is still in `waiters` (only a notification takes
    /// it, and that moves the epoch), so a notification that comes after this check
    /// wakes it.
    pub(crate) fn poll_wait<T>(
        &self,
        registration: &mut Registration,
        cx: &mut Context<'_>,
        mut check: impl FnMut() -> Option<T>,
    ) -> Poll<T> {
        if let Some(value) = check() {
            self.cancel(registration);
            return Poll::Ready(value);
        }
        let waker = identity(cx.waker());
        let epoch = self.epoch.load(Ordering::Acquire);
        if registration
            .0
            .is_some_and(|p| p.epoch == epoch && p.waker == waker)
        {
            return Poll::Pending;
        }
        {
            let mut inner = self.lock();
            let epoch = inner.epoch;
            let current = registration.0.filter(|place| place.epoch == epoch);
            match current.and_then(|place| inner.waiters.get_mut(place.key as usize)) {
                Some(stored) => stored.clone_from(cx.waker()),
                None => {
                    let key = inner.waiters.insert(cx.waker().clone());
                    registration.0 = u32::try_from(key)
                        .ok()
                        .map(|key| Place { epoch, key, waker });
                }
            }
            if let Some(place) = &mut registration.0 {
                place.waker = waker;
            }
        }
        match check() {
            Some(value) => {
                self.cancel(registration);
                Poll::Ready(value)
            }
            None => Poll::Pending,
        }
    }

    /// Gives up `registration`'s place, if it still has one.
    pub(crate) fn cancel(&self, registration: &mut Registration) {
        if let Some(place) = registration.0.take() {
            let mut inner = self.lock();
            if inner.epoch == place.epoch {
                inner.waiters.try_remove(place.key as usize);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_waiter_is_registered_once_and_woken_by_the_notification() {
        let signal = Signal::default();
        let (count, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        let mut registration = Registration::default();
        for _ in 0..3 {
            assert!(signal
                .poll_wait(&mut registration, &mut cx, || None::<()>)
                .is_pending());
        }
        assert_eq!(signal.lock().waiters.len(), 1);
        signal.notify_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(signal.lock().waiters.is_empty());
        // After the notification the old key is stale: waiting again registers anew.
        assert!(signal
            .poll_wait(&mut registration, &mut cx, || None::<()>)
            .is_pending());
        assert_eq!(signal.lock().waiters.len(), 1);
        assert_eq!(
            signal.poll_wait(&mut registration, &mut cx, || Some(7)),
            Poll::Ready(7)
        );
        assert!(signal.lock().waiters.is_empty(), "ready gives the place up");
    }

    #[test]
    fn a_stale_key_never_touches_another_waiters_place() {
        let signal = Signal::default();
        let (first_count, first) = waker();
        let (second_count, second) = waker();
        let mut a = Registration::default();
        let mut b = Registration::default();
        let _ = signal.poll_wait(&mut a, &mut Context::from_waker(&first), || None::<()>);
        signal.notify_all();
        // `b` takes the slot `a` had; `a`'s cancel must leave it alone.
        let _ = signal.poll_wait(&mut b, &mut Context::from_waker(&second), || None::<()>);
        signal.cancel(&mut a);
        signal.notify_all();
        assert_eq!(first_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_poll_with_another_waker_replaces_the_stored_one() {
        let signal = Signal::default();
        let (first_count, first) = waker();
        let (second_count, second) = waker();
        let mut registration = Registration::default();
        for waker in [&first, &second] {
            let poll = signal.poll_wait(&mut registration, &mut Context::from_waker(waker), || {
                None::<()>
            });
            assert!(poll.is_pending());
        }
        assert_eq!(signal.lock().waiters.len(), 1);
        signal.notify_all();
        assert_eq!(first_count.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            second_count.0.load(Ordering::SeqCst),
            1,
            "the latest waker is woken"
        );
    }

    #[test]
    fn a_registered_task_polled_again_with_its_waker_takes_no_lock() {
        let signal = Arc::new(Signal::default());
        let (count, waker) = waker();
        let mut registration = Registration::default();
        let mut cx = Context::from_waker(&waker);
        assert!(signal
            .poll_wait(&mut registration, &mut cx, || None::<()>)
            .is_pending());
        // Another thread holds the lock until this one has polled again (or 10 s).
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (polled_tx, polled_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let signal = signal.clone();
            std::thread::spawn(move || {
                let _guard = signal.lock();
                locked_tx.send(()).unwrap();
                polled_rx
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .is_ok()
            })
        };
        locked_rx.recv().unwrap();
        assert!(signal
            .poll_wait(&mut registration, &mut cx, || None::<()>)
            .is_pending());
        polled_tx.send(()).unwrap();
        assert!(holder.join().unwrap(), "the poll waited for the lock");
        signal.notify_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "and is still woken");
    }

    #[test]
    fn cancel_frees_the_place() {
        let signal = Signal::default();
        let (count, waker) = waker();
        let mut registration = Registration::default();
        let _ = signal.poll_wait(&mut registration, &mut Context::from_waker(&waker), || {
            None::<()>
        });
        signal.cancel(&mut registration);
        assert!(signal.lock().waiters.is_empty());
        signal.notify_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }
}
