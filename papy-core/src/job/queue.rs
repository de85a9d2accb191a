//! A task's shared state: its function and its result queue, which
//! reorders batches (ordered mode), hands them to readers and returns the
//! buffer credits they held.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TaskFn;
use crate::error::Item;
use crate::sync::Monitor;

/// Where a result queue gives back the buffer credits of the items it hands
/// to readers (the NuMap's buffer).
pub(crate) trait Release: Send + Sync {
    /// `n` items left the buffer.
    fn release(&self, n: usize);
    /// A reader is about to park on a task with nothing to read: whoever
    /// submits should look at the task again (it may be owed a batch).
    fn wake(&self);
}

const SPINS: u32 = 64;

/// How long a reader waits on a task that was never started before it says so.
const NOT_STARTED_WARNING: Duration = Duration::from_secs(10);

/// What a reader gets from a result queue.
pub(crate) enum Take {
    Batch(u64, Vec<Item>),
    End,
    TimedOut,
}

#[derive(Default)]
struct QState {
    ordered: bool,
    running: bool,
    closed: bool,
    next: u64,
    by_index: BTreeMap<u64, Vec<Item>>,
    fifo: VecDeque<(u64, Vec<Item>)>,
    handed: u64,
    total: Option<u64>,
    credits: Option<Arc<dyn Release>>,
    /// Readers blocked on the condition variable.
    parked: usize,
    /// Readers in `take` that found nothing to take (spinning or parked).
    waiting: usize,
}

impl QState {
    /// What a reader gets now: the next batch (handed out, its credits
    /// released), `End` once the stream ended, or `None` (wait).
    fn take_ready(&mut self) -> Option<Take> {
        let batch = if self.ordered {
            let next = self.next;
            self.by_index.remove(&next).map(|b| (next, b))
        } else {
            self.fifo.pop_front()
        };
        if let Some((first, items)) = batch {
            let n = items.len();
            self.next = self.next.max(first + n as u64);
            self.handed += n as u64;
            if let Some(c) = &self.credits {
                c.release(n);
            }
            return Some(Take::Batch(first, items));
        }
        // A stream ends only because its input ended (the total is known
        // and every item was handed out) or the NuMap closed; never because
        // it has not started yet: a reader that comes first (another
        // NuMap's feeder, a drain) waits for the start.
        (self.closed || self.total.is_some_and(|t| self.handed >= t)).then_some(Take::End)
    }
}

#[derive(Default)]
pub(crate) struct ResultQueue {
    state: Monitor<QState>,
}

impl ResultQueue {
    /// Prepares for a (re)start.
    pub(crate) fn reset(&self, ordered: bool, credits: Arc<dyn Release>, first_index: u64) {
        let mut s = self.state.lock();
        *s = QState {
            ordered,
            running: true,
            next: first_index,
            handed: first_index,
            credits: Some(credits),
            parked: s.parked,
            waiting: s.waiting,
            ..QState::default()
        };
        drop(s);
        // Readers that came before the start may now read.
        self.state.notify_all();
    }

    pub(crate) fn deliver(&self, first: u64, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        let mut s = self.state.lock();
        // Wake readers only when they can use this batch: in ordered mode,
        // only the next expected batch unblocks them. Waking a reader for
        // nothing costs a context switch that a busy worker pays for.
        let useful = !s.ordered || first == s.next;
        if s.ordered {
            s.by_index.insert(first, items);
        } else {
            s.fifo.push_back((first, items));
        }
        let wake = useful && s.parked > 0;
        drop(s);
        if wake {
            self.state.notify_all();
        }
    }

    /// The feeder submitted `total` items in all (counting from index 0 of the first run).
    pub(crate) fn set_total(&self, total: u64) {
        self.state.lock().total = Some(total);
        self.state.notify_all();
    }

    /// A reader waits for this task and every one of the `submitted` items
    /// was handed out: nothing it could get is in flight, so only a new
    /// submission can satisfy it (the buffer's exception, see `buffer.rs`).
    pub(crate) fn starved(&self, submitted: u64) -> bool {
        let s = self.state.lock();
        s.waiting > 0 && s.handed >= submitted
    }

    /// The feeder has ended this task for the current run.
    pub(crate) fn has_total(&self) -> bool {
        self.state.lock().total.is_some()
    }

    /// Every item of the last run was handed to a reader.
    pub(crate) fn drained(&self) -> bool {
        let s = self.state.lock();
        s.total.is_some_and(|t| s.handed >= t)
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.state.notify_all();
    }

    /// Items delivered and not yet taken.
    pub(crate) fn waiting(&self) -> usize {
        let s = self.state.lock();
        s.by_index.values().map(Vec::len).sum::<usize>()
            + s.fifo.iter().map(|b| b.1.len()).sum::<usize>()
    }

    pub(crate) fn take(&self, timeout: Option<Duration>) -> Take {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.state.lock();
        let mut spins = 0;
        // Read the clock only once a reader parks (the fast path never does).
        let mut parked_since: Option<Instant> = None;
        let mut warned = false;
        // Counted in `waiting` (from the first miss to the return).
        let mut counted = false;
        // The submitter was told this reader is about to park.
        let mut woke = false;
        loop {
            if let Some(taken) = s.take_ready() {
                if counted {
                    s.waiting -= 1;
                }
                return taken;
            }
            if !counted {
                counted = true;
                s.waiting += 1;
            }
            crate::chaos::point("queue.take.wait");
            // Spin briefly before parking: a batch is usually moments away,
            // and parking/waking a thread costs more than the batch itself.
            if spins < SPINS {
                spins += 1;
                drop(s);
                if spins < SPINS / 2 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                s = self.state.lock();
                continue;
            }
            if !woke {
                // Once per wait, and outside the lock: the feeder may owe
                // this task a batch over the bound (see `buffer.rs`).
                woke = true;
                let credits = s.credits.clone();
                drop(s);
                if let Some(c) = credits {
                    c.wake();
                }
                s = self.state.lock();
                continue;
            }
            s.parked += 1;
            let since = *parked_since.get_or_insert_with(Instant::now);
            if !s.running && !warned && since.elapsed() >= NOT_STARTED_WARNING {
                warned = true;
                tracing::warn!(
                    "a reader has waited {NOT_STARTED_WARNING:?} for the results of a NuMap task that was never started (call NuMap::start, or Plumber::start)"
                );
            }
            s = match deadline {
                None if !s.running => self.state.wait_timeout(s, NOT_STARTED_WARNING),
                None => self.state.wait(s),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        s.parked -= 1;
                        s.waiting -= 1;
                        return Take::TimedOut;
                    }
                    self.state.wait_timeout(s, d - now)
                }
            };
            s.parked -= 1;
        }
    }
}

/// Shared state of one NuMap task.
pub(crate) struct TaskCtx {
    pub(crate) id: usize,
    pub(crate) func: Arc<dyn TaskFn>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) ordered: Option<bool>,
    pub(crate) queue: ResultQueue,
    pub(crate) tracked: Option<Mutex<BTreeMap<u64, Item>>>,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    /// Run each item at most once ([`TaskOptions::once`](crate::numap::TaskOptions::once)).
    pub(crate) once: bool,
    /// How long items take where they run (adaptive batching).
    pub(crate) pace: super::Pace,
}

impl TaskCtx {
    pub(crate) fn new(
        id: usize,
        func: Arc<dyn TaskFn>,
        timeout: Option<Duration>,
        ordered: Option<bool>,
        track: bool,
    ) -> TaskCtx {
        TaskCtx {
            id,
            func,
            timeout,
            ordered,
            queue: ResultQueue::default(),
            tracked: track.then(|| Mutex::new(BTreeMap::new())),
            retries: 0,
            retry_backoff: Duration::ZERO,
            once: false,
            pace: super::Pace::default(),
        }
    }
}
