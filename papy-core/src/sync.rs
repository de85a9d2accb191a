//! The one lock/condvar helper of the engine.
//!
//! Every shared state of the engine is a [`Monitor`]: a mutex and a
//! condition variable that go together, whose lock never fails (a thread
//! that panicked while holding it left the state consistent: every critical
//! section of the engine either completes its update or changes nothing, so
//! a poisoned lock is taken as it is instead of failing every later user).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks `m`, ignoring poisoning (see the module docs).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A state behind a mutex with a condition variable to wait for changes.
#[derive(Default)]
pub(crate) struct Monitor<T> {
    state: Mutex<T>,
    cv: Condvar,
}

impl<T> Monitor<T> {
    /// Locks the state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.state)
    }

    /// Releases `guard`, waits for a notification, and locks again.
    pub(crate) fn wait<'a>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// As [`wait`](Self::wait), for at most `timeout`.
    pub(crate) fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        self.cv
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Waits while `condition` holds, for at most `timeout`.
    pub(crate) fn wait_timeout_while<'a>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
        condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        self.cv
            .wait_timeout_while(guard, timeout, condition)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        self.cv.notify_all();
    }
}
