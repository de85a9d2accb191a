//! The thread pool: N threads taking jobs from one crossbeam channel.
//!
//! Per-item timeouts: a task with a timeout is submitted one item per job;
//! the worker records what it runs in its slot, and a watchdog thread
//! (started with the first such job) turns an overdue item into a timeout
//! error, marks the worker abandoned (its late result is discarded and the
//! thread exits when the call returns) and starts a replacement thread, so
//! the pool keeps its size. Abandoned threads are not joined on shutdown:
//! a call that never returns cannot be waited for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::{Inbox, Job, Pool};
use crate::error::{Error, ErrorKind, ItemError, Result};
use crate::value::Value;

use crate::sync::{lock, Monitor};

#[derive(Default)]
enum SlotState {
    #[default]
    Idle,
    Running {
        job: Job,
        deadline: Instant,
    },
    Abandoned,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// The thread's work is over (it is returning): joining it does not wait.
    done: AtomicBool,
    /// The thread runs a job now (its own flag: a count shared by the
    /// threads cost two contended atomic writes per job).
    busy: AtomicBool,
}

struct Shared {
    name: String,
    rx: Receiver<Job>,
    workers: Mutex<Vec<(Arc<Slot>, JoinHandle<()>)>>,
    watchdog: Mutex<Option<JoinHandle<()>>>,
    closing: AtomicBool,
    /// Set by shutdown: queued jobs are failed instead of run.
    stopping: AtomicBool,
    spawned: std::sync::atomic::AtomicUsize,
    /// Run once by each thread when it starts: its result is the thread's
    /// [`worker_state`](crate::worker_state).
    init: Option<crate::worker::Worker>,
    /// Threads taking jobs that are not abandoned by the watchdog.
    healthy: std::sync::atomic::AtomicUsize,
    /// Counts threads that finished their work and threads the watchdog
    /// abandoned: shutdown waits on it for its threads to go.
    gone: Monitor<u64>,
}

/// A pool of threads in this process.
pub struct ThreadPool {
    size: usize,
    tx: Mutex<Option<Sender<Job>>>,
    shared: Arc<Shared>,
}

opaque_debug!(ThreadPool);

impl ThreadPool {
    /// Starts `size` threads named after `name`.
    ///
    /// # Errors
    /// [`Error::Config`] for zero threads, [`Error::Thread`] if a thread cannot start.
    pub fn new(name: &str, size: usize) -> Result<ThreadPool> {
        ThreadPool::start(name, size, None)
    }

    /// As [`new`](Self::new), with a Worker each thread runs once when it
    /// starts (on a null input): its result is that thread's
    /// [`worker_state`](crate::worker_state). Waits for every thread's init.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::Config`] naming the init's error
    /// when a thread's init fails (the pool is not started).
    ///
    /// ```
    /// use papy_core::{pool::ThreadPool, Worker};
    /// let pool = ThreadPool::with_init("db", 2, Worker::new("papy.ipasser").unwrap()).unwrap();
    /// # drop(pool);
    /// ```
    pub fn with_init(name: &str, size: usize, init: crate::worker::Worker) -> Result<ThreadPool> {
        ThreadPool::start(name, size, Some(init))
    }

    fn start(name: &str, size: usize, init: Option<crate::worker::Worker>) -> Result<ThreadPool> {
        if size == 0 {
            return Err(Error::Config(format!(
                "NuMap `{name}`: a thread pool needs at least one worker"
            )));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            rx,
            workers: Mutex::new(Vec::new()),
            watchdog: Mutex::new(None),
            closing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            spawned: std::sync::atomic::AtomicUsize::new(0),
            init,
            healthy: std::sync::atomic::AtomicUsize::new(0),
            gone: Monitor::default(),
        });
        let (ready_tx, ready) = crossbeam_channel::unbounded();
        // Without an init there is nothing to wait for: the threads take
        // jobs once they run.
        let waits = shared.init.is_some();
        for _ in 0..size {
            spawn_worker(&shared, waits.then(|| ready_tx.clone()))?;
        }
        drop(ready_tx);
        let pool = ThreadPool {
            size,
            tx: Mutex::new(Some(tx)),
            shared,
        };
        // Every thread has run its init (or failed it) before the pool is used.
        if let Some(Err(e)) = ready.iter().find(Result::is_err) {
            return Err(Error::Config(format!("NuMap `{name}`: {e}")));
        }
        Ok(pool)
    }

    fn ensure_watchdog(&self) {
        let mut w = lock(&self.shared.watchdog);
        if w.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}-watchdog", self.shared.name))
            .spawn(move || watchdog(&shared));
        match handle {
            Ok(h) => *w = Some(h),
            Err(e) => tracing::error!(
                "NuMap `{}`: cannot start the timeout watchdog: {e}",
                self.shared.name
            ),
        }
    }
}

fn spawn_worker(
    shared: &Arc<Shared>,
    ready: Option<crossbeam_channel::Sender<std::result::Result<(), String>>>,
) -> Result<()> {
    let slot = Arc::<Slot>::default();
    let n = shared.spawned.fetch_add(1, Ordering::Relaxed);
    let (s, sl) = (shared.clone(), slot.clone());
    let handle = std::thread::Builder::new()
        .name(format!("{}-worker-{n}", shared.name))
        .spawn(move || {
            // Told however the thread returns (shutdown waits for it).
            let _gone = Gone(&s, &sl);
            let started = run_init(&s);
            let failed = started.as_ref().err().cloned();
            let building = ready.is_some();
            if let Some(r) = ready {
                // A pool being built fails as a whole (the caller is told,
                // once every thread has reported: the sender goes here).
                let _ = r.send(started);
            }
            match failed {
                None => worker_loop(&s, &sl),
                Some(_) if building => {}
                Some(e) => {
                    // A replacement whose init fails leaves the work to the
                    // healthy threads; when there is none left it fails the
                    // jobs it takes with the reason, so nothing waits for a
                    // thread that is not there.
                    tracing::error!("NuMap `{}`: a replacement thread's {e}", s.name);
                    while s.healthy.load(Ordering::SeqCst) == 0 {
                        match s.rx.recv_timeout(Duration::from_millis(50)) {
                            Ok(job) => job.fail_all(ItemError::new(
                                ErrorKind::WorkerDied,
                                format!("this worker thread's {e}"),
                            )),
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                }
            }
        })?;
    lock(&shared.workers).push((slot, handle));
    Ok(())
}

/// Marks its thread's slot done and tells shutdown, when the thread
/// returns (or unwinds).
struct Gone<'a>(&'a Shared, &'a Slot);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.1.done.store(true, Ordering::Release);
        self.0.tell_gone();
    }
}

impl Shared {
    /// A thread finished its work or was abandoned.
    fn tell_gone(&self) {
        *self.gone.lock() += 1;
        self.gone.notify_all();
    }
}

/// The thread's init, if the pool has one: its result becomes the
/// thread's state.
fn run_init(shared: &Shared) -> std::result::Result<(), String> {
    let Some(init) = &shared.init else {
        return Ok(());
    };
    let name = init
        .steps()
        .first()
        .map_or_else(String::new, |s| s.function().name.clone());
    match crate::catch(|| init.call(&[crate::value::Value::Null])) {
        Ok(Ok(v)) => {
            papy_sdk::set_thread_state(Some(v));
            Ok(())
        }
        Ok(Err(e)) => Err(format!("init `{name}` failed: {}", e.message())),
        Err(panic) => Err(format!("init `{name}` panicked: {panic}")),
    }
}

fn worker_loop(shared: &Shared, slot: &Slot) {
    shared.healthy.fetch_add(1, Ordering::SeqCst);
    worker_jobs(shared, slot);
    // An abandoned thread was counted out by the watchdog.
    if !matches!(*lock(&slot.state), SlotState::Abandoned) {
        shared.healthy.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worker_jobs(shared: &Shared, slot: &Slot) {
    while let Ok(job) = super::recv_soon(&shared.rx) {
        if shared.stopping.load(Ordering::Acquire) {
            job.fail_all(ItemError::new(
                ErrorKind::WorkerDied,
                "the thread pool shut down before this item ran",
            ));
            continue;
        }
        let Some(timeout) = job.timeout() else {
            slot.busy.store(true, Ordering::Relaxed);
            let out = job.run_here();
            slot.busy.store(false, Ordering::Relaxed);
            job.deliver(job.first, out);
            drop_inputs(job.inboxes);
            continue;
        };
        // Timed items: one at a time, visible to the watchdog.
        for (k, inbox) in job.inboxes.iter().enumerate() {
            let index = job.first + k as u64;
            let mut single = Job::new(job.task.clone(), index, Vec::new());
            single.hook = job.hook.clone();
            *lock(&slot.state) = SlotState::Running {
                job: single,
                deadline: Instant::now() + timeout,
            };
            let start = Instant::now();
            slot.busy.store(true, Ordering::Relaxed);
            let result = crate::catch(|| job.func().call(index, inbox.as_slice())).unwrap_or_else(
                |message| {
                    Err(ItemError::new(ErrorKind::Panic, message)
                        .with_function(job.func().name())
                        .at(job.func().name(), index))
                },
            );
            slot.busy.store(false, Ordering::Relaxed);
            let mut st = lock(&slot.state);
            if matches!(*st, SlotState::Abandoned) {
                // The watchdog already delivered a timeout error and replaced
                // this thread; items left in the job (none when the weave
                // splits timed tasks per item) are reported, not lost.
                drop(st);
                let rest = job.inboxes.len() - k - 1;
                if rest > 0 {
                    let err =
                        ItemError::new(ErrorKind::WorkerDied, "worker abandoned after a timeout")
                            .with_function(job.func().name());
                    let items = (1..=rest as u64)
                        .map(|j| Err(err.clone().at(job.func().name(), index + j)))
                        .collect();
                    job.deliver(index + 1, items);
                }
                return;
            }
            *st = SlotState::Idle;
            drop(st);
            job.account(1, usize::from(result.is_err()), start.elapsed());
            job.deliver(index, vec![result]);
        }
    }
}

/// Drops a job's inputs. A plain number, boolean or null owns nothing: it
/// is skipped without the two calls of `Inbox`'s and `Value`'s drop glue
/// per item (7% of the samples of a run of 1 M trivial items at stride
/// 1000 under `perf`, `cargo bench --bench thread_path -- 40 stride`; this
/// loop takes 2%).
fn drop_inputs(inboxes: Vec<Inbox>) {
    for inbox in inboxes {
        if let Inbox::One(Ok(Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_))) =
            inbox
        {
            std::mem::forget(inbox);
        }
    }
}

fn watchdog(shared: &Arc<Shared>) {
    let tick = Duration::from_millis(2);
    while !shared.closing.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        let now = Instant::now();
        let mut expired = Vec::new();
        // The workers' lock is released when this loop ends, before delivering.
        for (slot, _) in lock(&shared.workers).iter() {
            let mut st = lock(&slot.state);
            if matches!(&*st, SlotState::Running { deadline, .. } if *deadline <= now) {
                let old = std::mem::replace(&mut *st, SlotState::Abandoned);
                shared.healthy.fetch_sub(1, Ordering::SeqCst);
                if let SlotState::Running { job, .. } = old {
                    expired.push((slot.clone(), job));
                }
            }
        }
        for (slot, job) in expired {
            let timeout = job.timeout().unwrap_or_default();
            let err = ItemError::new(
                ErrorKind::Timeout,
                format!("no result within {timeout:?}; the late result will be discarded"),
            )
            .with_function(job.func().name())
            .at(job.func().name(), job.first);
            job.deliver(job.first, vec![Err(err)]);
            // Forget the abandoned thread (it exits by itself if its call ever returns).
            lock(&shared.workers).retain(|(s, _)| !Arc::ptr_eq(s, &slot));
            shared.tell_gone();
            if let Err(e) = spawn_worker(shared, None) {
                tracing::error!(
                    "NuMap `{}`: cannot replace a timed-out worker: {e}",
                    shared.name
                );
            }
        }
    }
}

impl Pool for ThreadPool {
    fn kind(&self) -> &'static str {
        "thread"
    }

    fn size(&self) -> usize {
        self.size
    }

    fn settings(&self) -> Option<Value> {
        Some(super::settings_map([("workers", Value::from(self.size))]))
    }

    fn stats(&self) -> super::PoolStats {
        let started = self.shared.spawned.load(Ordering::Relaxed) as u64;
        super::PoolStats {
            kind: "thread",
            workers: self.size,
            busy: lock(&self.shared.workers)
                .iter()
                .filter(|(s, _)| s.busy.load(Ordering::Relaxed))
                .count()
                .min(self.size),
            started,
            // Threads abandoned by the watchdog (an item past its timeout)
            // were replaced.
            died: started.saturating_sub(self.size as u64),
            ..super::PoolStats::default()
        }
    }

    fn submit(&self, job: Job) {
        if job.timeout().is_some() {
            self.ensure_watchdog();
        }
        super::queue_or_fail(lock(&self.tx).as_ref(), job);
    }

    fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        drop(lock(&self.tx).take());
        // Wait for the workers while the watchdog still runs, so an item past
        // its timeout is abandoned rather than waited for. (A call without a
        // timeout that never returns cannot be interrupted in a thread: use a
        // timeout, or a process pool, for such functions.)
        loop {
            let seen = *self.shared.gone.lock();
            let (done, last) = {
                let mut workers = lock(&self.shared.workers);
                let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *workers)
                    .into_iter()
                    .partition(|(s, h)| s.done.load(Ordering::Acquire) || h.is_finished());
                *workers = running;
                (finished, workers.is_empty())
            };
            for (_, h) in done {
                let _ = h.join();
            }
            if last {
                break;
            }
            // Until a thread goes (each tells `gone`); the bound is only a
            // safety net.
            let gone = self.shared.gone.lock();
            drop(
                self.shared
                    .gone
                    .wait_timeout_while(gone, Duration::from_millis(50), |n| *n == seen),
            );
        }
        self.shared.closing.store(true, Ordering::Release);
        if let Some(w) = lock(&self.shared.watchdog).take() {
            let _ = w.join();
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
