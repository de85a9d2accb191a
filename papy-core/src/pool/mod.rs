//! Pools: where a NuMap's items are evaluated.
//!
//! The weave (see [`numap`](crate::numap)) decides *what* is submitted and
//! in which order; a [`Pool`] only evaluates [`Job`]s (a batch of
//! consecutive items of one task) and delivers every item back, as a value
//! or an error, through [`Job::deliver`]. A pool must deliver each submitted
//! item exactly once, whatever happens to the worker that holds it; that is
//! the whole contract, so thread, process and remote pools plug in without
//! touching the weave.

mod kinds;
mod mixed;
pub(crate) mod process;
mod thread;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, Item, ItemError, Result};
use crate::numap::task::TaskCtx;
use crate::worker::Worker;

pub use kinds::{build_kind, redact_url, register_kind, BrokerSpec, KindBuilder};
pub use mixed::MixedPool;
pub use process::{mark_test_support, ProcessPool, WorkerCommand, TEST_ENTRY, WORKER_ENV};
pub use thread::ThreadPool;

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
            fn into_inbox(self) -> Inbox { Inbox::One(Ok(crate::Value::from(self))) }
        }
    )*};
}
into_inbox_value!(
    crate::Value,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
    isize,
    f32,
    f64,
    bool,
    String,
    &'static str
);

/// The function a task applies to each item.
pub trait TaskFn: Send + Sync {
    /// Evaluates one item; `index` is the item's position in the task's input.
    fn call(&self, index: u64, inbox: &[Item]) -> Item;

    /// Evaluates a batch of consecutive items (`first`, `first + 1`, ...),
    /// appending the results to `out`. The default calls [`call`](Self::call)
    /// per item; Worker-backed tasks catch panics per segment instead.
    fn call_batch(&self, first: u64, inboxes: &[Inbox], out: &mut Vec<Item>) {
        out.extend(
            inboxes
                .iter()
                .enumerate()
                .map(|(k, inbox)| self.call(first + k as u64, inbox.as_slice())),
        );
    }

    /// The item's index in the node's input, from its index in this task
    /// (they differ for a node spawned as several tasks).
    fn index_of(&self, local: u64) -> u64 {
        local
    }

    /// `true` when [`index_of`](Self::index_of) is the identity, so pools
    /// may skip calling it per item. Must be `false` (the default) for any
    /// function that maps indices.
    fn plain_indices(&self) -> bool {
        false
    }

    /// A name for logs and errors.
    fn name(&self) -> String;

    /// The Worker behind this task, for pools that run it elsewhere by name.
    fn worker(&self) -> Option<&Worker> {
        None
    }

    /// Called after each batch with the number of items, how many failed,
    /// and the time spent (statistics hook).
    fn on_batch(&self, _items: usize, _failed: usize, _busy: Duration) {}
}

/// A [`Worker`] as a task function; errors are attributed to node `node`.
pub struct WorkerTask {
    worker: Worker,
    node: String,
    /// (task j, of k spawned tasks, chunk size): maps task indices to node indices.
    spawn: Option<(usize, usize, usize)>,
    counters: Option<Arc<crate::stats::NodeCounters>>,
}

impl WorkerTask {
    /// Wraps a Worker; `node` names it in error paths.
    pub fn new(worker: Worker, node: impl Into<String>) -> WorkerTask {
        WorkerTask {
            worker,
            node: node.into(),
            spawn: None,
            counters: None,
        }
    }

    /// Task `j` of `k` spawned tasks taking `chunk`-sized chunks in turn.
    pub(crate) fn spawned(mut self, j: usize, k: usize, chunk: usize) -> WorkerTask {
        if k > 1 {
            self.spawn = Some((j, k, chunk));
        }
        self
    }

    /// Adds busy time to a node's statistics.
    pub(crate) fn counting(mut self, counters: Arc<crate::stats::NodeCounters>) -> WorkerTask {
        self.counters = Some(counters);
        self
    }
}

impl TaskFn for WorkerTask {
    fn call(&self, index: u64, inbox: &[Item]) -> Item {
        self.worker.eval(inbox, &self.node, self.index_of(index))
    }
    fn call_batch(&self, first: u64, inboxes: &[Inbox], out: &mut Vec<Item>) {
        self.worker.eval_batch(
            inboxes.len(),
            |i| inboxes[i].as_slice(),
            |i| self.index_of(first + i as u64),
            &self.node,
            out,
        );
    }
    fn index_of(&self, local: u64) -> u64 {
        match self.spawn {
            None => local,
            Some((j, k, chunk)) => crate::piper::adapters::spawn_index(local, j, k, chunk),
        }
    }
    fn plain_indices(&self) -> bool {
        self.spawn.is_none()
    }
    fn name(&self) -> String {
        self.node.clone()
    }
    fn worker(&self) -> Option<&Worker> {
        Some(&self.worker)
    }
    fn on_batch(&self, _items: usize, _failed: usize, busy: Duration) {
        if let Some(c) = &self.counters {
            c.add_busy(busy);
        }
    }
}

/// Queues `job` on a pool's job channel, or fails its items when the pool
/// is shut down (no channel, or no receiver left): what every pool that
/// hands jobs to its own threads does in [`Pool::submit`].
pub fn queue_or_fail(tx: Option<&crossbeam_channel::Sender<Job>>, job: Job) {
    let refused = match tx {
        Some(tx) => tx.send(job).err().map(|e| e.0),
        None => Some(job),
    };
    if let Some(job) = refused {
        job.fail_all(ItemError::new(
            ErrorKind::WorkerDied,
            "the pool is shut down",
        ));
    }
}

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
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f.call_batch(self.first, &self.inboxes, &mut out);
        }));
        if let Err(p) = r {
            let e = ItemError::new(ErrorKind::Panic, crate::error::panic_message(&*p))
                .with_function(f.name());
            out.truncate(self.inboxes.len());
            while out.len() < self.inboxes.len() {
                let index = self.first + out.len() as u64;
                out.push(Err(e.clone().at(f.name(), index)));
            }
        }
        let failed = out.iter().filter(|r| r.is_err()).count();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f.on_batch(out.len(), failed, start.elapsed())
        }));
        out
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

/// A set of workers that evaluates jobs.
pub trait Pool: Send + Sync {
    /// `"thread"`, `"process"`, `"remote"`...
    fn kind(&self) -> &'static str;

    /// Number of workers.
    fn size(&self) -> usize;

    /// Checks, when a task is added, that this pool can run its function
    /// (process and remote pools refuse closures).
    ///
    /// # Errors
    /// [`Error::NotPortable`](crate::Error::NotPortable) or similar.
    fn accepts(&self, _f: &dyn TaskFn) -> Result<()> {
        Ok(())
    }

    /// For pools of commands: each command line with its number of workers
    /// (what a saved pipeline records).
    fn commands(&self) -> Vec<(String, usize)> {
        Vec::new()
    }

    /// For broker-backed pools: the settings a saved pipeline records.
    fn broker(&self) -> Option<BrokerSpec> {
        None
    }

    /// `true` for pools that pay a round trip per job (process and remote
    /// workers): a NuMap whose buffer holds a stride per worker then sends
    /// whole strides, in fewer and larger jobs, instead of splitting each
    /// stride across the workers. Default `false`.
    fn whole_strides(&self) -> bool {
        false
    }

    /// Queues a job; every item must eventually be delivered exactly once.
    fn submit(&self, job: Job);

    /// Stops accepting jobs, lets running jobs finish, and joins every worker.
    fn shutdown(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_all_names_each_item_by_its_index_in_the_node() {
        use crate::numap::task::{Take, TaskCtx};
        // Task 1 of 2 spawned tasks taking items in turn: its local items
        // 0, 1, 2 are the node's items 1, 3, 5.
        let f = WorkerTask::new(Worker::typed("id", |x: i64| x), "node").spawned(1, 2, 1);
        let ctx = Arc::new(TaskCtx::new(0, Arc::new(f), None, None, false));
        let job = Job::new(ctx.clone(), 0, (0..3).map(|i| i.into_inbox()).collect());
        job.fail_all(ItemError::new(ErrorKind::WorkerDied, "gone"));
        let Take::Batch(_, items) = ctx.queue.take(Some(std::time::Duration::from_secs(5))) else {
            panic!("the items are delivered")
        };
        let indices: Vec<Option<u64>> = items
            .iter()
            .map(|r| r.as_ref().err().and_then(ItemError::index))
            .collect();
        assert_eq!(indices, [Some(1), Some(3), Some(5)]);
    }

    #[test]
    fn an_inbox_is_no_larger_than_an_item() {
        // Batches of inboxes cross threads for every item of a run: keeping
        // them one item wide keeps that traffic down.
        assert_eq!(std::mem::size_of::<Inbox>(), std::mem::size_of::<Item>());
        let many = vec![Ok(crate::Value::Int(1)), Ok(crate::Value::Int(2))].into_inbox();
        assert_eq!(many.as_slice().len(), 2);
    }
}
