//! Run statistics: per-node counters and the snapshot a Plumber reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::error::Item;

/// Live counters of one node, updated lock-free while a pipeline runs.
#[derive(Debug, Default)]
pub struct NodeCounters {
    items_in: AtomicU64,
    items_out: AtomicU64,
    failed: AtomicU64,
    busy_ns: AtomicU64,
    jobs: AtomicU64,
    job_items: AtomicU64,
    tracked: Option<Mutex<BTreeMap<u64, Item>>>,
}

impl NodeCounters {
    /// Counters; `track` keeps every output item by index.
    pub fn new(track: bool) -> NodeCounters {
        NodeCounters {
            tracked: track.then(|| Mutex::new(BTreeMap::new())),
            ..NodeCounters::default()
        }
    }

    pub(crate) fn add_in(&self, n: u64) {
        self.items_in.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_out(&self, index: u64, item: &Item, failed_here: bool) {
        self.items_out.fetch_add(1, Ordering::Relaxed);
        if failed_here {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = &self.tracked {
            t.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(index, item.clone());
        }
    }

    pub(crate) fn add_busy(&self, d: Duration) {
        self.busy_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A job of `items` items of this node ran on a pool.
    pub(crate) fn add_job(&self, items: usize) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.job_items.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> NodeStats {
        NodeStats {
            items_in: self.items_in.load(Ordering::Relaxed),
            items_out: self.items_out.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
            jobs: self.jobs.load(Ordering::Relaxed),
            job_items: self.job_items.load(Ordering::Relaxed),
        }
    }

    /// The tracked output items, if tracking is on.
    pub fn tracked(&self) -> Option<BTreeMap<u64, Item>> {
        self.tracked
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// Statistics of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Items received (inboxes, before `consume` batching).
    pub items_in: u64,
    /// Items emitted (after `produce`), values and errors.
    pub items_out: u64,
    /// Error items that arose in this node (not those passed through).
    pub failed: u64,
    /// Time spent in the node's worker function (summed over workers).
    pub busy: Duration,
    /// Jobs (batches of items) its pool ran: with adaptive batching, the
    /// sizes the NuMap chose show as [`mean_job`](Self::mean_job). 0 for a
    /// node evaluated in the pulling thread (no NuMap).
    pub jobs: u64,
    /// Items in those jobs.
    pub job_items: u64,
}

impl NodeStats {
    /// Mean items per job (`None` without jobs).
    ///
    /// ```
    /// let s = papy_core::stats::NodeStats { jobs: 4, job_items: 10, ..Default::default() };
    /// assert_eq!(s.mean_job(), Some(2.5));
    /// ```
    pub fn mean_job(&self) -> Option<f64> {
        (self.jobs > 0).then(|| self.job_items as f64 / self.jobs as f64)
    }
}

/// Statistics of a Plumber run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// When the run started.
    pub start_time: Option<SystemTime>,
    /// Wall time from start to the end of the run (or to now while running).
    pub run_time: Option<Duration>,
    /// Per node, by name.
    pub nodes: BTreeMap<String, NodeStats>,
    /// Tracked output items of nodes with `track`, by node name and index.
    pub tracked: BTreeMap<String, BTreeMap<u64, Item>>,
}

impl Stats {
    /// Items that failed anywhere.
    pub fn failed(&self) -> u64 {
        self.nodes.values().map(|n| n.failed).sum()
    }
}
