//! Adaptive batching: how long a task's items take where they run, and the
//! job size that makes a pool's fixed cost per job a small share of a job.
//!
//! Every pool reports each job it finishes ([`Job::account`]) with its
//! number of items and the time it took there (the function's time on a
//! thread, the round trip on a process). A task's pace is a moving average
//! of the time per item; the job size is the pool's target job time (see
//! [`Pool::job_target`]) divided by it, growing at most fourfold from one
//! choice to the next (so one fast first item does not make the next job
//! huge) and shrinking at once when items get slower.
//!
//! [`Job::account`]: super::Job::account
//! [`Pool::job_target`]: crate::pool::Pool::job_target

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Most items in one adaptive job ([`crate::limits::MAX_JOB_ITEMS`]), whatever
/// the measures say.
pub(crate) const MAX_CHUNK: usize = crate::limits::MAX_JOB_ITEMS;

/// How much a job may grow from one choice to the next.
const GROWTH: usize = 4;

/// A task's measured pace (lock-free: pools write, the feeder reads).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Nanoseconds per item, moving average; 0 until the first report.
    ns_per_item: AtomicU64,
    /// The job size chosen last (0 until one is chosen: read as 1).
    chunk: AtomicUsize,
    /// Estimated bytes per item; 0 until the feeder measured one.
    bytes_per_item: AtomicU64,
}

impl Pace {
    /// A job of `items` items took `elapsed` where it ran.
    pub(crate) fn record(&self, items: usize, elapsed: Duration) {
        if items == 0 {
            return;
        }
        let sample = (elapsed.as_nanos() / items as u128).clamp(1, u64::MAX as u128) as u64;
        let old = self.ns_per_item.load(Ordering::Relaxed);
        // A weight of 1/4 for the newest job: quick to follow a change of
        // pace, steady against one odd job. Races between pools lose a
        // sample at worst.
        let new = if old == 0 {
            sample
        } else {
            old - old / 4 + sample / 4
        };
        self.ns_per_item.store(new.max(1), Ordering::Relaxed);
    }

    /// An item of about `bytes` bytes was submitted (the feeder measures
    /// one item per job). A larger item is taken at once, a smaller one
    /// with a weight of 1/4, so the estimate errs on the large side.
    pub(crate) fn record_bytes(&self, bytes: usize) {
        let sample = u64::try_from(bytes).unwrap_or(u64::MAX).max(1);
        let old = self.bytes_per_item.load(Ordering::Relaxed);
        let new = if sample >= old {
            sample
        } else {
            old - old / 4 + sample / 4
        };
        self.bytes_per_item.store(new.max(1), Ordering::Relaxed);
    }

    /// How many items of the measured size fit in `budget` bytes (at least
    /// one; unbounded before any item was measured).
    pub(crate) fn items_within(&self, budget: usize) -> usize {
        match self.bytes_per_item.load(Ordering::Relaxed) {
            0 => usize::MAX,
            b => usize::try_from(budget as u64 / b)
                .unwrap_or(usize::MAX)
                .max(1),
        }
    }

    /// The measured time per item, if any job was measured.
    pub(crate) fn per_item(&self) -> Option<Duration> {
        match self.ns_per_item.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Items per job for jobs of about `target` each, at most `most`.
    /// Until a job was measured: one item (the first job measures).
    pub(crate) fn chunk(&self, target: Duration, most: usize) -> usize {
        let most = most.clamp(1, MAX_CHUNK);
        let per_item = self.ns_per_item.load(Ordering::Relaxed);
        let last = self.chunk.load(Ordering::Relaxed).max(1);
        let want = if per_item == 0 {
            1
        } else {
            let ideal = (target.as_nanos() / u128::from(per_item)).max(1);
            let ideal = usize::try_from(ideal).unwrap_or(usize::MAX);
            ideal.min(last.saturating_mul(GROWTH))
        }
        .clamp(1, most);
        if want != last {
            self.chunk.store(want, Ordering::Relaxed);
        }
        want
    }
}

#[cfg(test)]
mod tests;
