//! [`NuMap`]: a lazy, buffered, multi-task parallel map.
//!
//! A NuMap owns a pool of workers and evaluates several *tasks* (a function
//! applied to an input iterator) on it, interleaved by the *weave*: tasks
//! are visited in order and `stride` items are pulled from each per visit
//! (one batch, one job). At most `buffer` items are submitted and not yet
//! retrieved (default: tasks x stride; a buffer smaller than the stride is
//! refused, since it could never hold a whole visit). Results of each task
//! come back in input order (`ordered`, the default) or in completion order.
//!
//! A task may read another task's results on the same NuMap
//! ([`NuMap::add_chained`]); chained tasks must be added after their
//! upstream task, as in PaPy.
//!
//! ```
//! use papy_core::{NuMap, Worker, Value};
//! let square = Worker::typed("square", |x: i64| x * x);
//! let numap = NuMap::builder().workers(2).stride(4).build().unwrap();
//! let t = numap.add_task(square, 0..10i64).unwrap();
//! numap.start().unwrap();
//! let out: Vec<i64> = numap.results(t).unwrap().map(|r| r.unwrap().as_int().unwrap()).collect();
//! assert_eq!(out, (0..10).map(|x| x * x).collect::<Vec<_>>());
//! ```

mod buffer;
mod builder;
mod pending;
mod puller;
pub mod settings;
mod sizing;
pub(crate) mod task;
mod weave;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Item, Result};
use crate::job::TaskCtx;
use crate::pool::{Inbox, IntoInbox, Pool, TaskFn, ThreadPool, WorkerTask};
use crate::sync::lock;
use crate::worker::Worker;
use buffer::Credits;
pub use builder::{NuMapBuilder, TaskOptions};
use puller::Input;
use sizing::Adaptive;
pub use task::{Next, TaskResults};
use weave::{FeedTask, Feeder};

/// Identifies a task of a NuMap (0, 1, 2... in the order added).
pub type TaskId = usize;

struct Config {
    name: String,
    workers: usize,
    /// `None`: adaptive batching.
    stride: Option<usize>,
    buffer: Option<usize>,
    ordered: bool,
    stall: Duration,
}

#[derive(Default)]
struct Control {
    pool: Option<Arc<dyn Pool>>,
    /// The pool was created by this NuMap (and is shut down with it).
    owns_pool: bool,
    /// Tasks while not running (the feeder owns them while it runs).
    tasks: Vec<FeedTask>,
    ctxs: Vec<Arc<TaskCtx>>,
    feeder: Option<JoinHandle<Vec<FeedTask>>>,
    /// A feeder made ready to run (first phase of a start), not yet launched.
    ready: Option<Feeder>,
    credits: Option<Arc<Credits>>,
}

struct Inner {
    cfg: Config,
    stop: Arc<AtomicBool>,
    ctl: Mutex<Control>,
}

/// A lazy, buffered, multi-task parallel map over a pool of workers.
///
/// `NuMap` is a handle: clones share the same pool and tasks (several
/// pipers may share one NuMap). Dropping the last handle stops the feeder
/// and joins every thread.
#[derive(Clone)]
pub struct NuMap {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NuMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NuMap({})", self.inner.cfg.name)
    }
}

impl NuMap {
    /// A builder with PaPy's defaults (thread workers = CPUs, stride = workers, ordered).
    pub fn builder() -> NuMapBuilder {
        NuMapBuilder::default()
    }

    /// A NuMap of `workers` threads with the other defaults.
    ///
    /// # Errors
    /// [`Error::Config`] for zero workers.
    pub fn threads(workers: usize) -> Result<NuMap> {
        NuMap::builder().workers(workers).build()
    }

    fn ctl(&self) -> MutexGuard<'_, Control> {
        lock(&self.inner.ctl)
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inner.cfg.workers
    }

    /// The stride a node's plumbing uses (where a stopped input ends,
    /// how a spawned node deals its input): the fixed stride, or with
    /// adaptive batching the number of workers (PaPy's default stride).
    pub fn stride(&self) -> usize {
        self.inner
            .cfg
            .stride
            .unwrap_or(self.inner.cfg.workers.max(1))
    }

    /// The stride as configured; `None` when the NuMap chooses job sizes
    /// (adaptive batching, the default).
    pub fn fixed_stride(&self) -> Option<usize> {
        self.inner.cfg.stride
    }

    /// The buffer as configured (`None` = tasks x stride).
    pub fn buffer(&self) -> Option<usize> {
        self.inner.cfg.buffer
    }

    /// Whether results are ordered by default.
    pub fn ordered(&self) -> bool {
        self.inner.cfg.ordered
    }

    /// The pool's kind (`"thread"`...).
    pub fn kind(&self) -> &'static str {
        self.ctl().pool.as_ref().map_or("thread", |p| p.kind())
    }

    /// The pool's kind and [settings](crate::Pool::settings), what a saved
    /// pipeline records; `None` for a pool a pipeline file cannot describe.
    /// A NuMap that has not made its thread pool yet gives the one it will make.
    pub fn pool_settings(&self) -> Option<(&'static str, crate::value::Value)> {
        match &self.ctl().pool {
            Some(p) => p.settings().map(|s| (p.kind(), s)),
            None => Some((
                "thread",
                crate::pool::settings_map([("workers", crate::value::Value::from(self.workers()))]),
            )),
        }
    }

    /// `true` when both handles are the same NuMap.
    pub fn same(&self, other: &NuMap) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Number of tasks.
    pub fn task_count(&self) -> usize {
        self.ctl().ctxs.len()
    }

    /// Adds a task applying `worker` to every item of `input`.
    ///
    /// # Errors
    /// [`Error::State`] while running; pool refusals (closures on process pools).
    pub fn add_task<I>(&self, worker: Worker, input: I) -> Result<TaskId>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoInbox + 'static,
    {
        self.add_task_with(worker, input, TaskOptions::default())
    }

    /// Adds a task with options.
    ///
    /// # Errors
    /// As [`NuMap::add_task`].
    pub fn add_task_with<I>(&self, worker: Worker, input: I, options: TaskOptions) -> Result<TaskId>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoInbox + 'static,
    {
        let node = format!("{}.task{}", self.name(), self.task_count());
        let input: Input = Box::new(input.into_iter().map(IntoInbox::into_inbox));
        self.add(Arc::new(WorkerTask::new(worker, node)), input, options)
    }

    /// Adds a task that reads the results of task `upstream` of this NuMap.
    /// Stopping does not cut a chained task: it runs until its upstream ends.
    /// The upstream's results are the chained task's: read them nowhere
    /// else (another reader would take items from it, and the upstream,
    /// which waits until the chained task has taken every result it gave
    /// before it takes new work, would wait for them).
    ///
    /// # Errors
    /// As [`NuMap::add_task`], and an unknown upstream task.
    pub fn add_chained(
        &self,
        worker: Worker,
        upstream: TaskId,
        options: TaskOptions,
    ) -> Result<TaskId> {
        let results = self.results(upstream)?;
        let node = format!("{}.task{}", self.name(), self.task_count());
        let input: Input = Box::new(results.map(Inbox::One));
        let options = TaskOptions {
            dependent: true,
            ..options
        };
        let id = self.add(Arc::new(WorkerTask::new(worker, node)), input, options)?;
        if let Some(task) = self.ctl().tasks.get_mut(id) {
            task.upstream = Some(upstream);
        }
        Ok(id)
    }

    /// Adds a task from any [`TaskFn`] and boxed input (used by pipers).
    ///
    /// # Errors
    /// As [`NuMap::add_task`].
    pub fn add_task_fn(
        &self,
        func: Arc<dyn TaskFn>,
        input: Box<dyn Iterator<Item = Inbox> + Send>,
        options: TaskOptions,
    ) -> Result<TaskId> {
        self.add(func, Box::new(input), options)
    }

    fn add(&self, func: Arc<dyn TaskFn>, input: Input, options: TaskOptions) -> Result<TaskId> {
        let mut ctl = self.ctl();
        self.reclaim(&mut ctl, "add a task to")?;
        if ctl.ready.is_some() {
            return Err(self.state_error("add a task to", "starting"));
        }
        options.validate().map_err(|(_, e)| self.config_error(&e))?;
        let pool = match &ctl.pool {
            Some(p) => p.clone(),
            None => {
                let p: Arc<dyn Pool> = Arc::new(ThreadPool::new(self.name(), self.workers())?);
                ctl.pool = Some(p.clone());
                ctl.owns_pool = true;
                p
            }
        };
        pool.accepts(&*func)?;
        let id = ctl.ctxs.len();
        let mut ctx = TaskCtx::new(id, func, options.timeout, options.ordered, options.track);
        ctx.retries = options.retries;
        ctx.retry_backoff = options.retry_backoff;
        ctx.once = options.once;
        let ctx = Arc::new(ctx);
        ctl.ctxs.push(ctx.clone());
        ctl.tasks.push(FeedTask {
            ctx,
            input: Some(input),
            chained: options.dependent,
            upstream: None,
            next_index: 0,
            room: 0,
            pending: pending::Pending::default(),
        });
        Ok(id)
    }

    /// [`Error::Config`] naming this NuMap: `NuMap `name`: what`.
    fn config_error(&self, what: &str) -> Error {
        Error::Config(format!("NuMap `{}`: {what}", self.name()))
    }

    fn state_error(&self, op: &'static str, state: &str) -> Error {
        Error::State {
            op,
            what: format!("NuMap `{}`", self.name()),
            state: state.to_string(),
        }
    }

    /// An iterator over the results of `task`. Several iterators share the results.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown task.
    pub fn results(&self, task: TaskId) -> Result<TaskResults> {
        let ctl = self.ctl();
        ctl.ctxs
            .get(task)
            .map(|c| TaskResults::new(c.clone()))
            .ok_or_else(|| Error::Config(format!("NuMap `{}` has no task {task}", self.name())))
    }

    /// Takes back the tasks of a feeder that has finished (its run ended);
    /// refuses `op` while it still runs.
    fn reclaim(&self, ctl: &mut Control, op: &'static str) -> Result<()> {
        let Some(h) = ctl.feeder.take() else {
            return Ok(());
        };
        // A feeder whose tasks have all ended is only collecting its
        // threads: wait for it rather than refusing.
        let ending = ctl.ctxs.iter().all(|c| c.queue.has_total());
        if !h.is_finished() && !ending {
            ctl.feeder = Some(h);
            return Err(self.state_error(op, "running"));
        }
        ctl.tasks = h
            .join()
            .map_err(|_| self.config_error("its feeder thread failed"))?;
        Ok(())
    }

    /// Starts evaluating (or, after a stop, resumes every unfinished input).
    ///
    /// This is [`ready`](Self::ready) followed by [`launch`](Self::launch).
    ///
    /// # Errors
    /// [`Error::State`] if running or if results of the previous run are unread;
    /// [`Error::Config`] without tasks.
    pub fn start(&self) -> Result<()> {
        self.ready()?;
        self.launch()
    }

    /// First phase of a start: every task's results become readable (a
    /// reader waiting on them now waits for items, not for the start) and
    /// the buffer is set up; nothing is pulled from any input yet. A
    /// [`Plumber`](crate::Plumber) readies every NuMap before it launches
    /// any, so no feeder reads a NuMap that is not ready.
    ///
    /// # Errors
    /// As [`NuMap::start`].
    pub fn ready(&self) -> Result<()> {
        let mut ctl = self.ctl();
        if ctl.ready.is_some() {
            return Err(self.state_error("start", "starting"));
        }
        self.reclaim(&mut ctl, "start")?;
        if ctl.tasks.is_empty() {
            let e = format!("NuMap `{}` has no tasks to start", self.name());
            return Err(Error::Config(e));
        }
        let unread = |t: &FeedTask| t.next_index > 0 && !t.ctx.queue.drained();
        if ctl.tasks.iter().any(unread) {
            let state = "still holding unread results of its previous run";
            return Err(self.state_error("restart", state));
        }
        let Some(pool) = ctl.pool.clone() else {
            let e = format!("NuMap `{}` has no pool", self.name());
            return Err(Error::Config(e));
        };
        let stride = self.stride();
        let tasks = ctl.tasks.len().max(1);
        let size = self.buffer().unwrap_or(stride.saturating_mul(tasks));
        let credits = Arc::new(Credits::new(size, Arc::default()));
        let adaptive = self.fixed_stride().is_none().then(|| Adaptive {
            target: pool.job_target(),
            workers: pool.size().max(1),
            buffer: self.buffer(),
        });
        self.inner.stop.store(false, Ordering::Release);
        for t in &ctl.tasks {
            let ordered = t.ctx.ordered.unwrap_or(self.ordered());
            t.ctx.queue.reset(ordered, credits.clone(), t.next_index);
        }
        ctl.ready = Some(Feeder {
            name: self.name().to_string(),
            tasks: std::mem::take(&mut ctl.tasks),
            pool,
            credits: credits.clone(),
            stride,
            adaptive,
            stop: self.inner.stop.clone(),
            stall: self.inner.cfg.stall,
        });
        ctl.credits = Some(credits);
        Ok(())
    }

    /// Second phase of a start: the feeder begins pulling inputs.
    ///
    /// # Errors
    /// [`Error::State`] unless [`ready`](Self::ready) was called;
    /// [`Error::Thread`] when the feeder thread cannot start.
    pub fn launch(&self) -> Result<()> {
        let mut ctl = self.ctl();
        let Some(feeder) = ctl.ready.take() else {
            return Err(self.state_error("launch", "not ready (call NuMap::ready first)"));
        };
        crate::chaos::point("numap.launch");
        let handle = std::thread::Builder::new()
            .name(format!("{}-feeder", self.name()))
            .spawn(move || feeder.run())
            // The tasks are lost with the closure; close the queues so no
            // reader waits for a feeder that never ran.
            .inspect_err(|_| ctl.ctxs.iter().for_each(|c| c.queue.close()))?;
        ctl.feeder = Some(handle);
        Ok(())
    }

    /// Asks every source task to end at its next stride boundary. Items
    /// already pulled are processed; results stay readable until each task
    /// ends. Chained tasks end when their upstream does. Does not block.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(c) = &self.ctl().credits {
            c.bell.ring();
        }
    }

    /// As [`stop`](Self::stop), and what was pulled with its stride but
    /// waits for room in the buffer is dropped instead of submitted: only
    /// the items [`in_flight`](Self::in_flight) now still come out. For a
    /// run that ends for good (a failure limit); a restart does not see
    /// the dropped items again.
    pub fn stop_taking(&self) {
        if let Some(c) = &self.ctl().credits {
            c.abandon.store(true, Ordering::Release);
        }
        self.stop();
    }

    /// `true` while the feeder runs (started and some task has input left).
    pub fn is_running(&self) -> bool {
        self.ctl().feeder.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Items submitted and not yet retrieved.
    pub fn in_flight(&self) -> usize {
        self.ctl().credits.as_ref().map_or(0, |c| c.in_use())
    }

    /// Items taken from the inputs and not yet retrieved: those
    /// [`in_flight`](Self::in_flight) and those pulled with their stride
    /// that wait for room in the buffer. What a [`stop`](Self::stop)
    /// still lets through.
    pub fn taken(&self) -> usize {
        let ctl = self.ctl();
        ctl.credits
            .as_ref()
            .map_or(0, |c| c.in_use() + c.held.load(Ordering::Relaxed))
    }

    /// The buffer's current bound in items (adaptive batching resizes
    /// it; 0 before the NuMap starts): with [`in_flight`](Self::in_flight),
    /// how full the buffer is.
    pub fn buffer_size(&self) -> usize {
        self.ctl().credits.as_ref().map_or(0, |c| c.size())
    }

    /// What its pool's workers are doing ([`crate::Pool::stats`]);
    /// a NuMap that has not made its thread pool yet reports the one it will make.
    pub fn pool_stats(&self) -> crate::pool::PoolStats {
        match &self.ctl().pool {
            Some(p) => p.stats(),
            None => crate::pool::PoolStats {
                kind: "thread",
                workers: self.workers(),
                ..Default::default()
            },
        }
    }

    /// The tracked results of `task` (index -> result), if it was added with `track`.
    pub fn tracked(&self, task: TaskId) -> Option<BTreeMap<u64, Item>> {
        let ctl = self.ctl();
        let t = ctl.ctxs.get(task)?.tracked.as_ref()?;
        let map = lock(t).clone();
        Some(map)
    }

    /// Removes every task (not while running).
    ///
    /// # Errors
    /// [`Error::State`] while running.
    pub fn clear_tasks(&self) -> Result<()> {
        let mut ctl = self.ctl();
        ctl.ready = None;
        if let Some(h) = ctl.feeder.take() {
            if !h.is_finished() {
                ctl.feeder = Some(h);
                return Err(self.state_error("clear the tasks of", "running"));
            }
            let _ = h.join();
        }
        ctl.tasks.clear();
        ctl.ctxs.clear();
        ctl.credits = None;
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let ctl = self.ctl.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = &ctl.credits {
            c.close();
        }
        for c in &ctl.ctxs {
            c.queue.close();
        }
        if let Some(h) = ctl.feeder.take() {
            let _ = h.join();
        }
        // A pool given to the builder may serve other NuMaps: it shuts down
        // when its last handle is dropped, not with this NuMap.
        if let Some(p) = ctl.pool.take().filter(|_| ctl.owns_pool) {
            p.shutdown();
        }
    }
}

#[cfg(test)]
mod tests;
