//! The settings of a NuMap and of its tasks: [`NuMapBuilder`] (checked
//! when built) and [`TaskOptions`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Config, Control, Inner, NuMap};
use crate::error::{Error, Result};
use crate::limits;
use crate::pool::Pool;

/// Options of one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    /// Per-item timeout: an item not finished in time becomes a timeout error and its late result is discarded.
    pub timeout: Option<Duration>,
    /// Keep every retrieved result, by index (see [`NuMap::tracked`]).
    pub track: bool,
    /// Override the NuMap's `ordered` setting for this task.
    pub ordered: Option<bool>,
    /// The input may wait on results of a NuMap (an upstream node): pull it
    /// in a thread of its own so the weave never blocks on it.
    pub dependent: bool,
    /// Items whose worker *died* or timed out (not those whose function
    /// returned an error) are retried this many times, with `retry_backoff`
    /// between attempts (process and remote pools).
    pub retries: u32,
    /// Pause before each retry.
    pub retry_backoff: Duration,
    /// Run each item at most once (process and remote pools): when a
    /// worker dies or times out with a batch in flight, the batch's items
    /// fail with it instead of being split and run again to find the one
    /// that killed it (for functions with effects outside the item:
    /// writing files, starting programs). `retries` is then not used.
    pub once: bool,
}

impl TaskOptions {
    /// Checks the timeout, the retries and the pause between them against
    /// [`limits`]: the one check of these options, which
    /// [`NuMap::add_task_with`] and a node's
    /// [`PiperOptions::validate`](crate::piper::PiperOptions::validate) apply.
    ///
    /// # Errors
    /// `(key, message)` for the first bad option.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if let Some(t) = self.timeout {
            limits::check_duration("timeout", t).map_err(|e| ("timeout", e))?;
        }
        if self.retries > limits::MAX_RETRIES {
            let (n, most) = (self.retries, limits::MAX_RETRIES);
            return Err(("retries", format!("retries ({n}) must be at most {most}")));
        }
        if self.retry_backoff.as_secs_f64() > limits::MAX_SECONDS {
            let most = limits::MAX_SECONDS;
            let e = format!("retry_backoff must be at most {most} seconds");
            return Err(("retry_backoff", e));
        }
        Ok(())
    }
}

/// Builds a [`NuMap`].
#[derive(Clone)]
pub struct NuMapBuilder {
    name: Option<String>,
    workers: Option<usize>,
    stride: Option<usize>,
    buffer: Option<usize>,
    ordered: bool,
    stall: Duration,
    pool: Option<Arc<dyn Pool>>,
}

opaque_debug!(NuMapBuilder);

impl Default for NuMapBuilder {
    /// PaPy's defaults (thread workers = CPUs, stride = workers, ordered).
    fn default() -> Self {
        NuMapBuilder {
            name: None,
            workers: None,
            stride: None,
            buffer: None,
            ordered: true,
            stall: Duration::from_secs(10),
            pool: None,
        }
    }
}

impl NuMapBuilder {
    setters! {
        /// The NuMap's name (logs, saved pipelines). Default `numap_<n>`.
        name(name: impl Into<String>) => name = Some(name.into());
        /// Number of worker threads. Default: the stride when one is given (as
        /// in PaPy), else the number of CPUs.
        workers(n: usize) => workers = Some(n);
        /// Items pulled from a task per visit of the weave, split into jobs of
        /// `stride / workers` items (PaPy's stride: fixed batches, a fixed
        /// weave order).
        ///
        /// Default: none, and the NuMap chooses job sizes from what it
        /// measures (*adaptive batching*): each task starts with jobs of one
        /// item, and sizes its jobs so that each takes about the pool's
        /// [`job_target`](crate::pool::Pool::job_target) (1 ms on threads,
        /// 10 ms on processes), up to 4096 items, with a visit of one job per
        /// worker. Cheap functions get large batches and slow ones single
        /// items, with no tuning; results never depend on the sizes chosen
        /// (see [`NodeStats::jobs`](crate::stats::NodeStats::jobs) for what
        /// was chosen).
        stride(n: usize) => stride = Some(n);
        /// Maximum number of items submitted and not yet retrieved. Default:
        /// tasks x stride, computed at start; with adaptive batching (no
        /// stride), up to eight visits per task, never more items than two
        /// visits of the largest jobs on threads (four on pools that pay a round
        /// trip per job) nor fewer than two (four) visits, following the job
        /// sizes chosen; large items (estimated from one item per job) get jobs
        /// of about 8 MiB at most and room beyond two (four) visits of about
        /// 64 MiB at most.
        buffer(n: usize) => buffer = Some(n);
        /// Results in input order (default `true`) or in completion order.
        ordered(ordered: bool) => ordered = ordered;
        /// How long the feeder waits on a full buffer before it logs which tasks
        /// hold unread results. Default 10 s.
        stall_warning(after: Duration) => stall = after;
        /// Runs the tasks on this pool instead of a new thread pool. The pool may
        /// be shared by several NuMaps; it stops when its last handle is dropped.
        pool(pool: Arc<dyn Pool>) => pool = Some(pool);
    }

    /// Checks the settings and builds the NuMap (threads start lazily).
    ///
    /// # Errors
    /// [`Error::Config`] for zero workers, zero stride, or a buffer smaller than the stride.
    pub fn build(self) -> Result<NuMap> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = self
            .name
            .unwrap_or_else(|| format!("numap_{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        crate::chaos::init_from_env();
        // As in PaPy, a stride given without a worker count sets it.
        let workers = match (&self.pool, self.workers, self.stride) {
            (Some(p), _, _) => p.size(),
            (None, Some(n), _) => n,
            (None, None, Some(stride)) => stride,
            (None, None, None) => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let bad = |e: String| Error::Config(format!("NuMap `{name}`: {e}"));
        if self.pool.is_none() {
            limits::check_count("workers", workers, limits::MAX_WORKERS).map_err(bad)?;
        }
        let sizes = super::settings::NuMapSizes {
            stride: self.stride,
            buffer: self.buffer,
            threads_from_stride: self.pool.is_none() && self.workers.is_none(),
        };
        if let Some((_, e)) = sizes.validate().into_iter().next() {
            return Err(bad(e));
        }
        Ok(NuMap {
            inner: Arc::new(Inner {
                cfg: Config {
                    name,
                    workers,
                    stride: self.stride,
                    buffer: self.buffer,
                    ordered: self.ordered,
                    stall: self.stall,
                },
                stop: Arc::new(AtomicBool::new(false)),
                ctl: Mutex::new(Control {
                    pool: self.pool,
                    ..Control::default()
                }),
            }),
        })
    }
}
