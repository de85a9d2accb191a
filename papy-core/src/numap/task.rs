//! A task's shared state: its function and its result queue, which
//! reorders batches (ordered mode), hands them to readers and returns the
//! buffer credits they held.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::buffer::Credits;
use crate::error::Item;
use crate::pool::TaskFn;

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
    credits: Option<Arc<Credits>>,
    /// Readers blocked on the condition variable.
    parked: usize,
}

pub(crate) struct ResultQueue {
    state: Mutex<QState>,
    cv: Condvar,
}

impl ResultQueue {
    fn new() -> ResultQueue {
        ResultQueue {
            state: Mutex::new(QState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Prepares for a (re)start.
    pub(crate) fn reset(&self, ordered: bool, credits: Arc<Credits>, first_index: u64) {
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
        self.cv.notify_all();
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
            self.cv.notify_all();
        }
    }

    /// The feeder submitted `total` items in all (counting from index 0 of the first run).
    pub(crate) fn set_total(&self, total: u64) {
        self.lock().total = Some(total);
        self.cv.notify_all();
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
        self.cv.notify_all();
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
                None if !s.running => {
                    self.cv
                        .wait_timeout(s, NOT_STARTED_WARNING)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.cv.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        s.parked -= 1;
                        return Take::TimedOut;
                    }
                    self.cv
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
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

/// An iterator over one task's results (values or errors).
///
/// In ordered mode results come in input order; otherwise in completion
/// order (batches of consecutive items). Several iterators over one task
/// share its results. Reading before the NuMap starts waits for the start
/// (a stream ends only when its input ended or the NuMap was stopped);
/// [`TaskResults::next_timeout`] bounds that wait.
pub struct TaskResults {
    pub(crate) ctx: Arc<TaskCtx>,
    local: std::vec::IntoIter<Item>,
    local_first: u64,
    local_taken: u64,
}

/// The outcome of [`TaskResults::next_timeout`].
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A result.
    Item(Item),
    /// The task has ended.
    End,
    /// Nothing arrived in time; the result is not lost and a later call returns it.
    TimedOut,
}

impl TaskResults {
    pub(crate) fn new(ctx: Arc<TaskCtx>) -> TaskResults {
        TaskResults {
            ctx,
            local: Vec::new().into_iter(),
            local_first: 0,
            local_taken: 0,
        }
    }

    /// The task id.
    pub fn task(&self) -> usize {
        self.ctx.id
    }

    /// Waits at most `timeout` for the next result.
    pub fn next_timeout(&mut self, timeout: Duration) -> Next {
        self.next_inner(Some(timeout))
    }

    /// The next result together with its index in the task's input.
    pub fn next_indexed(&mut self) -> Option<(u64, Item)> {
        match self.next_inner(None) {
            Next::Item(i) => Some((self.local_first + self.local_taken - 1, i)),
            Next::End | Next::TimedOut => None,
        }
    }

    fn next_inner(&mut self, timeout: Option<Duration>) -> Next {
        if let Some(i) = self.local.next() {
            self.local_taken += 1;
            return Next::Item(i);
        }
        match self.ctx.queue.take(timeout) {
            Take::Batch(first, items) => {
                if let Some(t) = &self.ctx.tracked {
                    let mut t = t.lock().unwrap_or_else(PoisonError::into_inner);
                    for (k, it) in items.iter().enumerate() {
                        t.insert(first + k as u64, it.clone());
                    }
                }
                self.local_first = first;
                self.local_taken = 0;
                self.local = items.into_iter();
                match self.local.next() {
                    Some(i) => {
                        self.local_taken = 1;
                        Next::Item(i)
                    }
                    None => Next::End,
                }
            }
            Take::End => Next::End,
            Take::TimedOut => Next::TimedOut,
        }
    }
}

impl Iterator for TaskResults {
    type Item = Item;

    // Inlined into the caller: most calls take the next result of the batch
    // already in hand; only the first of each batch goes to the queue.
    #[inline]
    fn next(&mut self) -> Option<Item> {
        if let Some(i) = self.local.next() {
            self.local_taken += 1;
            return Some(i);
        }
        match self.next_inner(None) {
            Next::Item(i) => Some(i),
            Next::End | Next::TimedOut => None,
        }
    }
}
