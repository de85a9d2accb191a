//! A task's shared state: its function and its result queue, which
//! reorders batches (ordered mode), hands them to readers and returns the
//! buffer credits they held.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::TaskFn;
use crate::error::Item;
use crate::sync::Monitor;

/// Where a result queue gives back the buffer credits of the items it hands
/// to readers (the NuMap's buffer).
pub(crate) trait Release: Send + Sync {
    /// `n` items left the buffer.
    fn release(&self, n: usize);
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
}

pub(crate) struct ResultQueue {
    state: Monitor<QState>,
}

impl ResultQueue {
    fn new() -> ResultQueue {
        ResultQueue {
            state: Monitor::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QState> {
        self.state.lock()
    }

    /// Prepares for a (re)start.
    pub(crate) fn reset(&self, ordered: bool, credits: Arc<dyn Release>, first_index: u64) {
        let mut s = self.lock();
        *s = QState {
            ordered,
            running: true,
            next: first_index,
            handed: first_index,
            credits: Some(credits),
            parked: s.parked,
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
        let mut s = self.lock();
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
        self.lock().total = Some(total);
        self.state.notify_all();
    }

    /// Items handed to readers so far (counting from index 0 of the first run).
    pub(crate) fn handed(&self) -> u64 {
        self.lock().handed
    }

    /// The feeder has ended this task for the current run.
    pub(crate) fn has_total(&self) -> bool {
        self.lock().total.is_some()
    }

    /// Every item of the last run was handed to a reader.
    pub(crate) fn drained(&self) -> bool {
        let s = self.lock();
        s.total.is_some_and(|t| s.handed >= t)
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.state.notify_all();
    }

    /// Items delivered and not yet taken.
    pub(crate) fn waiting(&self) -> usize {
        let s = self.lock();
        s.by_index.values().map(Vec::len).sum::<usize>()
            + s.fifo.iter().map(|b| b.1.len()).sum::<usize>()
    }

    pub(crate) fn take(&self, timeout: Option<Duration>) -> Take {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.lock();
        let mut spins = 0;
        let waited_since = Instant::now();
        let mut warned = false;
        loop {
            let batch = if s.ordered {
                let next = s.next;
                s.by_index.remove(&next).map(|b| (next, b))
            } else {
                s.fifo.pop_front()
            };
            if let Some((first, items)) = batch {
                let n = items.len();
                s.next = s.next.max(first + n as u64);
                s.handed += n as u64;
                if let Some(c) = &s.credits {
                    c.release(n);
                }
                return Take::Batch(first, items);
            }
            // A stream ends only because its input ended (the total is
            // known and every item was handed out) or the NuMap closed;
            // never because it has not started yet: a reader that comes
            // first (another NuMap's feeder, a drain) waits for the start.
            if s.closed || s.total.is_some_and(|t| s.handed >= t) {
                return Take::End;
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
                s = self.lock();
                continue;
            }
            s.parked += 1;
            if !s.running && !warned && waited_since.elapsed() >= NOT_STARTED_WARNING {
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
            queue: ResultQueue::new(),
            tracked: track.then(|| Mutex::new(BTreeMap::new())),
            retries: 0,
            retry_backoff: Duration::ZERO,
        }
    }
}
