//! One exchange with a worker: send a group's Task frame, wait for its
//! Result, and say what happened (done, died, a bad frame, timed out).

use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::child::Conn;
use super::frames::{Incoming, Wire, WireValues};
use super::Job;
use crate::error::{quote_peer, Item};
use crate::protocol::serve::chain_of;
use crate::protocol::{
    release_large, write_frame_with, Frame, FrameRef, InboxesRef, ProtocolError,
};

pub(super) enum Outcome {
    /// The results of the items sent, and how many of them failed.
    Done(Vec<Item>, usize),
    /// The worker died during the exchange (or said `Fatal`).
    Died(String),
    /// The worker answered with a frame that breaks the protocol.
    BadFrame(String),
    /// No worker could be started (spawn, handshake or init failed).
    NoWorker(super::child::StartError),
    TimedOut(Duration),
}

/// Why a Task frame was not sent.
pub(super) enum SendError {
    /// The worker did not take the frame before the deadline.
    TimedOut,
    /// The worker is gone, or the frame could not be built.
    Failed(String),
}

/// Sends one Task frame; a write still blocked at `deadline` gives up.
pub(super) fn send_task(
    conn: &mut Conn,
    job: &Job,
    wire: &Wire<'_>,
    id: u64,
    deadline: Option<Instant>,
) -> std::result::Result<(), SendError> {
    let Some(worker) = job.func().worker() else {
        return Err(SendError::Failed(
            "internal: a task without a Worker reached a process pool".into(),
        ));
    };
    let chain = chain_of(worker);
    let node = job.func().name();
    let inboxes = match &wire.values {
        WireValues::Packed(v) => InboxesRef::Single(v),
        WireValues::Many(v) => InboxesRef::Many(v),
    };
    let frame = FrameRef::Task {
        id,
        chain: &chain,
        node: &node,
        indices: &wire.indices,
        inboxes,
    };
    conn.set_write_deadline(deadline);
    let sent = write_frame_with(&mut conn.stdin, &mut conn.wbuf, &frame);
    conn.set_write_deadline(None);
    release_large(&mut conn.wbuf);
    match sent {
        Ok(()) => Ok(()),
        Err(ProtocolError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(SendError::TimedOut)
        }
        Err(e) => Err(SendError::Failed(format!(
            "cannot send to the worker ({e}); {}",
            conn.reap()
        ))),
    }
}

/// Waits for the Result frame of task `id` (`n` items).
pub(super) fn receive_result(
    conn: &mut Conn,
    id: u64,
    n: usize,
    timeout: Option<Duration>,
) -> Outcome {
    let got = match timeout {
        Some(t) => match conn.frames.recv_timeout(t) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => return Outcome::TimedOut(t),
            Err(RecvTimeoutError::Disconnected) => Err(ProtocolError::Closed),
        },
        None => crate::pool::recv_soon(&conn.frames).unwrap_or(Err(ProtocolError::Closed)),
    };
    match got {
        Ok(Incoming::Results {
            id: rid,
            items,
            failed,
        }) if rid == id && items.len() == n => Outcome::Done(items, failed),
        Ok(Incoming::Other(Frame::Fatal { message })) => {
            Outcome::Died(format!("the worker failed: {}", quote_peer(&message)))
        }
        Ok(Incoming::Results { id: rid, items, .. }) => Outcome::BadFrame(format!(
            "the worker answered task {rid} with {} result(s); expected task {id} with {n}",
            items.len()
        )),
        Ok(Incoming::Other(other)) => {
            Outcome::BadFrame(format!("unexpected {} frame from the worker", other.kind()))
        }
        Err(ProtocolError::Closed) => {
            Outcome::Died(format!("worker process died: {}", conn.reap()))
        }
        Err(e) => Outcome::BadFrame(format!(
            "worker process sent a bad frame ({}); {}",
            quote_peer(&e.to_string()),
            conn.kill()
        )),
    }
}

/// Sends a task and waits for its results. A task with a timeout must be
/// answered within it, counting from the start of the send: a worker that
/// stops reading its input times out like one that stops answering.
pub(super) fn exchange(conn: &mut Conn, job: &Job, wire: &Wire<'_>, id: u64) -> Outcome {
    let timeout = job.timeout();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    match send_task(conn, job, wire, id, deadline) {
        Ok(()) => {}
        Err(SendError::TimedOut) => return Outcome::TimedOut(timeout.unwrap_or_default()),
        Err(SendError::Failed(e)) => return Outcome::Died(e),
    }
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match receive_result(conn, id, wire.len(), left) {
        Outcome::TimedOut(_) => Outcome::TimedOut(timeout.unwrap_or_default()),
        other => other,
    }
}
