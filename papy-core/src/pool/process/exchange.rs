//! One exchange with a worker: send a group's Task frame, wait for its
//! Result, and say what happened. The proxy sees a worker only through
//! [`Link`], so its steps are tested with a fake worker (`tests.rs`).

use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::child::{Conn, Incoming, StartError};
use super::Job;
use crate::error::{quote_peer, ErrorKind, Item, ItemError};
use crate::job::batch::Wire;
use crate::protocol::serve::chain_of;
use crate::protocol::{release_large, write_frame_with, Frame, ProtocolError};

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

/// Why a Task frame was not sent.
pub(super) enum SendError {
    /// The worker did not take the frame before the deadline.
    TimedOut,
    /// The worker is gone, or the frame could not be built.
    Failed(String),
}

/// A connection to one worker, as its proxy uses it.
pub(super) trait Link {
    /// The worker's process id.
    fn pid(&self) -> u32;
    /// The functions the worker said it runs (its `Hello`).
    fn functions(&self) -> &[String];
    /// Sends a group's Task frame; a write still blocked at `deadline`
    /// gives up.
    fn send(
        &mut self,
        job: &Job,
        wire: &Wire<'_>,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<(), SendError>;
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
        let late = || {
            Failure::TimedOut(format!(
                "no result within {:?}",
                timeout.unwrap_or_default()
            ))
        };
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        match self.send(job, wire, id, deadline) {
            Ok(()) => {}
            Err(SendError::TimedOut) => return Err(late()),
            Err(SendError::Failed(e)) => return Err(Failure::Died(e)),
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.receive(id, wire.len(), left) {
            Err(Failure::TimedOut(_)) => Err(late()),
            other => other,
        }
    }
}

impl Link for Conn {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn functions(&self) -> &[String] {
        &self.functions
    }

    fn send(
        &mut self,
        job: &Job,
        wire: &Wire<'_>,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let Some(worker) = job.func().worker() else {
            return Err(SendError::Failed(
                "internal: a task without a Worker reached a process pool".into(),
            ));
        };
        let (chain, node) = (chain_of(worker), job.func().name());
        self.set_write_deadline(deadline);
        let sent = write_frame_with(
            &mut self.stdin,
            &mut self.wbuf,
            &wire.frame(id, &chain, &node),
        );
        self.set_write_deadline(None);
        release_large(&mut self.wbuf);
        match sent {
            Ok(()) => Ok(()),
            Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(SendError::TimedOut)
            }
            Err(e) => Err(SendError::Failed(format!(
                "cannot send to the worker ({e}); {}",
                Conn::reap(self)
            ))),
        }
    }

    fn receive(
        &mut self,
        id: u64,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Item>, Failure> {
        let got = match timeout {
            Some(t) => match self.frames.recv_timeout(t) {
                Ok(f) => f,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Failure::TimedOut(format!("no result within {t:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => Err(ProtocolError::Closed),
            },
            None => crate::pool::recv_soon(&self.frames).unwrap_or(Err(ProtocolError::Closed)),
        };
        match got {
            Ok(Incoming::Results { id: rid, items }) if rid == id && items.len() == n => Ok(items),
            Ok(Incoming::Other(Frame::Fatal { message })) => Err(Failure::Died(format!(
                "the worker failed: {}",
                quote_peer(&message)
            ))),
            Ok(Incoming::Results { id: rid, items }) => Err(Failure::BadFrame(format!(
                "the worker answered task {rid} with {} result(s); expected task {id} with {n}",
                items.len()
            ))),
            Ok(other) => Err(Failure::BadFrame(format!(
                "unexpected {} frame from the worker",
                other.kind()
            ))),
            Err(ProtocolError::Closed) => Err(Failure::Died(format!(
                "worker process died: {}",
                Conn::reap(self)
            ))),
            Err(e) => Err(Failure::BadFrame(format!(
                "worker process sent a bad frame ({}); {}",
                quote_peer(&e.to_string()),
                Conn::kill(self)
            ))),
        }
    }

    fn exited(&mut self) -> bool {
        crate::os::exited_unreaped(&mut self.child)
    }

    fn kill(&mut self) -> String {
        Conn::kill(self)
    }

    fn reap(&mut self) -> String {
        Conn::reap(self)
    }

    fn shutdown(self) {
        Conn::shutdown(self);
    }
}
