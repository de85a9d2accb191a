//! How far the workers are, as the host measures it, and how much it
//! keeps in flight to cover that distance (the bandwidth-delay product):
//! an entry's round trip minus the time its worker says it was busy is
//! time spent travelling and waiting, during which the worker must have
//! other entries to run, or it idles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use papy_core::sync::lock;

use crate::floor::{average, Floor};

/// Visits of room asked for before anything is measured (and at least):
/// a pool's default.
const BASE_VISITS: usize = 2;

/// Items in the NuMap's largest jobs (`papy_core`'s adaptive batching).
const JOB_ITEMS: u64 = papy_core::limits::MAX_JOB_ITEMS as u64;

/// How long the NuMap's adaptive jobs take at most ([`Pool::job_target`]
/// of the broker pool).
///
/// [`Pool::job_target`]: papy_core::Pool::job_target
pub(super) const JOB_TARGET: Duration = Duration::from_millis(20);

/// Most items kept in flight to cover the distance.
const MOST_ITEMS: u64 = 1 << 21;

/// Most bytes of task entries kept in flight to cover the distance.
const MOST_BYTES: u64 = 64 << 20;

/// What the host has measured of its entries (the receiver writes, the
/// NuMap's feeder reads).
#[derive(Debug, Default)]
pub(super) struct Distance {
    /// The shortest recent wait (round trip minus busy time), in
    /// microseconds.
    wait_us: Mutex<Floor>,
    /// Busy time per item, in nanoseconds (moving average).
    item_ns: AtomicU64,
    /// Bytes of task entry per item (moving average).
    item_bytes: AtomicU64,
}

impl Distance {
    /// An entry of `items` items and `bytes` bytes came back after
    /// `round_trip`, its worker busy for `busy` of it.
    pub(super) fn record(&self, round_trip: Duration, busy: Duration, items: usize, bytes: usize) {
        if items == 0 {
            return;
        }
        let n = items as u64;
        let wait = round_trip.saturating_sub(busy).as_micros().max(1);
        let wait = u64::try_from(wait).unwrap_or(u64::MAX);
        lock(&self.wait_us).record(wait, Instant::now());
        let ns = u64::try_from(busy.as_nanos() / u128::from(n)).unwrap_or(u64::MAX);
        let update =
            |a: &AtomicU64, v| a.store(average(a.load(Ordering::Relaxed), v), Ordering::Relaxed);
        update(&self.item_ns, ns.max(1));
        update(&self.item_bytes, (bytes as u64 / n).max(1));
    }

    /// Visits of buffer room a task should have with `workers` workers:
    /// the base, plus as many of the NuMap's jobs (20 ms of work, at most
    /// 4096 items) per worker as the wait measured lasts, but never more
    /// than [`MOST_ITEMS`] items or [`MOST_BYTES`] bytes of the largest
    /// jobs in flight.
    pub(super) fn room_visits(&self, workers: usize) -> usize {
        let Some(wait) = lock(&self.wait_us).get() else {
            return BASE_VISITS;
        };
        let item_ns = self.item_ns.load(Ordering::Relaxed).max(1);
        let bytes = self.item_bytes.load(Ordering::Relaxed).max(1);
        let target_ns = JOB_TARGET.as_nanos() as u64;
        let job_items = JOB_ITEMS.min(target_ns / item_ns).max(1);
        let job_us = (job_items.saturating_mul(item_ns) / 1000).max(1);
        let want = BASE_VISITS as u64 + wait.div_ceil(job_us);
        let per_visit = job_items.saturating_mul(workers.max(1) as u64);
        let most = (MOST_ITEMS / per_visit).min(MOST_BYTES / per_visit.saturating_mul(bytes));
        let visits = want.min(most).max(BASE_VISITS as u64);
        usize::try_from(visits).unwrap_or(BASE_VISITS)
    }
}

#[cfg(test)]
mod tests {
    use super::{Distance, BASE_VISITS, MOST_ITEMS};
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn room_covers_the_wait_in_jobs_within_bounds() {
        let d = Distance::default();
        assert_eq!(d.room_visits(4), BASE_VISITS, "nothing measured");
        // Slow items (10 ms each, 8 bytes): jobs of 2 items, 20 ms; a
        // wait of 100 ms asks for 5 more visits.
        d.record(120 * MS, 20 * MS, 2, 16);
        assert_eq!(d.room_visits(4), BASE_VISITS + 5);
        // Trivial items far away (100 ns each, 8 bytes): jobs of 4096
        // items take 410 us; the room is bounded by MOST_ITEMS in flight.
        let far = Distance::default();
        far.record(100 * MS, Duration::from_micros(410), 4096, 4096 * 8);
        assert_eq!(far.room_visits(4), (MOST_ITEMS / (4096 * 4)) as usize);
        assert_eq!(far.room_visits(512), BASE_VISITS, "never below the base");
        // Large items: bounded by bytes.
        let big = Distance::default();
        big.record(100 * MS, Duration::from_micros(410), 4096, 4096 * 4096);
        assert_eq!(big.room_visits(4), BASE_VISITS);
    }
}
