//! The one lock/condvar helper of the engine, and the short look for work
//! an idle engine thread takes before it sleeps (`spin_for`).
//!
//! Every shared state of the engine is a [`Monitor`]: a mutex and a
//! condition variable that go together, whose lock never fails (a thread
//! that panicked while holding it left the state consistent: every critical
//! section of the engine either completes its update or changes nothing, so
//! a poisoned lock is taken as it is instead of failing every later user).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long an idle engine thread (a pool worker without a job, the feeder
/// without credit) keeps looking for work before it sleeps.
///
/// Waking a sleeping thread costs tens of microseconds on a virtual machine
/// (a condition-variable round trip took 65-170 us on the 2-core machine
/// this was measured on; `cargo bench --bench thread_path` prints it),
/// which is several jobs of cheap items: with sleeping workers and feeder,
/// a NuMap of trivial items at stride 1000 and a buffer of 4096 ran at
/// 0.41-0.46x rayon; looking for 50 us first, 0.62-0.63x (same bench). The look yields the core between polls,
/// so a thread that has work gets it, and it is bounded, so an idle pool
/// sleeps soon after.
pub(crate) const IDLE_SPIN: Duration = Duration::from_micros(50);

/// Polls `poll` for at most [`IDLE_SPIN`], yielding the core between
/// polls: its first `Some`, or `None` when the time is up. The clock is
/// read only once the first poll found nothing (a pool thread polls once
/// per job: at stride 1, a clock read per item).
pub(crate) fn spin_for<T>(mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    poll().or_else(|| spin_until(Instant::now() + IDLE_SPIN, poll))
}

/// Polls `poll` until `until`, yielding the core between polls: its first
/// `Some`, or `None` once `until` has passed (after one poll at least).
fn spin_until<T>(until: Instant, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Locks `m`, ignoring poisoning (see the module docs).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A state behind a mutex with a condition variable to wait for changes.
#[derive(Debug, Default)]
pub struct Monitor<T> {
    state: Mutex<T>,
    cv: Condvar,
}

impl<T> Monitor<T> {
    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.state)
    }

    /// Releases `guard`, waits for a notification, and locks again.
    pub fn wait<'a>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// As [`wait`](Self::wait), for at most `timeout`.
    pub fn wait_timeout<'a>(
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
    pub fn wait_timeout_while<'a>(
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
    pub fn notify_all(&self) {
        self.cv.notify_all();
    }
}

/// A flag that tells a following reader to end; [`Plumber::stop`]
/// raises the one returned by [`Plumber::stop_signal`].
///
/// [`Plumber::stop`]: crate::Plumber::stop
/// [`Plumber::stop_signal`]: crate::Plumber::stop_signal
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// A new, lowered signal.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Raises the signal.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Lowers the signal (a restarted pipeline).
    pub fn lower(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether the signal is raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
