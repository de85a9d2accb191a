//! The buffer (credits for items submitted and not yet retrieved) and the
//! doorbell that wakes the feeder when anything changes.
//!
//! The bound is `size`, with one exception that makes the weave
//! deadlock-free: a task with *nothing* in flight or unread may always
//! submit one batch, even over the bound. A reader waiting for a task's next
//! item therefore never waits on credits held by results that only it would
//! read (PaPy's "results must be consumed in weave order" trap). The total
//! is thus at most `size + tasks x stride`, and exactly `size` with one task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes the feeder: rung on every release, handoff and stop.
#[derive(Default)]
pub(crate) struct Doorbell {
    rings: Mutex<u64>,
    cv: Condvar,
}

impl Doorbell {
    pub(crate) fn ring(&self) {
        *lock(&self.rings) += 1;
        self.cv.notify_all();
    }

    pub(crate) fn seen(&self) -> u64 {
        *lock(&self.rings)
    }

    /// Waits until rung after `seen`, or `timeout`.
    pub(crate) fn wait(&self, seen: u64, timeout: Duration) {
        let g = lock(&self.rings);
        if *g != seen {
            return;
        }
        let _ = self
            .cv
            .wait_timeout_while(g, timeout, |r| *r == seen)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

pub(crate) struct Credits {
    in_use: Mutex<usize>,
    size: usize,
    closed: AtomicBool,
    pub(crate) bell: Arc<Doorbell>,
}

impl Credits {
    pub(crate) fn new(size: usize, bell: Arc<Doorbell>) -> Credits {
        Credits {
            in_use: Mutex::new(0),
            size,
            closed: AtomicBool::new(false),
            bell,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Items currently submitted and not handed out.
    pub(crate) fn in_use(&self) -> usize {
        *lock(&self.in_use)
    }

    /// Takes `n` credits if they fit, or if the task has nothing
    /// outstanding (`task_idle`). Never blocks.
    pub(crate) fn try_acquire(&self, n: usize, task_idle: bool) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut u = lock(&self.in_use);
        if *u + n <= self.size || task_idle {
            *u += n;
            true
        } else {
            false
        }
    }

    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut u = lock(&self.in_use);
        *u = u.saturating_sub(n);
        drop(u);
        self.bell.ring();
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.bell.ring();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_with_idle_task_exception() {
        let c = Credits::new(4, Arc::default());
        assert!(c.try_acquire(4, true));
        assert!(!c.try_acquire(1, false), "full");
        assert!(
            c.try_acquire(2, true),
            "an idle task may exceed the bound once"
        );
        assert_eq!(c.in_use(), 6);
        c.release(3);
        assert!(!c.try_acquire(2, false));
        assert!(c.try_acquire(1, false));
        c.close();
        assert!(!c.try_acquire(1, true));
    }

    #[test]
    fn doorbell_wakes_waiter() {
        let b = Arc::new(Doorbell::default());
        let seen = b.seen();
        let b2 = b.clone();
        let t = std::thread::spawn(move || {
            b2.wait(seen, Duration::from_secs(10));
        });
        std::thread::sleep(Duration::from_millis(10));
        b.ring();
        t.join().unwrap();
        assert_ne!(b.seen(), seen);
    }
}
