//! Local broker workers a pool starts itself (handy on one machine and for
//! benches): each slot runs one worker process and starts a new one when it
//! dies (a poison item kills whoever takes it), backing off after quick
//! deaths. External workers (`papy worker --redis` on other hosts) need no
//! such thing from the pool: run them under a supervisor.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use papy_core::os::{exited_unreaped, kill_group};
use papy_core::pool::{WorkerCommand, WORKER_ENV};
use papy_core::sync::lock;

use crate::worker::{HOST_PID_ENV, RUN_ENV, UNTIL_DONE_ENV, URL_ENV};

/// Called once when the local workers cannot be started: `K` quick
/// failures in a row in some slot (the message says why).
pub(crate) type GiveUp = Arc<dyn Fn(&str) + Send + Sync>;

/// Quick failures in a row (a start that fails, or a worker that exits by
/// itself within `QUICK`) after which a slot gives up.
const K: u32 = 5;

/// A worker that ends this soon after its start counts as a failed start.
const QUICK: Duration = Duration::from_secs(2);

/// A set of local worker processes, each restarted when it dies.
pub(crate) struct LocalWorkers {
    stop: Arc<AtomicBool>,
    pids: Arc<Mutex<BTreeMap<usize, u32>>>,
    /// Each slot's number and thread.
    slots: Vec<(usize, JoinHandle<()>)>,
}

impl LocalWorkers {
    /// Starts `n` workers with `command`, serving run `run` at `url` (passed
    /// in the environment, so no password shows in a process list).
    /// `give_up` is called when a slot stops trying (see [`K`]).
    pub(crate) fn start(
        n: usize,
        command: WorkerCommand,
        url: &str,
        run: &str,
        give_up: &GiveUp,
    ) -> LocalWorkers {
        let stop = Arc::new(AtomicBool::new(false));
        let pids = Arc::new(Mutex::new(BTreeMap::new()));
        let command = command
            .env(WORKER_ENV, "redis")
            .env(URL_ENV, url)
            .env(RUN_ENV, run)
            .env(UNTIL_DONE_ENV, "1")
            .env(HOST_PID_ENV, std::process::id().to_string());
        let slots = (0..n)
            .filter_map(|slot| {
                let (cmd, stop, pids) = (command.clone(), stop.clone(), pids.clone());
                let give_up = give_up.clone();
                std::thread::Builder::new()
                    .name(format!("papy-broker-local-{slot}"))
                    .spawn(move || supervise(slot, &cmd, &stop, &pids, &give_up))
                    .ok()
                    .map(|h| (slot, h))
            })
            .collect();
        LocalWorkers { stop, pids, slots }
    }

    /// The process ids of the live workers, by slot.
    pub(crate) fn pids(&self) -> BTreeMap<usize, u32> {
        lock(&self.pids).clone()
    }

    /// Lets the workers exit (they see the run done), kills those that do
    /// not within `grace`, and reaps every one.
    pub(crate) fn stop(&mut self, grace: Duration) {
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        for (slot, h) in std::mem::take(&mut self.slots) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !h.is_finished() {
                if let Some(pid) = self.pids().get(&slot) {
                    kill_group(*pid);
                }
            }
            let _ = h.join();
        }
    }
}

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

fn supervise(
    slot: usize,
    cmd: &WorkerCommand,
    stop: &AtomicBool,
    pids: &Mutex<BTreeMap<usize, u32>>,
    give_up: &GiveUp,
) {
    let mut quick_deaths = 0u32;
    let mut last_failure = String::new();
    while !stop.load(Ordering::Acquire) {
        if quick_deaths >= K {
            let m = format!(
                "local broker worker {slot} (`{}`) failed {quick_deaths} times in a row \
                 ({last_failure}); giving up",
                cmd.line()
            );
            tracing::error!("{m}");
            give_up(&m);
            return;
        }
        let started = Instant::now();
        let mut c = cmd.to_command();
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = match c.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot start a local broker worker `{}`: {e}", cmd.line());
                last_failure = format!("cannot start: {e}");
                quick_deaths += 1;
                std::thread::sleep(backoff(quick_deaths));
                continue;
            }
        };
        let pid = child.id();
        lock(pids).insert(slot, pid);
        // Once the pool stops, the worker exits by itself when it sees the
        // run done; the pool kills it after its grace period otherwise.
        let mut stopping = false;
        while !exited_unreaped(&mut child) {
            stopping = stopping || stop.load(Ordering::Acquire);
            std::thread::sleep(Duration::from_millis(if stopping { 10 } else { 20 }));
        }
        // The group goes before the leader is reaped: until then its pid
        // cannot be reused, so the signal reaches no stranger.
        kill_group(pid);
        let status = child.wait().ok();
        lock(pids).remove(&slot);
        if stopping || stop.load(Ordering::Acquire) {
            return;
        }
        let by_signal = status.is_some_and(|st| st.code().is_none());
        if started.elapsed() < QUICK && !by_signal {
            quick_deaths += 1;
            last_failure = format!("exited at once: {status:?}");
        } else if started.elapsed() > Duration::from_secs(10) {
            quick_deaths = 0;
        }
        tracing::warn!("local broker worker {slot} ended ({status:?}); starting another");
        std::thread::sleep(backoff(quick_deaths));
    }
}

fn backoff(deaths: u32) -> Duration {
    if deaths == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(25u64 << deaths.min(7)).min(Duration::from_secs(2))
}
