//! The proxy thread of a worker slot: takes jobs from the pool's queue
//! (idle workers first), sends them to its child, delivers every item, and
//! isolates the items that kill a worker.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::child::Conn;
use super::command::WorkerCommand;
use super::frames::*;
use super::Job;
use super::Shared;
use crate::error::{ErrorKind, ItemError};
use crate::sync::lock;

/// A group sent to the worker whose result has not been read yet.
pub(super) struct InFlight {
    pub(super) group: Vec<Job>,
    pub(super) plan: Plan,
    pub(super) id: u64,
    pub(super) sent: Instant,
}

/// Reads the oldest in-flight group's result and delivers it. When the
/// worker died, that group is handled as a death during its exchange, and
/// every later in-flight group (which the worker had not started) runs
/// again from the start.
pub(super) fn complete_oldest(
    inflight: &mut VecDeque<InFlight>,
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    let Some(f) = inflight.pop_front() else {
        return;
    };
    let outcome = match conn.as_mut() {
        Some(c) => receive_result(c, f.id, f.plan.sent, None),
        None => Outcome::Died("no worker process".into()),
    };
    match outcome {
        Outcome::Done(items, failed) => {
            sh.consecutive_deaths.store(0, Ordering::Relaxed);
            let results = f.plan.assemble(&f.group, items, failed);
            deliver_group(&f.group, results, f.sent.elapsed());
        }
        Outcome::Died(msg) | Outcome::NoWorker(msg) => {
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            let later: Vec<InFlight> = inflight.drain(..).collect();
            // The group the worker was running when it died: as in
            // `handle_group`, jobs that were only together for speed run
            // again alone; a lone job uses its retries, or fails.
            let (retries, backoff) = f.group[0].retry_policy();
            if f.group.len() > 1 {
                for job in &f.group {
                    handle_group(std::slice::from_ref(job), slot, conn, respawn, sh);
                }
            } else if retries > 0 {
                std::thread::sleep(backoff);
                handle_group_from(&f.group, 1, slot, conn, respawn, sh);
            } else {
                let err = ItemError::new(ErrorKind::WorkerDied, msg);
                let results = f.plan.charge(&f.group, &err);
                deliver_group(&f.group, results, f.sent.elapsed());
            }
            // The worker had not started these: they run again.
            for l in later {
                handle_group(&l.group, slot, conn, respawn, sh);
            }
        }
        Outcome::TimedOut(_) => {
            // Pipelined groups have no timeout; kept total for the compiler.
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            let later: Vec<InFlight> = inflight.drain(..).collect();
            handle_group(&f.group, slot, conn, respawn, sh);
            for l in later {
                handle_group(&l.group, slot, conn, respawn, sh);
            }
        }
    }
}

/// Frames sent to one worker before the first of them is answered.
pub(super) const PIPELINE_DEPTH: usize = 2;

/// Most jobs coalesced into one frame.
pub(super) const MAX_GROUP: usize = 256;

/// Jobs of at least this many items are packed when submitted.
pub(super) const PACK_FROM: usize = 32;

pub(super) type Respawn<'a> = dyn Fn(&mut Option<Conn>) -> std::result::Result<(), String> + 'a;

/// Sends a group of jobs of one task as one frame and delivers every item;
/// a lone job whose worker died or timed out is retried per the task's policy.
pub(super) fn handle_group(
    group: &[Job],
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    handle_group_from(group, 0, slot, conn, respawn, sh);
}

pub(super) fn handle_group_from(
    group: &[Job],
    mut attempt: u32,
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    let (retries, backoff) = group[0].retry_policy();
    loop {
        let last = group.len() == 1 && attempt >= retries;
        let started = Instant::now();
        match attempt_group(group, slot, conn, respawn, sh, last) {
            Some(results) => {
                deliver_group(group, results, started.elapsed());
                return;
            }
            None if group.len() > 1 => {
                // The jobs were only together for speed: run each on its
                // own, so a poison item costs its own job, not the group.
                for job in group {
                    handle_group(std::slice::from_ref(job), slot, conn, respawn, sh);
                }
                return;
            }
            None => {
                attempt += 1;
                tracing::debug!(
                    "retrying a job after its worker died (attempt {attempt} of {retries})"
                );
                std::thread::sleep(backoff);
            }
        }
    }
}

/// One try: the results per job, or `None` when the worker died or timed
/// out and the caller will retry (a group, or a job with retries left).
pub(super) fn attempt_group(
    group: &[Job],
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
    last: bool,
) -> Option<Vec<Batch>> {
    let lead = &group[0];
    // Items with an error in their inbox never leave the host: the Worker
    // passes the error on without calling anything.
    let (plan, wire) = prepare(group);
    if plan.sent == 0 {
        return Some(plan.assemble(group, Vec::new(), 0));
    }
    let outcome = match respawn(conn) {
        Err(e) => Outcome::NoWorker(e),
        Ok(()) => match conn.as_mut() {
            Some(c) => exchange(
                c,
                lead,
                &wire,
                sh.next_id.fetch_add(1, Ordering::Relaxed) as u64,
            ),
            None => Outcome::Died("no worker process".into()),
        },
    };
    let failure = match outcome {
        Outcome::Done(items, failed) => {
            sh.consecutive_deaths.store(0, Ordering::Relaxed);
            return Some(plan.assemble(group, items, failed));
        }
        Outcome::TimedOut(t) => {
            let how = conn.as_mut().map(Conn::kill).unwrap_or_default();
            *conn = None;
            lock(&sh.pids).remove(&slot);
            if !last {
                return None;
            }
            ItemError::new(
                ErrorKind::Timeout,
                format!(
                    "no result within {t:?}; the worker process was killed ({how}) and replaced"
                ),
            )
        }
        Outcome::Died(msg) => {
            // A death during a job is charged to the job's items (a poison
            // item with retries must not take the pool down).
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            if group.len() > 1 || !last {
                return None;
            }
            ItemError::new(ErrorKind::WorkerDied, msg)
        }
        Outcome::NoWorker(msg) => {
            // Workers that cannot even start or shake hands: after
            // `max_deaths` in a row the pool gives up instead of looping.
            lock(&sh.pids).remove(&slot);
            let deaths = sh.consecutive_deaths.fetch_add(1, Ordering::Relaxed) + 1;
            if deaths >= sh.max_deaths {
                let m = format!(
                        "{} pool `{}` gave up after {deaths} consecutive failed worker starts (last: {msg})",
                        sh.kind, sh.name
                    );
                tracing::error!("{m}");
                *lock(&sh.given_up) = Some(m);
            }
            if !last && lock(&sh.given_up).is_none() {
                return None;
            }
            ItemError::new(ErrorKind::WorkerDied, msg)
        }
    };
    Some(plan.charge(group, &failure))
}

pub(super) fn proxy(slot: usize, cmd: &WorkerCommand, rx: &Receiver<Job>, sh: &Shared) {
    let mut conn: Option<Conn> = None;
    let respawn = |conn: &mut Option<Conn>| -> std::result::Result<(), String> {
        if conn.is_none() {
            if sh.stopping.load(Ordering::Acquire) {
                return Err("the pool is shutting down".into());
            }
            // Back off after deaths: a remote host that drops us is not hammered.
            let deaths = sh.consecutive_deaths.load(Ordering::Relaxed) as u32;
            if deaths > 0 {
                std::thread::sleep(
                    Duration::from_millis(25u64 << deaths.min(6)).min(Duration::from_secs(2)),
                );
            }
            let c = Conn::spawn(cmd)?;
            lock(&sh.pids).insert(slot, c.child.id());
            *conn = Some(c);
        }
        Ok(())
    };
    // Start eagerly so the first job does not pay for the start-up.
    if let Err(e) = respawn(&mut conn) {
        tracing::warn!("{} pool `{}`: {e}", sh.kind, sh.name);
    }
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Groups sent but not answered yet: the next frame is sent before the
    // previous result is read, so the worker never waits for the host.
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let complete = |inflight: &mut VecDeque<InFlight>, conn: &mut Option<Conn>| {
        complete_oldest(inflight, slot, conn, &respawn, sh);
    };
    loop {
        let job = match pending.pop_front() {
            Some(j) => j,
            None if inflight.is_empty() => match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
            None => match rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Empty) => {
                    complete(&mut inflight, &mut conn);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            },
        };
        if let Some(msg) = lock(&sh.given_up).clone() {
            job.fail_all(ItemError::new(ErrorKind::WorkerDied, msg));
            continue;
        }
        if sh.stopping.load(Ordering::Acquire) {
            job.fail_all(ItemError::new(
                ErrorKind::WorkerDied,
                "the pool shut down before this item ran",
            ));
            continue;
        }
        // Coalesce queued jobs of the same task into one frame (small
        // strides would otherwise pay a round trip per job), taking no more
        // than this worker's share of the queue.
        let mut group = vec![job];
        if group[0].timeout().is_none() {
            let share = (rx.len() / sh.size.max(1)).min(MAX_GROUP);
            while group.len() <= share {
                match rx.try_recv() {
                    // Packed jobs travel with packed jobs only.
                    Ok(j)
                        if Arc::ptr_eq(&j.task, &group[0].task)
                            && j.packed.is_some() == group[0].packed.is_some() =>
                    {
                        group.push(j)
                    }
                    Ok(j) => {
                        pending.push_back(j);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if group[0].timeout().is_some() || conn.is_none() {
            // Timeouts are measured per exchange, and starting a worker
            // (counting failed starts, giving up) happens there: one
            // exchange at a time.
            while !inflight.is_empty() {
                complete(&mut inflight, &mut conn);
            }
            handle_group(&group, slot, &mut conn, &respawn, sh);
            continue;
        }
        let (plan, wire) = prepare(&group);
        if plan.sent == 0 {
            let results = plan.assemble(&group, Vec::new(), 0);
            deliver_group(&group, results, Duration::ZERO);
            continue;
        }
        let id = sh.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        let sent = match conn.as_mut() {
            Some(c) => send_task(c, &group[0], &wire, id),
            None => Err("no worker process".into()),
        };
        drop(wire);
        match sent {
            Ok(()) => inflight.push_back(InFlight {
                group,
                plan,
                id,
                sent: Instant::now(),
            }),
            Err(_) => {
                // The worker is gone: what it held is charged as usual,
                // then this group (which it never took) runs again.
                while !inflight.is_empty() {
                    complete(&mut inflight, &mut conn);
                }
                handle_group(&group, slot, &mut conn, &respawn, sh);
            }
        }
        if inflight.len() >= PIPELINE_DEPTH {
            complete(&mut inflight, &mut conn);
        }
    }
    while !inflight.is_empty() {
        complete(&mut inflight, &mut conn);
    }
    if let Some(c) = conn.take() {
        c.shutdown();
    }
    lock(&sh.pids).remove(&slot);
}
