//! Pools: where a NuMap's items are evaluated.
//!
//! The weave (the NuMap's feeder) decides *what* is submitted and
//! in which order; a [`Pool`] only evaluates [`Job`]s (a batch of
//! consecutive items of one task) and delivers every item back, as a value
//! or an error, through [`Job::deliver`]. A pool must deliver each submitted
//! item exactly once, whatever happens to the worker that holds it; that is
//! the whole contract, so thread, process and remote pools plug in without
//! touching the weave.

mod mixed;
pub(crate) mod process;
mod thread;

use std::time::Duration;

use crate::error::{ErrorKind, ItemError, Result};
use crate::value::Value;

pub use mixed::MixedPool;
pub use process::{
    mark_test_support, probe, release_warm, warm_up, ProcessPool, Recycle, WorkerCommand,
    TEST_ENTRY, WORKER_ENV,
};
pub use thread::ThreadPool;

/// A settings map for [`Pool::settings`] from `(key, value)` pairs.
///
/// ```
/// use papy_core::{pool::settings_map, Value};
/// let m = settings_map([("workers", Value::Int(4))]);
/// assert_eq!(m.to_string(), r#"{"workers": 4}"#);
/// ```
pub fn settings_map<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Map(std::sync::Arc::new(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    ))
}

pub use crate::job::{Detached, Inbox, IntoInbox, Job, TaskFn, WorkerTask};

/// Receives from `rx`, looking for a message for
/// [`IDLE_SPIN`](crate::sync::IDLE_SPIN) (yielding the core) before it
/// sleeps: the engine's threads wait for jobs and results this way, since a
/// sleeping thread costs tens of microseconds to wake (see `sync.rs`).
pub(crate) fn recv_soon<T>(
    rx: &crossbeam_channel::Receiver<T>,
) -> std::result::Result<T, crossbeam_channel::RecvError> {
    use crossbeam_channel::{RecvError, TryRecvError};
    let polled = crate::sync::spin_for(|| match rx.try_recv() {
        Ok(v) => Some(Ok(v)),
        Err(TryRecvError::Disconnected) => Some(Err(RecvError)),
        Err(TryRecvError::Empty) => None,
    });
    polled.unwrap_or_else(|| rx.recv())
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

/// A snapshot of a pool's workers ([`Pool::stats`]).
///
/// ```
/// use papy_core::{Pool, ThreadPool};
/// let pool = ThreadPool::new("p", 2).unwrap();
/// let s = pool.stats();
/// assert_eq!((s.kind, s.workers, s.busy), ("thread", 2, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The pool's kind (`thread`, `process`, `remote`, `redis`...).
    pub kind: &'static str,
    /// Workers the pool runs at once.
    pub workers: usize,
    /// Workers running a job now.
    pub busy: usize,
    /// Workers started so far (threads or processes; replacements included).
    pub started: u64,
    /// Workers that died or were killed (a crash, a timeout) and were replaced.
    pub died: u64,
    /// Workers replaced by recycling.
    pub recycled: u64,
    /// Workers that could not start or failed their handshake or init.
    pub failed_starts: u64,
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

    /// What a saved pipeline records about this pool: the settings of its
    /// [`kind`](Pool::kind) as a map (for a thread pool `{workers = 4}`),
    /// read back by the pipeline file's builder of that kind. `None` (the
    /// default) for pools a pipeline file cannot describe: saving refuses
    /// them, naming the resource.
    fn settings(&self) -> Option<Value> {
        None
    }

    /// `true` for pools that pay a round trip per job (process and remote
    /// workers): a NuMap whose buffer holds a stride per worker then sends
    /// whole strides, in fewer and larger jobs, instead of splitting each
    /// stride across the workers. Default `false`.
    fn whole_strides(&self) -> bool {
        false
    }

    /// Visits of buffer room a NuMap keeps per task with adaptive batching
    /// (read at every visit): enough that every worker has its next job
    /// queued while its results are read. Default: 2, and 4 for pools that
    /// pay a round trip per job ([`whole_strides`](Pool::whole_strides));
    /// on threads more room only spreads the working set (`cargo bench
    /// --bench defaults`, 50 ns items: 2 visits 1.06x the best fixed stride
    /// on threads and 1.22x on processes, 4 visits 1.23x and 1.01x). A pool
    /// whose round trip is long against its jobs (a broker across a WAN)
    /// asks for more: what is in flight must cover the round trip.
    fn room_visits(&self) -> usize {
        if self.whole_strides() {
            4
        } else {
            2
        }
    }

    /// How long a job should take when the NuMap chooses job sizes
    /// (adaptive batching, when no `stride` is given): long enough that
    /// the pool's fixed cost per job (hand-off and wake-up on a thread, a
    /// round trip to a process) is a small share of it, short enough to
    /// spread work evenly. Default 1 ms: a thread pool's hand-off costs a
    /// few microseconds, but each job also wakes the feeder and a reader,
    /// and on a machine with as many busy threads as cores each wake-up
    /// can wait for a time slice (`cargo bench --bench defaults` measured
    /// 100 us jobs at up to 1.46x the best fixed stride, 1 ms ones within
    /// 1.05x).
    fn job_target(&self) -> Duration {
        Duration::from_millis(1)
    }

    /// What the pool's workers are doing and have been through, for a
    /// live view (read often: lock-free counters). Default: its size, and
    /// nothing known of the rest.
    fn stats(&self) -> PoolStats {
        PoolStats {
            kind: self.kind(),
            workers: self.size(),
            ..PoolStats::default()
        }
    }

    /// Queues a job; every item must eventually be delivered exactly once.
    fn submit(&self, job: Job);

    /// Stops accepting jobs, lets running jobs finish, and joins every worker.
    fn shutdown(&self);
}
