//! One exchange with a worker: send a group's Task frame, wait for its
//! Result, and say what happened. The proxy sees a worker only through
//! [`Link`] (a child process, `child.rs`), so its steps are tested with a
//! fake worker (`tests.rs`).

use std::time::{Duration, Instant};

use super::Job;
use crate::error::{ErrorKind, Item, ItemError};
use crate::job::batch::Wire;

/// How an exchange failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The worker died while it held the group (its items may be to blame).
    Died(String),
    /// The worker answered the group with a frame that breaks the protocol
    /// (handled as a death; no function is to blame).
    BadFrame(String),
    /// The item took longer than the task's timeout.
    TimedOut(String),
    /// No worker could be started (not the items' fault).
    NoWorker(StartError),
}

impl Failure {
    /// The error its items get: the function is the chain the worker was
    /// running (a death, a timeout), the init that failed (a start), or
    /// none (a bad frame, a start that failed otherwise).
    pub(super) fn error(self, job: &Job) -> ItemError {
        let running = || job.func().worker().map(|w| w.name());
        let (error, function) = match self {
            Failure::Died(m) => (ItemError::new(ErrorKind::WorkerDied, m), running()),
            Failure::TimedOut(m) => (ItemError::new(ErrorKind::Timeout, m), running()),
            Failure::BadFrame(m) => (ItemError::new(ErrorKind::WorkerDied, m), None),
            Failure::NoWorker(e) => (ItemError::new(ErrorKind::WorkerDied, e.message), e.function),
        };
        match function {
            Some(f) => error.with_function(f),
            None => error,
        }
    }
}

/// Why a worker did not start: the message, and the function to blame
/// when it was the host's `init` that failed.
#[derive(Debug, Clone)]
pub(crate) struct StartError {
    pub(crate) message: String,
    pub(crate) function: Option<String>,
}

impl From<String> for StartError {
    fn from(message: String) -> StartError {
        StartError {
            message,
            function: None,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A connection to one worker, as its proxy uses it.
pub(super) trait Link {
    /// The worker's process id.
    fn pid(&self) -> u32;
    /// The functions the worker said it runs (its `Hello`).
    fn functions(&self) -> &[String];
    /// Sends a group's Task frame; a write still blocked at `deadline`
    /// gives up ([`Failure::TimedOut`]). A worker that is gone, or a frame
    /// that cannot be built, is [`Failure::Died`].
    fn send(
        &mut self,
        job: &Job,
        wire: &Wire<'_>,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<(), Failure>;
    /// Waits for the results of task `id` (`n` items), at most `timeout`.
    fn receive(
        &mut self,
        id: u64,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Item>, Failure>;
    /// Whether the worker has exited (left unreaped).
    fn exited(&mut self) -> bool;
    /// Kills the worker and reaps it; how it ended.
    fn kill(&mut self) -> String;
    /// Reaps a worker that exited; how it ended.
    fn reap(&mut self) -> String;
    /// Asks the worker to exit, then kills it if it does not.
    fn shutdown(self);

    /// Sends a task and waits for its results. A task with a timeout must
    /// be answered within it, counting from the start of the send: a worker
    /// that stops reading its input times out like one that stops answering.
    fn exchange(&mut self, job: &Job, wire: &Wire<'_>, id: u64) -> Result<Vec<Item>, Failure> {
        let timeout = job.timeout();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let got = self.send(job, wire, id, deadline).and_then(|()| {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            self.receive(id, wire.len(), left)
        });
        match got {
            Err(Failure::TimedOut(_)) => Err(Failure::TimedOut(format!(
                "no result within {:?}",
                timeout.unwrap_or_default()
            ))),
            other => other,
        }
    }
}
