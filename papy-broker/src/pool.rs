//! The host side: a [`Pool`] whose jobs go to a Redis stream.
//!
//! Each submitted [`Job`] becomes one task entry (a `Task` frame with a
//! job number); a sender thread appends queued jobs in one pipelined round
//! trip, and a receiver thread reads the result and dead-letter streams.
//! Delivery is at least once (a batch can run twice when a worker is
//! wrongly thought dead), so the host keeps the jobs in flight by number
//! and delivers a job's items at its first result only: later results for
//! the same job are dropped. Ordering is the NuMap's business (it reorders
//! what pools deliver), and so is the bound on items in flight (`buffer`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use papy_core::error::quote_peer;
use papy_core::pool::{Job, Pool, TaskFn, WorkerCommand, WORKER_ENV};
use papy_core::protocol::serve::chain_of;
use papy_core::protocol::{Frame, WireInboxes, MAX_FRAME};
use papy_core::{Error, ErrorKind, Item, ItemError, Value};

use crate::codec::{decode, encode};
use crate::error::Result;
use crate::local::LocalWorkers;
use crate::queue::{Connect, Cursor, Outcome, Queue, RunSettings};
use crate::redis_queue::RedisConnector;
use crate::seal::{Role, Sealer, KEY_ENV};
use crate::url::redact;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One job of an entry.
struct Part {
    job: Job,
    /// One slot per item; items with an error inbox are filled at once.
    results: Vec<Option<Item>>,
    /// The positions sent to the broker, in entry order.
    sent: Vec<usize>,
}

/// An entry on the stream: consecutive jobs of one task.
struct InFlight {
    parts: Vec<Part>,
    at: Instant,
    deadline: Option<Instant>,
    /// The entry's encoded `Task` frame, to append it again after a
    /// reconnection (the broker may have lost it).
    payload: Vec<u8>,
}

impl InFlight {
    fn fail(self, error: &ItemError) {
        let busy = self.at.elapsed();
        for mut p in self.parts {
            for &k in &p.sent {
                let index = p.job.func().index_of(p.job.first + k as u64);
                // The chain the worker was running is to blame, not the node.
                let mut e = error.clone();
                if let Some(w) = p.job.func().worker() {
                    e = e.with_function(w.name());
                }
                p.results[k] = Some(Err(e.at(p.job.func().name(), index)));
            }
            finish(p.job, p.results, busy);
        }
    }

    fn sent(&self) -> usize {
        self.parts.iter().map(|p| p.sent.len()).sum()
    }

    /// Delivers the entry's results, in entry order.
    fn succeed(self, items: Vec<Item>) {
        let busy = self.at.elapsed();
        let total = items.len().max(1);
        let mut items = items.into_iter();
        for mut p in self.parts {
            let share = busy.mul_f64(p.sent.len() as f64 / total as f64);
            for &k in &p.sent {
                p.results[k] = items.next();
            }
            finish(p.job, p.results, share);
        }
    }
}

/// Delivers every item of a job (a missing one as an error, never silence).
fn finish(job: Job, results: Vec<Option<Item>>, busy: Duration) {
    let items: Vec<Item> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ItemError::new(ErrorKind::WorkerDied, "no result"))))
        .collect();
    let failed = items.iter().filter(|r| r.is_err()).count();
    job.account(items.len(), failed, busy);
    let mut items = items;
    if failed > 0 {
        job.own_errors(job.first, &mut items);
    }
    job.deliver(job.first, items);
}

struct Shared {
    name: String,
    /// Opens connections to the run's queue.
    connector: Arc<dyn Connect>,
    run: String,
    settings: RunSettings,
    /// Seals the task entries, opens results and dead letters.
    sealer: Sealer,
    /// Results and dead letters that did not open (forged or altered).
    forged: AtomicU64,
    /// Task entries workers refused as not the run's (their dead letters).
    refused: AtomicU64,
    /// Task entries workers acknowledged unrun as replays (last polled).
    replays: AtomicU64,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    next_id: AtomicU64,
    /// Workers planned for (how queued jobs are shared out).
    workers: usize,
    /// Workers seen reading the task stream lately (external ones included).
    live_workers: AtomicUsize,
    stopping: AtomicBool,
    /// Stop now: the threads leave their loops (and retries).
    halt: AtomicBool,
    duplicates: AtomicU64,
    /// Jobs in flight fail after the broker has not answered this long.
    unreachable_after: Duration,
    /// Set when the pool can no longer run anything (its local workers
    /// cannot start, another host took the run over): every job fails with it.
    broken: Mutex<Option<String>>,
}

impl Shared {
    fn connect(&self) -> Result<Box<dyn Queue>> {
        self.connector.connect()
    }

    /// Fails every job in flight (the broker lost them).
    fn fail_in_flight(&self, message: &str) {
        let lost: Vec<InFlight> = lock(&self.in_flight).drain().map(|(_, f)| f).collect();
        let e = ItemError::new(ErrorKind::WorkerDied, message);
        for f in lost {
            f.fail(&e);
        }
    }

    /// From now on every job fails with `message`, those in flight first.
    fn break_down(&self, message: &str) {
        lock(&self.broken).get_or_insert_with(|| message.to_string());
        self.fail_in_flight(message);
    }

    fn broken(&self) -> Option<String> {
        lock(&self.broken).clone()
    }

    /// Every entry in flight, to append again.
    fn in_flight_tasks(&self) -> Vec<(u64, Vec<u8>)> {
        let mut v: Vec<(u64, Vec<u8>)> = lock(&self.in_flight)
            .iter()
            .map(|(id, f)| (*id, f.payload.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

/// How long the host waits for a broker that does not answer before it
/// fails the jobs in flight (unless the builder says otherwise).
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::from_secs(7);

/// How often the host's reader checks the run (settings, lease, workers,
/// stale entries).
const POLL: Duration = Duration::from_secs(1);

/// Extra life of the run's keys beyond `keep_for`, while the host runs.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// No live worker for this long: the host warns (again each period).
const NO_WORKERS_WARNING: Duration = Duration::from_secs(10);

/// How to build a [`BrokerPool`].
///
/// ```no_run
/// use std::time::Duration;
/// use papy_broker::BrokerPool;
/// let pool = BrokerPool::builder("shards", "redis://127.0.0.1:6379")
///     .run_id("nightly")
///     .max_attempts(3)
///     .claim_after(Duration::from_secs(60))
///     .build()?;
/// # Ok::<(), papy_core::Error>(())
/// ```
#[derive(Clone)]
pub struct BrokerPoolBuilder {
    name: String,
    url: String,
    run_id: Option<String>,
    max_attempts: u32,
    claim_after: Duration,
    keep_for: Duration,
    unreachable_after: Duration,
    local: usize,
    command: Option<WorkerCommand>,
    size: Option<usize>,
    key: Option<String>,
    key_file: Option<std::path::PathBuf>,
}

/// Shows the URL with its password hidden.
impl std::fmt::Debug for BrokerPoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPoolBuilder")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .field("run_id", &self.run_id)
            .field("max_attempts", &self.max_attempts)
            .field("claim_after", &self.claim_after)
            .field("keep_for", &self.keep_for)
            .field("unreachable_after", &self.unreachable_after)
            .field("local", &self.local)
            .field("command", &self.command)
            .field("size", &self.size)
            .finish()
    }
}

impl BrokerPoolBuilder {
    /// The broker's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn run_id_setting(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    pub(crate) fn max_attempts_setting(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn claim_after_setting(&self) -> Duration {
        self.claim_after
    }

    pub(crate) fn local_setting(&self) -> usize {
        self.local
    }

    /// The run's id (default: the pool's name); workers serve it with
    /// `papy worker --redis URL --run ID`. One host per run id at a time.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Deliveries of one batch before it goes to the dead-letter stream
    /// and its items become errors (default 3).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// A batch held this long by a worker that sends no heartbeat is taken
    /// over by another worker (default 30 s).
    pub fn claim_after(mut self, t: Duration) -> Self {
        self.claim_after = t.max(Duration::from_millis(10));
        self
    }

    /// How long the run's keys stay after the run, for inspection (default
    /// 1 h). While the host runs, the keys carry a lease of `keep_for` plus
    /// a minute, renewed every second, so a dead host's keys expire too.
    pub fn keep_for(mut self, t: Duration) -> Self {
        self.keep_for = t.max(Duration::from_secs(1));
        self
    }

    /// When the broker has not answered for this long, the jobs in flight
    /// fail with `WorkerDied` errors instead of waiting (default 7 s).
    pub fn unreachable_after(mut self, t: Duration) -> Self {
        self.unreachable_after = t.max(Duration::from_millis(100));
        self
    }

    /// Starts `n` local workers with `command` (restarted when they die;
    /// stopped with the pool). The command must serve as a broker worker
    /// when `PAPY_WORKER=redis` is in its environment: `papy worker`, or a
    /// binary whose `main` calls [`worker_main`](crate::worker_main).
    pub fn local_workers(mut self, n: usize, command: WorkerCommand) -> Self {
        self.local = n;
        self.command = Some(command);
        self
    }

    /// The number of workers the NuMap plans for (how a stride is split
    /// into entries); default: the local workers, at least 1.
    pub fn size(mut self, n: usize) -> Self {
        self.size = Some(n.max(1));
        self
    }

    /// The key that authenticates the run's entries (at least 16 bytes;
    /// see [`seal`](crate::seal)); workers on other machines need the same
    /// one. Default: [`KEY_ENV`](crate::seal::KEY_ENV) if set, else a random
    /// key for this run, which only the local workers receive.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Reads the key from this file when the pool starts (see [`key`](Self::key)).
    pub fn key_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    pub(crate) fn key_file_setting(&self) -> Option<&std::path::Path> {
        self.key_file.as_deref()
    }

    /// Connects, starts the run (its keys are reset) and the local workers.
    ///
    /// # Errors
    /// This process is itself a worker, or the broker is unreachable.
    pub fn build(self) -> papy_core::Result<BrokerPool> {
        let run = self.run_id.clone().unwrap_or_else(|| self.name.clone());
        let connector = Arc::new(RedisConnector::new(&self.url, &run));
        BrokerPool::start(self, connector)
    }

    /// Starts the run on the queue `connector` opens instead of the URL's
    /// Redis (another broker, or a [`MemoryQueue`](crate::MemoryQueue) with
    /// workers in this process, [`serve_on`](crate::serve_on)); the URL is
    /// then only shown in the pool's settings. Local workers need a queue
    /// other processes can reach ([`Connect::worker_url`]).
    ///
    /// # Errors
    /// This process is itself a worker, the broker is unreachable, or local
    /// workers were asked for on a queue other processes cannot reach.
    pub fn build_on(self, connector: Arc<dyn Connect>) -> papy_core::Result<BrokerPool> {
        BrokerPool::start(self, connector)
    }
}

/// A pool whose workers read a Redis stream: `kind = "redis"`.
pub struct BrokerPool {
    spec: BrokerPoolBuilder,
    size: usize,
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    local: Mutex<Option<LocalWorkers>>,
    down: AtomicBool,
}

impl BrokerPool {
    /// A builder for pool `name` on the broker at `url`.
    pub fn builder(name: &str, url: &str) -> BrokerPoolBuilder {
        BrokerPoolBuilder {
            name: name.to_string(),
            url: url.to_string(),
            run_id: None,
            max_attempts: crate::DEFAULT_MAX_ATTEMPTS,
            claim_after: crate::DEFAULT_CLAIM_AFTER,
            keep_for: Duration::from_secs(3600),
            unreachable_after: DEFAULT_UNREACHABLE_AFTER,
            local: 0,
            command: None,
            size: None,
            key: None,
            key_file: None,
        }
    }

    fn start(
        spec: BrokerPoolBuilder,
        connector: Arc<dyn Connect>,
    ) -> papy_core::Result<BrokerPool> {
        if std::env::var_os(WORKER_ENV).is_some() {
            return Err(Error::Config(format!(
                "this process is a papy worker ({WORKER_ENV} is set) and cannot start pools"
            )));
        }
        let run = spec.run_id.clone().unwrap_or_else(|| spec.name.clone());
        let from_file = match &spec.key_file {
            Some(f) => Sealer::key_from(Some(f))?,
            None => None,
        };
        let key = match spec.key.clone().or(from_file) {
            Some(k) => k,
            None => match Sealer::key_from(None)? {
                Some(k) => k,
                None => {
                    tracing::info!(
                        "broker pool `{}`: no key ({KEY_ENV} or key_file); a random one for this run: only the workers this host starts can serve it",
                        spec.name
                    );
                    papy_core::run_key::run_key_hex()
                }
            },
        };
        let sealer = Sealer::new(&key, &run)?;
        let settings = RunSettings {
            session: session_id(),
            max_attempts: spec.max_attempts,
            claim_after: spec.claim_after,
            done: false,
            lease: spec.keep_for + LEASE_MARGIN,
            key_check: sealer.check_value(),
        };
        let worker_url = match (&spec.command, spec.local) {
            (Some(cmd), n) if n > 0 => match connector.worker_url() {
                Some(url) => Some((cmd.clone(), n, url.to_string())),
                None => {
                    return Err(Error::Config(format!(
                        "broker pool `{}`: local workers need a queue other processes can reach, not {}",
                        spec.name,
                        connector.describe()
                    )))
                }
            },
            _ => None,
        };
        let mut q = connector
            .connect()
            .map_err(|e| Error::Config(format!("broker pool `{}`: {e}", spec.name)))?;
        q.start_run(&settings)?;
        tracing::info!(
            "broker pool `{}`: run `{run}` on {}",
            spec.name,
            connector.describe()
        );
        let shared = Arc::new(Shared {
            name: spec.name.clone(),
            connector,
            run: run.clone(),
            settings,
            sealer: sealer.clone(),
            forged: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            workers: spec.size.unwrap_or(spec.local.max(1)),
            live_workers: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            halt: AtomicBool::new(false),
            duplicates: AtomicU64::new(0),
            unreachable_after: spec.unreachable_after,
            broken: Mutex::new(None),
        });
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut threads = Vec::new();
        let sh = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("{}-broker-send", spec.name))
                .spawn(move || sender(&sh, &rx, q))?,
        );
        let sh = shared.clone();
        let rq = shared.connect()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("{}-broker-recv", spec.name))
                .spawn(move || receiver(&sh, rq))?,
        );
        let weak = Arc::downgrade(&shared);
        let give_up: crate::local::GiveUp = Arc::new(move |m: &str| {
            if let Some(sh) = weak.upgrade() {
                if sh.live_workers.load(Ordering::Relaxed) > 0 {
                    tracing::warn!("broker pool `{}`: {m}; other workers go on", sh.name);
                } else {
                    sh.break_down(&format!("broker pool `{}`: {m}", sh.name));
                }
            }
        });
        let local = worker_url.map(|(cmd, n, url)| {
            let cmd = cmd.env(KEY_ENV, sealer.key());
            LocalWorkers::start(n, &cmd, &url, &run, &give_up)
        });
        Ok(BrokerPool {
            size: spec.size.unwrap_or(spec.local.max(1)),
            spec,
            shared,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            local: Mutex::new(local),
            down: AtomicBool::new(false),
        })
    }

    /// The run's id (workers serve it with `--run`).
    pub fn run_id(&self) -> &str {
        &self.shared.run
    }

    /// The process ids of the live local workers, by slot.
    pub fn pids(&self) -> BTreeMap<usize, u32> {
        lock(&self.local)
            .as_ref()
            .map(LocalWorkers::pids)
            .unwrap_or_default()
    }

    /// Results and dead letters ignored because they did not carry this
    /// run's tag (forged, altered or copied entries: a task entry or a
    /// result copied into the dead-letter stream counts here).
    pub fn forged(&self) -> u64 {
        self.shared.forged.load(Ordering::Relaxed)
    }

    /// Task entries that workers refused to run because they did not carry
    /// the run's tag (or held no task), as their dead letters report; such
    /// an entry fails no job.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Task entries that workers acknowledged without running them because
    /// they repeated a job another entry holds (a replayed entry), or were
    /// of another session than the run's. Read from the broker every
    /// second while the pool runs, and once more when it shuts down.
    pub fn replays(&self) -> u64 {
        self.shared.replays.load(Ordering::Relaxed)
    }

    /// Results dropped because their job had already been delivered
    /// (at-least-once delivery ran a batch twice).
    pub fn duplicates(&self) -> u64 {
        self.shared.duplicates.load(Ordering::Relaxed)
    }
}

fn session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{nanos:x}", std::process::id())
}

/// Turns a group of consecutive jobs of one task into a task entry, or
/// delivers them at once when no item has to leave the host (items whose
/// inbox holds an error pass it on here, without a round trip).
fn prepare(sh: &Shared, group: Vec<Job>) -> Option<(u64, Vec<u8>)> {
    let Some(worker) = group.first().and_then(|j| j.func().worker()) else {
        for job in group {
            job.fail_all(ItemError::new(
                ErrorKind::Function,
                "internal: a task without a Worker reached a broker pool",
            ));
        }
        return None;
    };
    let chain = chain_of(worker);
    let node = group[0].func().name();
    let timeout = group[0].timeout();
    let single = group
        .iter()
        .all(|j| j.inboxes.iter().all(|i| i.as_slice().len() == 1));
    let (mut indices, mut singles, mut manys) = (Vec::new(), Vec::new(), Vec::new());
    let mut parts = Vec::with_capacity(group.len());
    for job in group {
        let mut results: Vec<Option<Item>> = vec![None; job.inboxes.len()];
        let mut sent = Vec::new();
        for (k, inbox) in job.inboxes.iter().enumerate() {
            let index = job.first + k as u64;
            if inbox.as_slice().iter().any(Result::is_err) {
                results[k] = Some(job.func().call(index, inbox.as_slice()));
                continue;
            }
            sent.push(k);
            indices.push(job.func().index_of(index));
            let mut values = inbox
                .as_slice()
                .iter()
                .filter_map(|i| i.as_ref().ok().cloned());
            if single {
                singles.extend(values.next());
            } else {
                manys.push(values.collect::<Vec<Value>>());
            }
        }
        parts.push(Part { job, results, sent });
    }
    let mut f = InFlight {
        parts,
        at: Instant::now(),
        deadline: timeout.map(|t| Instant::now() + t),
        payload: Vec::new(),
    };
    if f.sent() == 0 {
        f.succeed(Vec::new());
        return None;
    }
    let inboxes = if single {
        WireInboxes::Single(singles)
    } else {
        WireInboxes::Many(manys)
    };
    let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
    let frame = Frame::Task {
        id,
        chain,
        node,
        indices,
        inboxes,
    };
    match encode(&frame) {
        Ok(bytes) if bytes.len() > MAX_FRAME => {
            f.fail(&ItemError::new(
                ErrorKind::Conversion,
                format!(
                    "the batch is {} bytes, more than a frame may hold ({MAX_FRAME}); \
                     use a smaller stride",
                    bytes.len()
                ),
            ));
            None
        }
        Ok(bytes) => {
            let bytes = sh.sealer.seal(Role::Task, &sh.settings.session, bytes);
            f.payload.clone_from(&bytes);
            lock(&sh.in_flight).insert(id, f);
            Some((id, bytes))
        }
        Err(e) => {
            f.fail(&ItemError::new(ErrorKind::Conversion, e.to_string()));
            None
        }
    }
}

/// Splits queued jobs into entries: consecutive jobs of one task, about an
/// equal share per worker (so every worker gets some), at most `MAX_JOBS`
/// each; a job with a timeout travels alone (its deadline is its own).
fn groups(queue: Vec<Job>, workers: usize) -> Vec<Vec<Job>> {
    let share = queue.len().div_ceil(workers.max(1)).clamp(1, MAX_JOBS);
    let mut out: Vec<Vec<Job>> = Vec::new();
    for job in queue {
        let joins = out.last().is_some_and(|g| {
            g.len() < share
                && job.timeout().is_none()
                && g[0].timeout().is_none()
                && std::ptr::addr_eq(g[0].func(), job.func())
        });
        match out.last_mut() {
            Some(g) if joins => g.push(job),
            _ => out.push(vec![job]),
        }
    }
    out
}

/// Most jobs in one entry.
const MAX_JOBS: usize = 256;

/// Most jobs taken from the queue for one round trip.
const MAX_GROUP: usize = 4096;

fn sender(sh: &Shared, rx: &Receiver<Job>, q: Box<dyn Queue>) {
    let mut q = Some(q);
    while let Ok(job) = rx.recv() {
        let mut queue = vec![job];
        while queue.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => queue.push(j),
                Err(_) => break,
            }
        }
        if let Some(m) = sh.broken() {
            for job in queue {
                job.fail_all(ItemError::new(ErrorKind::WorkerDied, m.clone()));
            }
            continue;
        }
        let workers = sh.workers.max(sh.live_workers.load(Ordering::Relaxed));
        let tasks: Vec<(u64, Vec<u8>)> = groups(queue, workers)
            .into_iter()
            .filter_map(|g| prepare(sh, g))
            .collect();
        if tasks.is_empty() {
            continue;
        }
        let deadline = Instant::now() + sh.unreachable_after;
        let mut backoff = Duration::from_millis(50);
        let last_error = loop {
            if q.is_none() {
                match sh.connect() {
                    Ok(c) => q = Some(c),
                    Err(e) => {
                        if Instant::now() >= deadline || sh.halt.load(Ordering::Acquire) {
                            break Some(e);
                        }
                    }
                }
            }
            if let Some(c) = q.as_mut() {
                match c.add_tasks(&sh.settings.session, &tasks) {
                    Ok(()) => break None,
                    Err(e) => {
                        q = None;
                        let full = matches!(e, crate::BrokerError::Full(_));
                        if full || Instant::now() >= deadline || sh.halt.load(Ordering::Acquire) {
                            break Some(e);
                        }
                    }
                }
            }
            std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
            backoff = (backoff * 2).min(Duration::from_secs(2));
        };
        if let Some(e) = last_error {
            tracing::error!("broker pool `{}`: {e}", sh.name);
            if matches!(e, crate::BrokerError::Full(_)) {
                sh.break_down(&e.to_string());
            }
            // The entries may or may not have been appended: fail what is
            // still in flight so no reader waits for ever.
            sh.fail_in_flight(&format!("the broker is unreachable: {e}"));
        }
        // The pool broke down while these were prepared: they must not wait.
        if let Some(m) = sh.broken() {
            sh.fail_in_flight(&m);
        }
    }
}

/// The host's consumer name (it claims only entries it dead-letters at once).
const HOST_CONSUMER: &str = "papy-host";

fn receiver(sh: &Shared, q: Box<dyn Queue>) {
    let mut q = Some(q);
    let mut cursor = Cursor::default();
    let mut backoff = Duration::from_millis(50);
    let mut polled: Option<Instant> = None;
    // When the broker last answered.
    let mut answered = Instant::now();
    let mut reported_unreachable = false;
    // Since when no worker has been seen, and when that was last reported.
    let mut no_workers_since: Option<Instant> = None;
    let mut warned: Option<Instant> = None;
    while !sh.halt.load(Ordering::Acquire) {
        expire_timeouts(sh);
        if q.is_none() {
            if answered.elapsed() >= sh.unreachable_after && !reported_unreachable {
                reported_unreachable = true;
                let m = format!(
                    "the broker has not answered for {:?}; the items in flight are lost",
                    sh.unreachable_after
                );
                tracing::error!("broker pool `{}`: {m}", sh.name);
                sh.fail_in_flight(&m);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
            match sh.connect() {
                Ok(mut c) => match check_run(sh, &mut *c, &mut cursor) {
                    Ok(()) => {
                        q = Some(c);
                        answered = Instant::now();
                        reported_unreachable = false;
                        backoff = Duration::from_millis(50);
                    }
                    Err(e) => tracing::warn!("broker pool `{}`: {e}", sh.name),
                },
                Err(e) => tracing::warn!("broker pool `{}`: {e}", sh.name),
            }
            continue;
        }
        let Some(c) = q.as_deref_mut() else { continue };
        if polled.is_none_or(|t| t.elapsed() >= POLL) {
            polled = Some(Instant::now());
            match poll(sh, c, &mut cursor) {
                Ok(n) => {
                    answered = Instant::now();
                    if n > 0 {
                        no_workers_since = None;
                        warned = None;
                    } else {
                        let since = *no_workers_since.get_or_insert_with(Instant::now);
                        let pending = !lock(&sh.in_flight).is_empty();
                        if pending
                            && since.elapsed() >= NO_WORKERS_WARNING
                            && warned.is_none_or(|w| w.elapsed() >= NO_WORKERS_WARNING)
                        {
                            warned = Some(Instant::now());
                            tracing::warn!(
                                "broker pool `{}`: no worker has read run `{}` for {:?}; \
                                 start some: papy worker --redis URL --run {}",
                                sh.name,
                                sh.run,
                                since.elapsed(),
                                sh.run
                            );
                        }
                    }
                }
                Err(e) => {
                    if matches!(e, crate::BrokerError::Full(_)) {
                        // Retrying cannot help until memory is freed.
                        sh.break_down(&e.to_string());
                    }
                    tracing::warn!("broker pool `{}`: {e}; reconnecting", sh.name);
                    q = None;
                    continue;
                }
            }
        }
        match c.read_outcomes(&mut cursor, 1024, Duration::from_millis(100)) {
            Ok(outcomes) => {
                answered = Instant::now();
                let again: Vec<(u64, Vec<u8>)> = outcomes
                    .into_iter()
                    .flat_map(|o| take(sh, o))
                    .filter_map(|job| prepare(sh, vec![job]))
                    .collect();
                if !again.is_empty() {
                    if let Err(e) = c.add_tasks(&sh.settings.session, &again) {
                        // The entries are in flight: they are appended again
                        // once the connection is back.
                        tracing::warn!("broker pool `{}`: {e}; reconnecting", sh.name);
                        q = None;
                    }
                }
            }
            Err(e) => {
                tracing::warn!("broker pool `{}`: {e}; reconnecting", sh.name);
                q = None;
            }
        }
    }
}

/// The reader's periodic look at the run: the run is still this host's
/// (another host with the same run id fails the pool loudly), the keys'
/// lease is renewed, entries over `max_attempts` that nobody reclaims are
/// dead-lettered, and the live workers are counted (returned).
fn poll(sh: &Shared, c: &mut dyn Queue, cursor: &mut Cursor) -> Result<usize> {
    match c.settings()? {
        Some(s) if s.session != sh.settings.session => {
            let m = format!(
                "another host took over run `{}` on this broker (one host per run id at a \
                 time: give each a `run_id` of its own); the items in flight are lost",
                sh.run
            );
            if sh.broken().is_none() {
                tracing::error!("broker pool `{}`: {m}", sh.name);
            }
            sh.break_down(&m);
            return Ok(0);
        }
        Some(_) => {}
        None => {
            // Redis lost the run (a restart without persistence).
            restart_run(sh, c, cursor)?;
        }
    }
    c.renew(sh.settings.lease)?;
    for e in c.claim_stale(
        HOST_CONSUMER,
        sh.settings.claim_after,
        sh.settings.max_attempts,
        64,
    )? {
        // Checked as a worker checks what it takes: a replay is
        // acknowledged, not dead-lettered (it must not fail the job of the
        // entry it copies), and an entry not the run's fails no job.
        if let Some(task) = crate::worker::admit(c, &sh.sealer, &e, sh.settings.max_attempts)? {
            let reason = crate::worker::too_often(e.deliveries, sh.settings.max_attempts);
            crate::worker::give_up(c, &sh.sealer, &e, Some(task.id), &reason)?;
        }
    }
    sh.replays.store(c.replays()?, Ordering::Relaxed);
    let n = c.active_workers(Duration::from_secs(5))?;
    sh.live_workers.store(n, Ordering::Relaxed);
    Ok(n)
}

/// After a reconnection: the broker may have lost entries (a restart, with
/// or without persistence), so every entry in flight is appended again (a
/// result that arrives twice is dropped); if the run itself is gone, it is
/// started again first. Another host's run fails the pool.
fn check_run(sh: &Shared, q: &mut dyn Queue, cursor: &mut Cursor) -> Result<()> {
    match q.settings()? {
        Some(s) if s.session != sh.settings.session => {
            poll(sh, q, cursor)?;
            return Ok(());
        }
        Some(_) => {}
        None => restart_run(sh, q, cursor)?,
    }
    let again = sh.in_flight_tasks();
    if !again.is_empty() {
        tracing::info!(
            "broker pool `{}`: reconnected; appending the {} entries in flight again",
            sh.name,
            again.len()
        );
        q.add_tasks(&sh.settings.session, &again)?;
    }
    Ok(())
}

/// The broker lost the run's keys (a restart without persistence): starts
/// the run again, reading its new streams from the start, and appends the
/// entries in flight again.
fn restart_run(sh: &Shared, q: &mut dyn Queue, cursor: &mut Cursor) -> Result<()> {
    tracing::error!(
        "broker pool `{}`: the broker lost the run's streams (did Redis restart without \
         persistence?); starting the run again and sending the entries in flight again",
        sh.name
    );
    q.start_run(&sh.settings)?;
    *cursor = Cursor::default();
    let again = sh.in_flight_tasks();
    if !again.is_empty() {
        q.add_tasks(&sh.settings.session, &again)?;
    }
    Ok(())
}

/// Fails job `id` (when its outcome cannot be used) with `why`.
fn fail_job(sh: &Shared, id: Option<u64>, why: &str) {
    tracing::warn!("broker pool `{}`: {why}", sh.name);
    let f = id.and_then(|id| lock(&sh.in_flight).remove(&id));
    if let Some(f) = f {
        f.fail(&ItemError::new(ErrorKind::WorkerDied, why));
    }
}

/// The payload of a result, if it carries the run's tag;
/// otherwise counted and logged, and `None`.
fn open<'a>(sh: &Shared, role: Role, payload: &'a [u8], what: &str) -> Option<&'a [u8]> {
    match sh.sealer.open(role, &sh.settings.session, payload) {
        Ok(p) => Some(p),
        Err(why) => {
            sh.forged.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("broker pool `{}`: a {what} ignored: {why}", sh.name);
            None
        }
    }
}

/// Handles one outcome; returns the jobs to send again, one entry each (the
/// jobs of a dead-lettered entry that held several: only the poison one
/// should fail).
fn take(sh: &Shared, o: Outcome) -> Vec<Job> {
    match o {
        Outcome::Result {
            session,
            job,
            payload,
        } => {
            if session != sh.settings.session {
                return Vec::new();
            }
            let Some(payload) = open(sh, Role::Result, &payload, "result") else {
                return Vec::new();
            };
            let (id, results) = match decode("result", payload) {
                Ok(Frame::Result { id, results }) => (id, results),
                Ok(_) => {
                    fail_job(sh, job, "a worker sent something else than a result");
                    return Vec::new();
                }
                Err(e) => {
                    fail_job(sh, job, &format!("a worker's result is unreadable: {e}"));
                    return Vec::new();
                }
            };
            let f = lock(&sh.in_flight).remove(&id);
            let Some(f) = f else {
                sh.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "broker pool `{}`: dropped a duplicate result of job {id}",
                    sh.name
                );
                return Vec::new();
            };
            let items = results.into_items();
            if items.len() != f.sent() {
                let m = format!(
                    "a worker sent {} results for {} items",
                    items.len(),
                    f.sent()
                );
                f.fail(&ItemError::new(ErrorKind::WorkerDied, m));
                return Vec::new();
            }
            f.succeed(items);
            Vec::new()
        }
        Outcome::Dead { session, letter } => {
            if session != sh.settings.session {
                return Vec::new();
            }
            // A dead letter counts only with its own tag, which binds the
            // job, the entry, the deliveries and the reason (at most
            // `MAX_REASON` bytes): a task entry or result copied into the
            // dead-letter stream, or a letter with another reason, is
            // counted and ignored.
            if let Err(why) = sh.sealer.check_dead_letter(&sh.settings.session, &letter) {
                sh.forged.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("broker pool `{}`: a dead letter ignored: {why}", sh.name);
                return Vec::new();
            }
            let reason = quote_peer(&letter.reason);
            let Some(id) = letter.job else {
                // A worker refused a task entry that was not the run's: it
                // reports it, and fails no job.
                sh.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "broker pool `{}`: a worker refused task entry {}: {reason}",
                    sh.name,
                    quote_peer(&letter.entry)
                );
                return Vec::new();
            };
            let f = lock(&sh.in_flight).remove(&id);
            match f {
                Some(f) if f.parts.len() > 1 => {
                    tracing::debug!(
                        "broker pool `{}`: entry of {} jobs dead-lettered; sending each job alone",
                        sh.name,
                        f.parts.len()
                    );
                    f.parts.into_iter().map(|p| p.job).collect()
                }
                Some(f) => {
                    let m = format!(
                        "dead-lettered after {} deliveries: {reason}",
                        letter.deliveries
                    );
                    f.fail(&ItemError::new(ErrorKind::WorkerDied, m));
                    Vec::new()
                }
                None => Vec::new(),
            }
        }
    }
}

fn expire_timeouts(sh: &Shared) {
    let now = Instant::now();
    let expired: Vec<InFlight> = {
        let mut m = lock(&sh.in_flight);
        let ids: Vec<u64> = m
            .iter()
            .filter(|(_, f)| f.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter().filter_map(|id| m.remove(&id)).collect()
    };
    for f in expired {
        let t = f
            .parts
            .first()
            .and_then(|p| p.job.timeout())
            .unwrap_or_default();
        f.fail(&ItemError::new(
            ErrorKind::Timeout,
            format!("no result within {t:?}; a late result is discarded"),
        ));
    }
}

impl BrokerPoolBuilder {
    /// The settings a pool was built with, as a pipeline file's
    /// `kind = "redis"` resource holds them ([`papy_core::Pool::settings`]).
    fn settings(&self) -> papy_core::Value {
        use papy_core::Value;
        let mut pairs = vec![
            ("url", Value::from(self.url())),
            ("workers", Value::from(self.local_setting())),
        ];
        if let Some(r) = self.run_id_setting() {
            pairs.push(("run_id", Value::from(r)));
        }
        pairs.push((
            "max_attempts",
            Value::from(u64::from(self.max_attempts_setting())),
        ));
        pairs.push((
            "claim_after",
            Value::from(self.claim_after_setting().as_secs_f64()),
        ));
        if let Some(k) = self.key_file_setting() {
            pairs.push(("key_file", Value::from(k.display().to_string())));
        }
        papy_core::pool::settings_map(pairs)
    }
}

impl Pool for BrokerPool {
    fn kind(&self) -> &'static str {
        "redis"
    }

    /// A job is a stream entry written, claimed, answered and read back
    /// through the broker: milliseconds.
    fn job_target(&self) -> Duration {
        Duration::from_millis(20)
    }

    fn size(&self) -> usize {
        self.size
    }

    fn accepts(&self, f: &dyn TaskFn) -> papy_core::Result<()> {
        let closure = match f.worker() {
            Some(w) => w.first_closure().map(str::to_string),
            None => Some(f.name()),
        };
        match closure {
            None => Ok(()),
            Some(function) => Err(Error::NotPortable {
                function,
                pool: "redis".into(),
            }),
        }
    }

    fn settings(&self) -> Option<papy_core::Value> {
        Some(self.spec.settings())
    }

    fn submit(&self, job: Job) {
        papy_core::pool::queue_or_fail(lock(&self.tx).as_ref(), job);
    }

    fn shutdown(&self) {
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.stopping.store(true, Ordering::Release);
        drop(lock(&self.tx).take());
        // Jobs in flight get a grace period, then fail.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !lock(&self.shared.in_flight).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.shared.halt.store(true, Ordering::Release);
        for h in std::mem::take(&mut *lock(&self.threads)) {
            let _ = h.join();
        }
        self.shared
            .fail_in_flight("the pool shut down before this item finished");
        // A few tries: without them the keys keep the lease (keep_for plus
        // a minute) and expire anyway.
        for attempt in 0..3 {
            // Only this host's run: another host may have taken the run id over.
            let session = &self.shared.settings.session;
            let r = self.shared.connect().and_then(|mut q| match q.settings()? {
                Some(s) if &s.session == session => {
                    self.shared.replays.store(q.replays()?, Ordering::Relaxed);
                    q.finish_run(self.spec.keep_for)
                }
                _ => Ok(()),
            });
            match r {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!("broker pool `{}`: {e}", self.shared.name);
                    if attempt < 2 {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
        if let Some(mut l) = lock(&self.local).take() {
            l.stop(Duration::from_secs(3));
        }
        let d = self.duplicates();
        if d > 0 {
            tracing::info!(
                "broker pool `{}`: dropped {d} duplicate results",
                self.shared.name
            );
        }
    }
}

impl Drop for BrokerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::BrokerPool;

    #[test]
    fn the_builders_debug_hides_the_password() {
        let b = BrokerPool::builder("farm", "redis://:pa/ss@word@db:6379/0").run_id("r");
        let text = format!("{b:?}");
        assert!(text.contains("redis://***@db:6379/0"), "{text}");
        assert!(!text.contains("pa/ss") && !text.contains("word"), "{text}");
    }
}
