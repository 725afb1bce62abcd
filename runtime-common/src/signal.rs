//! A signal that wakes every waiting task at once: the drain and retirement signal
//! every session waits on, and the one a drain waits on for the last session to end.

use slab::Slab;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Wakes every registered task when notified. Every session waits on it for its
/// whole life, so a registration is one waker in a shared slab (24 bytes), not an
/// allocation of its own.
#[derive(Default)]
pub(crate) struct Signal {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    waiters: Slab<Waker>,
    /// Bumped by every notification, which empties `waiters`: a registration from
    /// an earlier epoch is gone (its key may have been reused).
    epoch: u32,
}

/// A task's place in a [`Signal`], if it has one: the epoch and slab key.
#[derive(Debug, Default)]
pub(crate) struct Registration(Option<(u32, u32)>);

impl Signal {
    /// Wakes every registered task; each finds out what happened by checking again.
    pub(crate) fn notify_all(&self) {
        let waiters = {
            let mut inner = self.lock();
            inner.epoch = inner.epoch.wrapping_add(1);
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
        {
            let mut inner = self.lock();
            let epoch = inner.epoch;
            let current = registration.0.filter(|&(at, _)| at == epoch);
            match current.and_then(|(_, key)| inner.waiters.get_mut(key as usize)) {
                Some(waker) => waker.clone_from(cx.waker()),
                None => {
                    let key = inner.waiters.insert(cx.waker().clone());
                    registration.0 = u32::try_from(key).ok().map(|key| (epoch, key));
                }
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
        if let Some((epoch, key)) = registration.0.take() {
            let mut inner = self.lock();
            if inner.epoch == epoch {
                inner.waiters.try_remove(key as usize);
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
