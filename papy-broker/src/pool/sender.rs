//! The host's sender thread: queued jobs become task entries, appended
//! in one pipelined round trip.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use papy_core::pool::Job;
use papy_core::{ErrorKind, ItemError};

use super::entries::{groups, hold_back, prepare};
use super::Shared;
use crate::queue::Queue;

/// Most jobs taken from the queue for one round trip.
const MAX_GROUP: usize = 4096;

/// How often held-back jobs are looked at again (their task may have been
/// measured meanwhile).
const HOLD_POLL: Duration = Duration::from_millis(2);

/// The sender thread: takes the queued jobs, groups them into entries
/// and appends them in one round trip, reconnecting (with a backoff) until
/// the broker has not answered for `unreachable_after`.
pub(super) fn sender(sh: &Shared, rx: &Receiver<Job>, q: Box<dyn Queue>) {
    let mut q = Some(q);
    // Jobs of tasks not measured yet, held back (`hold_back`).
    let mut held: Vec<Job> = Vec::new();
    while let Some((mut queue, closed)) = take(rx, &mut held) {
        if let Some(m) = sh.broken() {
            for job in queue {
                job.fail_all(ItemError::new(ErrorKind::WorkerDied, m.clone()));
            }
            continue;
        }
        let workers = sh.workers();
        if !closed {
            (queue, held) = hold_back(sh, queue, workers);
        }
        let tasks: Vec<(u64, Vec<u8>)> = groups(queue, workers)
            .into_iter()
            .filter_map(|g| prepare(sh, g))
            .collect();
        if tasks.is_empty() {
            continue;
        }
        let deadline = Instant::now() + sh.spec.unreachable_after;
        let mut backoff = Duration::from_millis(50);
        let last_error = loop {
            // The connection kept, or a new one; kept if it appended them.
            let c = q.take().map_or_else(|| sh.connector.connect(), Ok);
            match c.and_then(|mut c| c.add_tasks(&sh.settings.session, &tasks).map(|()| c)) {
                Ok(c) => {
                    q = Some(c);
                    break None;
                }
                // Full: Redis refuses until memory is freed; no retry.
                Err(e) => {
                    let full = matches!(e, crate::BrokerError::Full(_));
                    if full || Instant::now() >= deadline || sh.halt.load(Ordering::Acquire) {
                        break Some(e);
                    }
                }
            }
            std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
            backoff = (backoff * 2).min(Duration::from_secs(2));
        };
        if let Some(e) = last_error {
            tracing::error!("broker pool `{}`: {e}", sh.spec.name);
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

/// The jobs held back and those queued (at most [`MAX_GROUP`]), waiting for
/// one (or at most [`HOLD_POLL`] when some are held), and whether the queue
/// is closed (the pool is shutting down: what is held goes out); `None`
/// when it is closed and nothing is held.
fn take(rx: &Receiver<Job>, held: &mut Vec<Job>) -> Option<(Vec<Job>, bool)> {
    let next = if held.is_empty() {
        rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
    } else {
        rx.recv_timeout(HOLD_POLL)
    };
    let closed = matches!(next, Err(RecvTimeoutError::Disconnected));
    if closed && held.is_empty() {
        return None;
    }
    let mut queue = std::mem::take(held);
    queue.extend(next.ok());
    queue.extend(rx.try_iter().take(MAX_GROUP.saturating_sub(queue.len())));
    Some((queue, closed))
}
