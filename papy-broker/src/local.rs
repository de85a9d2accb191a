//! Local broker workers a pool starts itself (handy on one machine and for
//! benches): each slot runs one worker process and starts a new one when it
//! dies (a poison item kills whoever takes it), backing off after quick
//! deaths. External workers (`papy worker --redis` on other hosts) need no
//! such thing from the pool: run them under a supervisor.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use papy_core::pool::{WorkerCommand, WORKER_ENV};

use crate::worker::{HOST_PID_ENV, RUN_ENV, UNTIL_DONE_ENV, URL_ENV};

/// A set of local worker processes, each restarted when it dies.
pub(crate) struct LocalWorkers {
    stop: Arc<AtomicBool>,
    pids: Arc<Mutex<BTreeMap<usize, u32>>>,
    slots: Vec<JoinHandle<()>>,
}

impl LocalWorkers {
    /// Starts `n` workers with `command`, serving run `run` at `url` (passed
    /// in the environment, so no password shows in a process list).
    pub(crate) fn start(n: usize, command: &WorkerCommand, url: &str, run: &str) -> LocalWorkers {
        let stop = Arc::new(AtomicBool::new(false));
        let pids = Arc::new(Mutex::new(BTreeMap::new()));
        let slots = (0..n)
            .filter_map(|slot| {
                let (stop, pids, cmd) = (stop.clone(), pids.clone(), command.clone());
                let (url, run) = (url.to_string(), run.to_string());
                std::thread::Builder::new()
                    .name(format!("papy-broker-local-{slot}"))
                    .spawn(move || supervise(slot, &cmd, &url, &run, &stop, &pids))
                    .ok()
            })
            .collect();
        LocalWorkers { stop, pids, slots }
    }

    /// The process ids of the live workers, by slot.
    pub(crate) fn pids(&self) -> BTreeMap<usize, u32> {
        self.pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lets the workers exit (they see the run done), kills those that do
    /// not within `grace`, and reaps every one.
    pub(crate) fn stop(&mut self, grace: Duration) {
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        for h in std::mem::take(&mut self.slots) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !h.is_finished() {
                if let Some(pid) = self.pid_of_thread(&h) {
                    kill_group(pid);
                }
            }
            let _ = h.join();
        }
    }

    fn pid_of_thread(&self, h: &JoinHandle<()>) -> Option<u32> {
        let name = h.thread().name()?;
        let slot: usize = name.rsplit('-').next()?.parse().ok()?;
        self.pids().get(&slot).copied()
    }
}

impl Drop for LocalWorkers {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

fn spawn(cmd: &WorkerCommand, url: &str, run: &str) -> std::io::Result<Child> {
    let mut c = cmd.to_command();
    c.env(WORKER_ENV, "redis")
        .env(URL_ENV, url)
        .env(RUN_ENV, run)
        .env(UNTIL_DONE_ENV, "1")
        .env(HOST_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c.spawn()
}

fn supervise(
    slot: usize,
    cmd: &WorkerCommand,
    url: &str,
    run: &str,
    stop: &AtomicBool,
    pids: &Mutex<BTreeMap<usize, u32>>,
) {
    let set_pid = |pid: Option<u32>| {
        let mut p = pids.lock().unwrap_or_else(PoisonError::into_inner);
        match pid {
            Some(pid) => p.insert(slot, pid),
            None => p.remove(&slot),
        };
    };
    let mut quick_deaths = 0u32;
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let mut child = match spawn(cmd, url, run) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot start a local broker worker `{}`: {e}", cmd.line());
                quick_deaths += 1;
                std::thread::sleep(backoff(quick_deaths));
                continue;
            }
        };
        set_pid(Some(child.id()));
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if stop.load(Ordering::Acquire) => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break None,
            }
        };
        if status.is_none() {
            // Stopping: the worker exits by itself once it sees the run
            // done; the pool kills it after its grace period otherwise.
            let _ = child.wait();
            kill_group(child.id());
            set_pid(None);
            return;
        }
        kill_group(child.id());
        set_pid(None);
        if stop.load(Ordering::Acquire) {
            return;
        }
        tracing::debug!("local broker worker {slot} ended ({status:?}); starting another");
        quick_deaths = if started.elapsed() > Duration::from_secs(10) {
            0
        } else {
            quick_deaths + 1
        };
        std::thread::sleep(backoff(quick_deaths));
    }
}

fn backoff(deaths: u32) -> Duration {
    if deaths == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(25u64 << deaths.min(7)).min(Duration::from_secs(2))
}

/// Kills the process group led by `pid` (the worker and what it started).
fn kill_group(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) on the process group the worker leads (it was
            // spawned with process_group(0)); no memory is touched.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}
