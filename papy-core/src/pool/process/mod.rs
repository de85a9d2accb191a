//! Process and remote pools: workers are child processes speaking the
//! protocol (`protocol/`) on their stdin/stdout.
//!
//! Each worker slot has a proxy thread that owns one child (`proxy.rs`):
//! it sends a group of jobs as one `Task` frame (built by the batch codec,
//! `job/batch.rs`) and waits for the `Result` (`link.rs`, `child.rs`). Dispatch is idle-first: a proxy pipelines a second frame
//! to its busy worker only when no other proxy is idle. A child that dies
//! (a panic with `panic = "abort"`, a segfault, SIGKILL, a closed pipe) is
//! replaced; the items it held run again, split in halves until the item
//! whose own evaluation kills a worker is alone, and only that item becomes
//! a `WorkerDied` error ("worker process died: signal 9") once its retries
//! are spent. After `max_deaths` consecutive workers that fail to start or
//! shake hands the pool gives up and fails every further item with a clear
//! error instead of respawning forever (restarts back off exponentially, up
//! to 2 s, so a dropped remote host is not hammered). A task timeout kills
//! and replaces the child (`child.rs`). Dropping the pool asks every child
//! to exit, then kills what is left, and waits for each: no zombies.
//!
//! "Remote" workers are the same thing started through any command, e.g.
//! `ssh host papy worker --stdio`: SSH brings authentication and encryption.

mod child;
mod command;
mod link;
mod pipe;
mod proxy;
mod recover;
#[cfg(test)]
mod tests;
mod warm;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{Job, Pool, TaskFn};
use crate::error::{Error, Result};
use crate::job::batch::pack;
use crate::os::kill_group;
use crate::sync::lock;
use crate::value::Value;
use link::Link;
use proxy::Proxy;

pub use command::{mark_test_support, Recycle, WorkerCommand, TEST_ENTRY, WORKER_ENV};
pub use warm::{release_warm, warm_up};

#[derive(Default)]
pub(super) struct Shared {
    pub(super) name: String,
    pub(super) size: usize,
    pub(super) stopping: std::sync::atomic::AtomicBool,
    pub(super) kind: &'static str,
    pub(super) max_deaths: usize,
    pub(super) consecutive_deaths: AtomicUsize,
    pub(super) given_up: Mutex<Option<link::StartError>>,
    pub(super) pids: Mutex<BTreeMap<usize, u32>>,
    pub(super) next_id: AtomicUsize,
    /// Proxies waiting for a job with nothing in flight.
    pub(super) idle: AtomicUsize,
    /// Time per item of each function chain run here lately: what a job
    /// of a task not yet measured is expected to take (a pool reused for
    /// many runs of the same pipeline pipelines from the first job).
    pub(super) recent: Mutex<std::collections::HashMap<String, Duration>>,
    /// Workers replaced by recycling ([`Recycle`]).
    pub(super) recycled: AtomicUsize,
    /// Worker processes started and shaken hands with.
    pub(super) started: AtomicUsize,
    /// Workers that died or were killed at a timeout during a job.
    pub(super) died: AtomicUsize,
    /// Starts that failed (the command, the handshake or the init).
    pub(super) failed_starts: AtomicUsize,
}

impl Shared {
    fn new(name: &str, kind: &'static str, size: usize) -> Shared {
        Shared {
            name: name.to_string(),
            size,
            kind,
            max_deaths: 5,
            ..Shared::default()
        }
    }
}

/// A pool of worker processes (local children or remote commands).
pub struct ProcessPool {
    pub(super) size: usize,
    pub(super) commands: Vec<(WorkerCommand, usize)>,
    pub(super) kind: &'static str,
    pub(super) tx: Mutex<Option<Sender<Job>>>,
    pub(super) proxies: Mutex<Vec<JoinHandle<()>>>,
    pub(super) shared: Arc<Shared>,
}

opaque_debug!(ProcessPool);

impl ProcessPool {
    /// `size` local worker processes started with `command`.
    ///
    /// # Errors
    /// Zero workers, or this process is itself a worker.
    pub fn new(name: &str, size: usize, command: WorkerCommand) -> Result<ProcessPool> {
        ProcessPool::start(name, "process", vec![(command, size)])
    }

    /// Remote workers: each command started `n` times (e.g. `ssh host papy worker --stdio`).
    ///
    /// # Errors
    /// No workers, or this process is itself a worker.
    pub fn remote(name: &str, commands: Vec<(WorkerCommand, usize)>) -> Result<ProcessPool> {
        ProcessPool::start(name, "remote", commands)
    }

    fn start(
        name: &str,
        kind: &'static str,
        commands: Vec<(WorkerCommand, usize)>,
    ) -> Result<ProcessPool> {
        if std::env::var_os(WORKER_ENV).is_some() {
            return Err(Error::Config(format!(
                "this process is a papy worker ({WORKER_ENV} is set) and cannot start worker processes; \
                 does main() call papy::worker_main() first?"
            )));
        }
        let size: usize = commands
            .iter()
            .fold(0usize, |a, (_, n)| a.saturating_add(*n));
        if size == 0 {
            return Err(Error::Config(format!(
                "{kind} pool `{name}` needs at least one worker"
            )));
        }
        let shared = Arc::new(Shared::new(name, kind, size));
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut proxies = Vec::with_capacity(size);
        let mut slot = 0;
        for (cmd, n) in &commands {
            for _ in 0..*n {
                let (cmd, rx, sh) = (cmd.clone(), rx.clone(), shared.clone());
                // A worker started by `warm_up` is this slot's first.
                let warm = std::cell::Cell::new(warm::take(&cmd));
                let h = std::thread::Builder::new()
                    .name(format!("{name}-proxy-{slot}"))
                    .spawn(move || {
                        let start = || match warm.take() {
                            Some((conn, first)) => conn.greet(&cmd, Some(first)),
                            None => child::Conn::spawn(&cmd),
                        };
                        Proxy::new(slot, &cmd, &start, &rx, &sh).run();
                    })?;
                proxies.push(h);
                slot += 1;
            }
        }
        Ok(ProcessPool {
            size,
            commands,
            kind,
            tx: Mutex::new(Some(tx)),
            proxies: Mutex::new(proxies),
            shared,
        })
    }

    /// The process ids of the live children, by worker slot.
    pub fn pids(&self) -> BTreeMap<usize, u32> {
        lock(&self.shared.pids).clone()
    }
}

/// Starts one worker with `cmd`, shakes hands, and shuts it down: the
/// functions it runs and the signatures it announced (`papy check
/// --probe`).
///
/// # Errors
/// The worker cannot start or refuses the handshake; the message says why.
pub fn probe(
    cmd: &WorkerCommand,
) -> std::result::Result<(Vec<String>, Vec<crate::protocol::Signature>), String> {
    let conn = child::Conn::spawn(cmd).map_err(|e| e.message)?;
    let found = (conn.functions.clone(), conn.signatures.clone());
    conn.shutdown();
    Ok(found)
}

impl Pool for ProcessPool {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn stats(&self) -> crate::pool::PoolStats {
        use std::sync::atomic::Ordering::Relaxed;
        let sh = &self.shared;
        let count = |a: &AtomicUsize| a.load(Relaxed) as u64;
        crate::pool::PoolStats {
            kind: self.kind,
            workers: self.size,
            busy: self.size.saturating_sub(sh.idle.load(Relaxed)),
            started: count(&sh.started),
            died: count(&sh.died),
            recycled: count(&sh.recycled),
            failed_starts: count(&sh.failed_starts),
        }
    }

    fn size(&self) -> usize {
        self.size
    }

    fn settings(&self) -> Option<Value> {
        let first = if self.kind == "remote" {
            let remote = self.commands.iter().map(|(c, n)| {
                super::settings_map([
                    ("command", Value::from(c.line())),
                    ("workers", Value::from(*n)),
                ])
            });
            ("remote", Value::List(Arc::new(remote.collect())))
        } else {
            ("workers", Value::from(self.size))
        };
        let mut pairs = vec![first];
        // The `functions` its commands provide, and when they are recycled.
        if let Some((c, _)) = self.commands.first() {
            if !c.provides().is_empty() {
                let names = c.provides().iter().map(|n| Value::from(n.as_str()));
                pairs.push(("functions", Value::list(names)));
            }
            let recycle = c.recycling();
            if let Some(n) = recycle.after_items {
                pairs.push(("recycle_after", Value::from(n)));
            }
            if let Some(b) = recycle.above_rss {
                pairs.push(("recycle_above_mb", Value::from(b >> 20)));
            }
        }
        Some(super::settings_map(pairs))
    }

    fn accepts(&self, f: &dyn TaskFn) -> Result<()> {
        let closure = match f.worker() {
            Some(w) => w.first_closure().map(str::to_string),
            None => Some(f.name()),
        };
        closure.map_or(Ok(()), |function| {
            let pool = self.kind.to_string();
            Err(Error::NotPortable { function, pool })
        })
    }

    fn whole_strides(&self) -> bool {
        true
    }

    /// A local round trip costs tens of microseconds plus a wake-up of
    /// each thread it crosses (proxy, feeder); one over a network
    /// link (remote workers) a millisecond or more.
    fn job_target(&self) -> Duration {
        if self.kind == "remote" {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(10)
        }
    }

    fn submit(&self, mut job: Job) {
        pack(&mut job);
        super::queue_or_fail(lock(&self.tx).as_ref(), job);
    }

    fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        drop(lock(&self.tx).take());
        let proxies: Vec<_> = std::mem::take(&mut *lock(&self.proxies));
        // Jobs in progress get a grace period; then the children still
        // holding one are killed (their items become errors) and reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        while proxies.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if proxies.iter().any(|h| !h.is_finished()) {
            for pid in lock(&self.shared.pids).values() {
                kill_group(*pid);
            }
        }
        for h in proxies {
            let _ = h.join();
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
