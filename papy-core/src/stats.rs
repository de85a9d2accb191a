//! Run statistics: per-node counters and the snapshot a Plumber reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::error::Item;
use crate::sync::lock;

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
    /// Where this node's jobs are recorded, under its name.
    timeline: Option<(Arc<Timeline>, Arc<str>)>,
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
            lock(t).insert(index, item.clone());
        }
    }

    /// Records this node's jobs on `timeline` (under `node`) from now on.
    pub(crate) fn record_on(mut self, timeline: Option<Arc<Timeline>>, node: &str) -> Self {
        self.timeline = timeline.map(|t| (t, Arc::from(node)));
        self
    }

    /// A job of `items` items (`failed` of them failed) ran on a pool in
    /// `busy`, ending now.
    pub(crate) fn add_batch(&self, items: usize, failed: usize, busy: Duration) {
        self.add_busy(busy);
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.job_items.fetch_add(items as u64, Ordering::Relaxed);
        if let Some((t, node)) = &self.timeline {
            t.record(node, items, failed, busy);
        }
    }

    pub(crate) fn add_busy(&self, d: Duration) {
        self.busy_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
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
        self.tracked.as_ref().map(|t| lock(t).clone())
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

/// One job as a worker ran it ([`Timeline`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpan {
    /// The node whose items the job held.
    pub node: Arc<str>,
    /// The worker that ran it: the name of the thread that ran or
    /// relayed it (`POOL-N` for a thread pool's workers, `POOL-proxy-N`
    /// for a process pool's worker in slot N).
    pub worker: Arc<str>,
    /// When it started, from the timeline's origin.
    pub start: Duration,
    /// How long it took where it ran.
    pub busy: Duration,
    /// Its items.
    pub items: u64,
    /// Those that failed.
    pub failed: u64,
}

/// The jobs of a run, by worker and time: what ran where, when (a
/// worker timeline, as Ray's timeline or Dask's task stream show).
/// Bounded: past its capacity further jobs are only counted.
///
/// ```
/// let t = papy_core::stats::Timeline::new(2);
/// assert!(t.spans().is_empty());
/// assert_eq!(t.dropped(), 0);
/// ```
#[derive(Debug)]
pub struct Timeline {
    origin: Instant,
    capacity: usize,
    spans: Mutex<Vec<JobSpan>>,
    dropped: AtomicU64,
}

impl Timeline {
    /// A timeline keeping at most `capacity` jobs, starting now.
    pub fn new(capacity: usize) -> Timeline {
        Timeline {
            origin: Instant::now(),
            capacity,
            spans: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    fn record(&self, node: &Arc<str>, items: usize, failed: usize, busy: Duration) {
        thread_local! {
            static WORKER: Arc<str> = Arc::from(std::thread::current().name().unwrap_or("host"));
        }
        let end = self.origin.elapsed();
        let mut spans = lock(&self.spans);
        if spans.len() >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        spans.push(JobSpan {
            node: node.clone(),
            worker: WORKER.with(Arc::clone),
            start: end.saturating_sub(busy),
            busy,
            items: items as u64,
            failed: failed as u64,
        });
    }

    /// The jobs recorded so far, in the order they ended.
    pub fn spans(&self) -> Vec<JobSpan> {
        lock(&self.spans).clone()
    }

    /// Jobs not recorded because the timeline was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
