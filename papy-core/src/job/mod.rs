//! The unit of work: a [`Job`] (a batch of consecutive items of one task),
//! the [`Inbox`] of an item, the task function ([`TaskFn`]) and the task's
//! shared state with its result queue ([`TaskCtx`]).
//!
//! This is where the weave (`numap/`) and the pools (`pool/`) meet: the
//! weave makes jobs, a pool evaluates them and delivers every item back
//! through [`Job::deliver`] into the task's result queue, where readers take
//! them. Nothing here knows about NuMaps, pipers or pools.

pub mod batch;
mod detached;
mod pace;
mod queue;
mod task_fn;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, Item, ItemError};

pub use detached::Detached;
pub(crate) use pace::{Pace, MAX_CHUNK};
pub(crate) use queue::{Release, Take, TaskCtx};
pub use task_fn::{TaskFn, WorkerTask};

/// The inputs of one item: one entry per input pipe.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbox {
    /// A single input (the common case; no allocation).
    One(Item),
    /// Several inputs (joins, consume batches). Boxed, so an inbox is no
    /// larger than one item: batches of inboxes are the hot data of a run.
    Many(Box<[Item]>),
}

impl Inbox {
    /// The inputs as a slice.
    pub fn as_slice(&self) -> &[Item] {
        match self {
            Inbox::One(i) => std::slice::from_ref(i),
            Inbox::Many(v) => v,
        }
    }
}

/// Conversion of task inputs into an [`Inbox`].
pub trait IntoInbox {
    /// Converts.
    fn into_inbox(self) -> Inbox;
}

impl IntoInbox for Inbox {
    fn into_inbox(self) -> Inbox {
        self
    }
}

impl IntoInbox for Item {
    fn into_inbox(self) -> Inbox {
        Inbox::One(self)
    }
}

impl IntoInbox for Vec<Item> {
    fn into_inbox(self) -> Inbox {
        Inbox::Many(self.into_boxed_slice())
    }
}

macro_rules! into_inbox_value {
    ($($t:ty),*) => {$(
        impl IntoInbox for $t {
            fn into_inbox(self) -> Inbox { Inbox::One(Ok(crate::value::Value::from(self))) }
        }
    )*};
}
into_inbox_value!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
into_inbox_value!(crate::value::Value, f32, f64, bool, String, &'static str);

/// A batch of consecutive items of one task.
pub struct Job {
    pub(crate) task: Arc<TaskCtx>,
    /// Index of the first item.
    pub first: u64,
    /// The items' inboxes.
    pub inboxes: Vec<Inbox>,
    /// Called with the number of items at each delivery (load accounting).
    pub(crate) hook: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// The inputs already packed for the wire, by a pool that sends items
    /// to other processes (`inboxes` is then empty: see [`Job::len`]).
    pub(crate) packed: Option<PackedInputs>,
}

/// A job's inputs packed for the wire: every inbox was one value, encoded
/// as packed values, with the items' packed indices (see `docs/protocol.md`).
pub(crate) struct PackedInputs {
    pub(crate) values: Vec<u8>,
    pub(crate) indices: Vec<u8>,
    pub(crate) len: usize,
}

impl Job {
    /// A job of the items `first..` with these inboxes.
    pub(crate) fn new(task: Arc<TaskCtx>, first: u64, inboxes: Vec<Inbox>) -> Job {
        Job {
            task,
            first,
            inboxes,
            hook: None,
            packed: None,
        }
    }

    /// Number of items (their inboxes may have been packed for the wire).
    pub fn len(&self) -> usize {
        self.packed.as_ref().map_or(self.inboxes.len(), |p| p.len)
    }

    /// `true` without items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The task function.
    pub fn func(&self) -> &dyn TaskFn {
        &*self.task.func
    }

    /// The per-item timeout of the task, if any (jobs of such tasks hold one item).
    pub fn timeout(&self) -> Option<Duration> {
        self.task.timeout
    }

    /// Whether each item runs at most once: a batch whose worker died is
    /// failed whole, never split and run again ([`TaskOptions::once`](crate::numap::TaskOptions::once)).
    pub fn at_most_once(&self) -> bool {
        self.task.once
    }

    /// Retries allowed for items whose worker died or timed out, and the pause between them.
    pub fn retry_policy(&self) -> (u32, Duration) {
        (self.task.retries, self.task.retry_backoff)
    }

    /// Evaluates every item in this thread and returns the results.
    pub fn run_here(&self) -> Vec<Item> {
        let start = std::time::Instant::now();
        let f = &*self.task.func;
        let mut out = Vec::with_capacity(self.inboxes.len());
        // A custom TaskFn may panic outside any Worker guard: its items
        // still come back, as errors, so no reader waits forever.
        let r = crate::catch(|| f.call_batch(self.first, &self.inboxes, &mut out));
        if let Err(message) = r {
            let e = ItemError::new(ErrorKind::Panic, message).with_function(f.name());
            out.truncate(self.inboxes.len());
            while out.len() < self.inboxes.len() {
                let index = self.first + out.len() as u64;
                out.push(Err(e.clone().at(f.name(), index)));
            }
        }
        let failed = out.iter().filter(|r| r.is_err()).count();
        self.account(out.len(), failed, start.elapsed());
        out
    }

    /// How long this job should take where it runs, from its task's pace
    /// (`None` before any job of the task was measured).
    pub(crate) fn expected(&self) -> Option<Duration> {
        Some(self.time_at(self.task.pace.per_item()?))
    }

    /// How long this job takes at `per_item` per item.
    pub(crate) fn time_at(&self, per_item: Duration) -> Duration {
        per_item.saturating_mul(u32::try_from(self.len()).unwrap_or(u32::MAX))
    }

    /// Reports that `items` items of this job ran (`failed` of them failed)
    /// in `busy`, the time they took where they ran: the node's statistics
    /// and the task's pace for adaptive batching. Every pool calls it once
    /// per job it finishes, before delivering.
    pub fn account(&self, items: usize, failed: usize, busy: Duration) {
        self.task.pace.record(items, busy);
        let f = &*self.task.func;
        let _ = crate::catch(|| f.on_batch(items, failed, busy));
    }

    /// The job split in two jobs of consecutive items (the first half and
    /// the rest), sharing its task and delivery hook; `None` for a job of
    /// one item, or when its packed inputs cannot be read back. Used to
    /// isolate the item that kills a worker.
    pub(crate) fn halves(&self) -> Option<(Job, Job)> {
        let n = self.len();
        if n < 2 {
            return None;
        }
        let mut inboxes: Vec<Inbox> = match &self.packed {
            Some(p) => crate::protocol::packed::decode_values(&p.values)
                .ok()?
                .into_iter()
                .map(|v| Inbox::One(Ok(v)))
                .collect(),
            None => self.inboxes.clone(),
        };
        if inboxes.len() != n {
            return None;
        }
        let rest = inboxes.split_off(n / 2);
        let part = |first: u64, inboxes: Vec<Inbox>| Job {
            hook: self.hook.clone(),
            ..Job::new(self.task.clone(), first, inboxes)
        };
        Some((
            part(self.first, inboxes),
            part(self.first + (n / 2) as u64, rest),
        ))
    }

    /// Gives the errors among `items` (the results of items `first..`,
    /// as a peer sent them) this job's node and each one's index. A peer's
    /// error arrives without either ([`WireError::into_item`](crate::protocol::WireError::into_item)):
    /// which input a result belongs to is the host's to say, never the
    /// worker's. Errors the host made itself already have theirs.
    pub fn own_errors(&self, first: u64, items: &mut [Item]) {
        let f = &*self.task.func;
        for (k, item) in items.iter_mut().enumerate() {
            if let Err(e) = item {
                if e.index().is_none() {
                    *e = e.clone().at(f.name(), f.index_of(first + k as u64));
                }
            }
        }
    }

    /// Delivers the results of items `first..first + items.len()`.
    pub fn deliver(&self, first: u64, items: Vec<Item>) {
        let n = items.len();
        self.task.queue.deliver(first, items);
        if let Some(h) = &self.hook {
            h(n);
        }
    }

    /// Adds a callback run with the number of items at each delivery.
    pub fn on_delivered(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Job {
        let previous = self.hook.take();
        self.hook = Some(Arc::new(move |n| {
            if let Some(p) = &previous {
                p(n);
            }
            f(n);
        }));
        self
    }

    /// Delivers the same error for every item of the job.
    pub fn fail_all(&self, error: ItemError) {
        let items = (0..self.len())
            .map(|k| {
                let index = self.task.func.index_of(self.first + k as u64);
                Err(error.clone().at(self.task.func.name(), index))
            })
            .collect();
        self.deliver(self.first, items);
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Job(task {}, items {}..{})",
            self.task.id,
            self.first,
            self.first + self.len() as u64
        )
    }
}

#[cfg(test)]
mod tests;
