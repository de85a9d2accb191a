//! The buffer (credits for items submitted and not yet retrieved) and the
//! doorbell that wakes the feeder when anything changes.
//!
//! Credits are per item: a slot is taken per item submitted and given back
//! per item handed to a reader (PaPy frees a slot per result read). A task
//! takes what is free, up to a stride ([`Credits::acquire_up_to`]), so one
//! slow item never holds back the items behind it: batching is an
//! optimisation of what is submittable, never a reason to wait.
//!
//! The bound is `size`, with one exception that makes the weave
//! deadlock-free: a task that is *starved* (a reader waits for it, and it
//! has nothing in flight or unread) may always submit one batch, even over
//! the bound. A task nobody waits for gets no exception, so the exception
//! never lets a task take a turn out of the weave's cycle.
//!
//! Why no reader can wait forever: a reader waits for its task's next item
//! `i` (ordered mode; unordered is weaker). Items are submitted in input
//! order, so either `i` was submitted, and a pool delivers every submitted
//! item exactly once (the pool contract), or no item at or after `i` was
//! submitted; then every submitted item of the task was handed out and its
//! reader waits: the task is starved. The reader rings the doorbell before
//! it parks, so the feeder visits the task again, and the exception lets it
//! submit `i` whatever the other tasks hold. Credits are never held by anything but submitted, unread
//! items, and the feeder never blocks on them (a task without credit is
//! skipped for the round), so a reader never waits on credits held by
//! results that only it would read (PaPy's "results must be consumed in
//! weave order" trap). The total is thus at most `size + tasks x stride`,
//! and exactly `size` with one task.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sync::Monitor;

/// Wakes the feeder: rung on every release, handoff and stop.
///
/// A ring counts; the condition variable is signalled only when the feeder
/// sleeps on it (most rings find it busy, and a signal is a system call).
#[derive(Default)]
pub(crate) struct Doorbell {
    state: Monitor<Bell>,
    /// A copy of the ring count (written under the lock), read without it
    /// by the feeder's short look before it sleeps.
    rung: AtomicU64,
}

#[derive(Default)]
struct Bell {
    rings: u64,
    sleeping: bool,
}

impl Doorbell {
    pub(crate) fn ring(&self) {
        let mut b = self.state.lock();
        b.rings += 1;
        self.rung.store(b.rings, Ordering::Release);
        let sleeping = b.sleeping;
        drop(b);
        if sleeping {
            self.state.notify_all();
        }
    }

    /// The ring count, read without the lock: never ahead of the count
    /// under the lock, so a wait from it misses no ring.
    pub(crate) fn seen(&self) -> u64 {
        self.rung.load(Ordering::Acquire)
    }

    /// `true` once rung after `seen`, read without the lock (a ring is
    /// visible here no later than its lock is released).
    pub(crate) fn rung_since(&self, seen: u64) -> bool {
        self.rung.load(Ordering::Acquire) != seen
    }

    /// Waits until rung after `seen`, or `timeout`.
    pub(crate) fn wait(&self, seen: u64, timeout: Duration) {
        let mut b = self.state.lock();
        if b.rings != seen {
            return;
        }
        // Set and read under the lock: a ring either comes before the check
        // above or sees `sleeping` and signals.
        b.sleeping = true;
        let mut b = self
            .state
            .wait_timeout_while(b, timeout, |b| b.rings == seen);
        b.sleeping = false;
    }
}

#[derive(Default)]
pub(crate) struct Credits {
    /// Credits taken (an atomic, not a lock: the feeder takes and readers
    /// give back once per batch, a batch per item at stride 1).
    in_use: AtomicUsize,
    /// The bound; set by the feeder alone (adaptive batching resizes it).
    size: AtomicUsize,
    closed: AtomicBool,
    pub(crate) bell: Arc<Doorbell>,
    /// Items the feeder pulled from its inputs that wait for credit
    /// (a stride's surplus): taken, not yet in the buffer.
    pub(crate) held: AtomicUsize,
    /// Set by [`NuMap::stop_taking`](super::NuMap::stop_taking): what waits
    /// for credit is dropped instead of submitted.
    pub(crate) abandon: AtomicBool,
}

impl Credits {
    pub(crate) fn new(size: usize, bell: Arc<Doorbell>) -> Credits {
        Credits {
            size: AtomicUsize::new(size),
            bell,
            ..Credits::default()
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Changes the bound (adaptive batching). A smaller bound than the
    /// credits in use only holds back new submissions until enough are
    /// read; a larger one rings the feeder.
    pub(crate) fn set_size(&self, size: usize) {
        let old = self.size.swap(size.max(1), Ordering::Relaxed);
        if size > old {
            self.bell.ring();
        }
    }

    /// Items currently submitted and not handed out.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// Takes as many credits as are free, up to `want`: all of `want` when
    /// the task is `starved` (a reader waits and nothing is outstanding),
    /// else at most what the bound leaves (possibly none). Never blocks.
    pub(crate) fn acquire_up_to(&self, want: usize, starved: bool) -> usize {
        if self.closed.load(Ordering::Acquire) || want == 0 {
            return 0;
        }
        let mut n = 0;
        let _ = self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                n = if starved {
                    want
                } else {
                    want.min(self.size().saturating_sub(u))
                };
                Some(u + n)
            });
        n
    }

    /// Credits free under the bound. Only the feeder takes credits, so what
    /// it reads here can only grow until it takes them.
    pub(crate) fn free(&self) -> usize {
        self.size().saturating_sub(self.in_use())
    }

    /// Every credit is taken (a starved task may be owed a batch).
    pub(crate) fn full(&self) -> bool {
        self.in_use() >= self.size()
    }

    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let _ = self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
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

impl crate::job::Release for Credits {
    fn release(&self, n: usize) {
        Credits::release(self, n);
    }

    fn wake(&self) {
        // With credit free the feeder needs no ring: a task it skipped for
        // want of credit is visited again after the release that freed it
        // (each release rings).
        if self.full() {
            self.bell.ring();
        }
    }
}

#[cfg(test)]
mod tests;
