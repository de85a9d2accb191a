//! The host side: a [`Pool`] whose jobs go to a Redis stream.
//!
//! Each submitted [`Job`] becomes one task entry (a `Task` frame with a
//! job number, `entries.rs`); a sender thread appends queued jobs in one
//! pipelined round trip (`sender.rs`), and a receiver thread reads the
//! result and dead-letter streams (`receiver.rs`). Delivery is at least
//! once (a batch can run twice when a worker is wrongly thought dead), so
//! the host keeps the jobs in flight by number and delivers a job's items
//! at its first result only: later results for the same job are dropped.
//! Ordering is the NuMap's business (it reorders what pools deliver), and
//! so is the bound on items in flight (`buffer`).

mod builder;
mod distance;
mod entries;
mod receiver;
mod sender;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use papy_core::pool::{Job, Pool, TaskFn, WORKER_ENV};
use papy_core::sync::lock;
use papy_core::{Error, ErrorKind, ItemError};

pub use builder::BrokerPoolBuilder;
use distance::Distance;
use entries::InFlight;
use receiver::receiver;
use sender::sender;

use crate::local::LocalWorkers;
use crate::queue::{Connect, Queue, RunSettings};
use crate::seal::{Sealer, KEY_ENV};

/// What the pool's threads share.
struct Shared {
    /// What the pool was built with (its name, run, workers planned for,
    /// `unreachable_after`).
    spec: BrokerPoolBuilder,
    /// Opens connections to the run's queue.
    connector: Arc<dyn Connect>,
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
    /// Workers seen reading the task stream lately (external ones included).
    live_workers: AtomicUsize,
    /// Stop now: the threads leave their loops (and retries).
    halt: AtomicBool,
    duplicates: AtomicU64,
    /// How far the workers are: what the pool keeps in flight.
    distance: Distance,
    /// Set when the pool can no longer run anything (its local workers
    /// cannot start, another host took the run over): every job fails with it.
    broken: Mutex<Option<String>>,
}

impl Shared {
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

    /// The workers to share jobs among: those planned for, or those seen
    /// lately when there are more (external ones included).
    fn workers(&self) -> usize {
        let seen = self.live_workers.load(Ordering::Relaxed);
        self.spec.planned_workers().max(seen)
    }

    fn broken(&self) -> Option<String> {
        lock(&self.broken).clone()
    }
}

/// Extra life of the run's keys beyond `keep_for`, while the host runs.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// A pool whose workers read a Redis stream: `kind = "redis"`.
pub struct BrokerPool {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    local: Mutex<Option<LocalWorkers>>,
}

papy_core::opaque_debug!(BrokerPool);

impl BrokerPool {
    /// A builder for pool `name` on the broker at `url`.
    pub fn builder(name: &str, url: &str) -> BrokerPoolBuilder {
        BrokerPoolBuilder::new(name, url)
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
        let run = spec.run().to_string();
        let sealer = spec.sealer(&run)?;
        let settings = RunSettings {
            session: session_id(),
            max_attempts: spec.max_attempts,
            claim_after: spec.claim_after,
            done: false,
            lease: spec.keep_for + LEASE_MARGIN,
            key_check: sealer.check_value(),
        };
        let local = spec.local_command(&*connector)?;
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
            spec,
            connector,
            settings,
            sealer: sealer.clone(),
            forged: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            live_workers: AtomicUsize::new(0),
            halt: AtomicBool::new(false),
            duplicates: AtomicU64::new(0),
            broken: Mutex::new(None),
            distance: Distance::default(),
        });
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (sh, rq) = (shared.clone(), shared.connector.connect()?);
        // The pool's thread `what`.
        let thread =
            |what| std::thread::Builder::new().name(format!("{}-broker-{what}", shared.spec.name));
        let threads = vec![
            thread("send").spawn({
                let sh = shared.clone();
                move || sender(&sh, &rx, q)
            })?,
            thread("recv").spawn(move || receiver(&sh, rq))?,
        ];
        let local = local.map(|(cmd, n, url)| {
            let cmd = cmd.env(KEY_ENV, &sealer.key.0);
            LocalWorkers::start(n, cmd, &url, &run, &give_up(&shared))
        });
        Ok(BrokerPool {
            shared,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            local: Mutex::new(local),
        })
    }

    /// The run's id (workers serve it with `--run`).
    pub fn run_id(&self) -> &str {
        self.shared.spec.run()
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

/// What the local workers call when they cannot be started: the pool
/// breaks down unless other workers serve the run.
fn give_up(shared: &Arc<Shared>) -> crate::local::GiveUp {
    let weak = Arc::downgrade(shared);
    Arc::new(move |m: &str| {
        if let Some(sh) = weak.upgrade() {
            if sh.live_workers.load(Ordering::Relaxed) > 0 {
                tracing::warn!("broker pool `{}`: {m}; other workers go on", sh.spec.name);
            } else {
                sh.break_down(&format!("broker pool `{}`: {m}", sh.spec.name));
            }
        }
    })
}

impl Pool for BrokerPool {
    fn kind(&self) -> &'static str {
        "redis"
    }

    /// A job is a stream entry written, claimed, answered and read back
    /// through the broker: milliseconds.
    fn job_target(&self) -> Duration {
        distance::JOB_TARGET
    }

    /// Enough visits in flight to cover the time entries spend travelling
    /// and waiting (their round trip minus the workers' busy time, as
    /// measured): with workers far from Redis, a worker finishing an entry
    /// must find the next ones already on their way (`distance.rs`).
    fn room_visits(&self) -> usize {
        self.shared.distance.room_visits(self.shared.workers())
    }

    fn size(&self) -> usize {
        self.shared.spec.planned_workers()
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
        Some(self.shared.spec.settings())
    }

    fn submit(&self, job: Job) {
        papy_core::pool::queue_or_fail(lock(&self.tx).as_ref(), job);
    }

    fn shutdown(&self) {
        // Closes the job queue; a second call finds it closed.
        if lock(&self.tx).take().is_none() {
            return;
        }
        let sh = &self.shared;
        // Jobs in flight get a grace period, then fail.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !lock(&sh.in_flight).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        sh.halt.store(true, Ordering::Release);
        for h in std::mem::take(&mut *lock(&self.threads)) {
            let _ = h.join();
        }
        sh.fail_in_flight("the pool shut down before this item finished");
        // Only this host's run: another host may have taken the run id over.
        let finish = |mut q: Box<dyn Queue>| -> crate::Result<()> {
            match q.settings()? {
                Some(s) if s.session == sh.settings.session => {
                    sh.replays.store(q.replays()?, Ordering::Relaxed);
                    q.finish_run(sh.spec.keep_for)
                }
                _ => Ok(()),
            }
        };
        // A few tries: without them the keys keep the lease (keep_for plus
        // a minute) and expire anyway.
        for attempt in 0..3 {
            match sh.connector.connect().and_then(finish) {
                Ok(()) => break,
                Err(e) => tracing::warn!("broker pool `{}`: {e}", sh.spec.name),
            }
            if attempt < 2 {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let Some(mut l) = lock(&self.local).take() {
            l.stop(Duration::from_secs(3));
        }
        let d = self.duplicates();
        if d > 0 {
            tracing::info!(
                "broker pool `{}`: dropped {d} duplicate results",
                sh.spec.name
            );
        }
    }
}

impl Drop for BrokerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
