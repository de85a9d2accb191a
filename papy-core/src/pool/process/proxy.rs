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
use super::exchange::*;
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
    /// When the worker could start on it: sent, or when the frame ahead
    /// of it came back (its time there, for the statistics and the pace).
    pub(super) sent: Instant,
}

/// Frames whose expected time on the worker is under this are short: a
/// frame may be pipelined behind them.
const SHORT_FRAME: Duration = Duration::from_millis(5);

/// Every frame in flight is expected to take less than [`SHORT_FRAME`]
/// (from its task's measured pace; unknown is not short).
fn short(inflight: &VecDeque<InFlight>, sh: &Shared) -> bool {
    inflight.iter().all(|f| {
        f.group
            .iter()
            .try_fold(Duration::ZERO, |sum, j| Some(sum + expected(j, sh)?))
            .is_some_and(|t| t < SHORT_FRAME)
    })
}

/// Most function chains remembered per pool.
const RECENT: usize = 256;

/// What `job` should take on a worker: from its task's pace, else from
/// what its function chain took here lately (`None`: unknown).
fn expected(job: &Job, sh: &Shared) -> Option<Duration> {
    job.expected().or_else(|| {
        let name = job.func().worker()?.name();
        let per_item = *lock(&sh.recent).get(&name)?;
        Some(job.time_at(per_item))
    })
}

/// Delivers a group's results and remembers its time per item.
fn finish_group(group: &[Job], results: Vec<Batch>, elapsed: Duration, sh: &Shared) {
    let items: usize = group.iter().map(Job::len).sum();
    if let (Some(worker), Ok(n @ 1..)) = (group[0].func().worker(), u32::try_from(items)) {
        let mut recent = lock(&sh.recent);
        if recent.len() >= RECENT {
            recent.clear();
        }
        recent.insert(worker.name(), elapsed / n);
    }
    deliver_group(group, results, elapsed);
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
            finish_group(&f.group, results, f.sent.elapsed(), sh);
            // The next frame's wait behind this one is not its own time.
            if let Some(next) = inflight.front_mut() {
                next.sent = next.sent.max(Instant::now());
            }
        }
        Outcome::Died(_) | Outcome::BadFrame(_) | Outcome::NoWorker(_) => {
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            let later: Vec<InFlight> = inflight.drain(..).collect();
            // The group the worker was running when it died.
            let failure = match outcome {
                Outcome::BadFrame(msg) => Failure::BadFrame(msg),
                Outcome::Died(msg) => Failure::Died(msg),
                Outcome::NoWorker(e) => Failure::Died(e.message),
                Outcome::Done(..) | Outcome::TimedOut(_) => unreachable!("matched above"),
            };
            recover(
                &f.group, f.plan, failure, 0, f.sent, slot, conn, respawn, sh,
            );
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

pub(super) type Respawn<'a> =
    dyn Fn(&mut Option<Conn>) -> std::result::Result<(), super::child::StartError> + 'a;

/// Sends a group of jobs of one task as one frame and delivers every item.
/// When the worker dies, the items that kill a worker are isolated (see
/// [`recover`]); a lone item whose worker died or timed out is retried per
/// the task's policy.
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
    attempt: u32,
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    let started = Instant::now();
    match attempt_group(group, slot, conn, respawn, sh) {
        Ok(results) => finish_group(group, results, started.elapsed(), sh),
        Err((failure, plan)) => {
            recover(
                group, plan, failure, attempt, started, slot, conn, respawn, sh,
            );
        }
    }
}

/// How an exchange failed.
pub(super) enum Failure {
    /// The worker died while it held the group (its items may be to blame).
    Died(String),
    /// The worker answered the group with a frame that breaks the protocol
    /// (handled as a death; no function is to blame).
    BadFrame(String),
    /// The item took longer than the task's timeout (the worker was killed).
    TimedOut(String),
    /// No worker could be started (not the items' fault).
    NoWorker(super::child::StartError),
}

impl Failure {
    /// The error its items get: the function is the chain the worker was
    /// running (a death, a timeout), the init that failed (a start), or
    /// none (a bad frame, a start that failed otherwise).
    fn error(self, job: &Job) -> ItemError {
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

/// After a failed exchange: poison isolation and retries.
///
/// - Several jobs that were only together for speed run again one by one.
/// - A job of several items whose worker died is split in two halves, each
///   run on its own (recursively), so only an item whose own evaluation
///   kills a worker is ever charged: its innocent batch-mates succeed. A
///   job of `n` items with `p` poison items costs at most about
///   `p x log2(n)` extra worker starts, and retries are never spent on
///   halves.
/// - A lone item is retried `retries` times (with the backoff), then
///   becomes an error item (`WorkerDied` or `Timeout`).
/// - When the pool has given up starting workers, everything is charged.
#[allow(clippy::too_many_arguments)]
pub(super) fn recover(
    group: &[Job],
    plan: Plan,
    failure: Failure,
    attempt: u32,
    started: Instant,
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    let (retries, backoff) = group[0].retry_policy();
    let given_up = lock(&sh.given_up).is_some();
    // Items that may run only once: what was sent with the worker that
    // died fails with it (a worker that never started ran nothing).
    let ran = matches!(
        failure,
        Failure::Died(_) | Failure::TimedOut(_) | Failure::BadFrame(_)
    );
    if ran && group.iter().any(Job::at_most_once) {
        let failure = match failure {
            Failure::Died(m) => Failure::Died(format!(
                "{m} (not run again: the node runs each item at most once)"
            )),
            other => other,
        };
        let error = failure.error(&group[0]);
        let results = plan.charge(group, &error);
        deliver_group(group, results, started.elapsed());
        return;
    }
    if !given_up && group.len() > 1 {
        for job in group {
            handle_group(std::slice::from_ref(job), slot, conn, respawn, sh);
        }
        return;
    }
    if let (false, Failure::Died(_) | Failure::BadFrame(_), [job]) = (given_up, &failure, group) {
        if let Some((a, b)) = job.halves() {
            tracing::debug!(
                "a worker died holding {} items; running them again in two halves",
                job.len()
            );
            handle_group(std::slice::from_ref(&a), slot, conn, respawn, sh);
            handle_group(std::slice::from_ref(&b), slot, conn, respawn, sh);
            return;
        }
    }
    if !given_up && attempt < retries {
        tracing::debug!(
            "retrying an item after its worker failed (attempt {} of {retries})",
            attempt + 1
        );
        std::thread::sleep(backoff);
        handle_group_from(group, attempt + 1, slot, conn, respawn, sh);
        return;
    }
    let error = failure.error(&group[0]);
    let results = plan.charge(group, &error);
    deliver_group(group, results, started.elapsed());
}

/// One try: the results per job, or how it failed (with the group's plan,
/// to charge its items).
pub(super) fn attempt_group(
    group: &[Job],
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) -> std::result::Result<Vec<Batch>, (Failure, Plan)> {
    let lead = &group[0];
    // Items with an error in their inbox never leave the host: the Worker
    // passes the error on without calling anything.
    let (plan, wire) = prepare(group);
    if plan.sent == 0 {
        return Ok(plan.assemble(group, Vec::new(), 0));
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
    drop(wire);
    let failure = match outcome {
        Outcome::Done(items, failed) => {
            sh.consecutive_deaths.store(0, Ordering::Relaxed);
            return Ok(plan.assemble(group, items, failed));
        }
        Outcome::TimedOut(t) => {
            sh.died.fetch_add(1, Ordering::Relaxed);
            let how = conn.as_mut().map(Conn::kill).unwrap_or_default();
            *conn = None;
            lock(&sh.pids).remove(&slot);
            Failure::TimedOut(format!(
                "no result within {t:?}; the worker process was killed ({how}) and replaced"
            ))
        }
        Outcome::Died(_) | Outcome::BadFrame(_) => {
            // A death during a job is charged to the job's items (a poison
            // item must not take the pool down).
            sh.died.fetch_add(1, Ordering::Relaxed);
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            match outcome {
                Outcome::BadFrame(msg) => Failure::BadFrame(msg),
                Outcome::Died(msg) => Failure::Died(msg),
                _ => unreachable!("matched above"),
            }
        }
        Outcome::NoWorker(msg) => {
            // Workers that cannot even start or shake hands: after
            // `max_deaths` in a row the pool gives up instead of looping.
            lock(&sh.pids).remove(&slot);
            sh.failed_starts.fetch_add(1, Ordering::Relaxed);
            let deaths = sh.consecutive_deaths.fetch_add(1, Ordering::Relaxed) + 1;
            if deaths >= sh.max_deaths {
                let m = format!(
                    "{} pool `{}` gave up after {deaths} consecutive failed worker starts (last: {msg})",
                    sh.kind, sh.name
                );
                tracing::error!("{m}");
                *lock(&sh.given_up) = Some(super::child::StartError {
                    message: m,
                    function: msg.function.clone(),
                });
            }
            Failure::NoWorker(msg)
        }
    };
    Err((failure, plan))
}

/// Why the worker `pid` started with `cmd` is due for replacement after
/// serving `served` items, if it is.
fn recycle_reason(cmd: &WorkerCommand, served: u64, pid: u32) -> Option<String> {
    let r = cmd.recycling();
    if r.after_items.is_some_and(|n| served >= n) {
        return Some(format!("served {served} items"));
    }
    let limit = r.above_rss?;
    let rss = resident_bytes(pid)?;
    (rss > limit).then(|| format!("resident memory {} MiB", rss >> 20))
}

/// Records who got a group of `group_items` items: the worker that was
/// serving (then `count` items in all), or a new one (started for it).
fn account(
    conn: &Option<Conn>,
    before: Option<u32>,
    count: u64,
    group_items: u64,
    served: &mut u64,
    served_by: &mut Option<u32>,
) {
    let after = conn.as_ref().map(|c| c.child.id());
    *served = if after.is_some() && after == before {
        count
    } else {
        group_items
    };
    *served_by = after;
}

/// A process's resident memory (Linux: `VmRSS` of `/proc/PID/status`).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(super) fn proxy(slot: usize, cmd: &WorkerCommand, rx: &Receiver<Job>, sh: &Shared) {
    let mut conn: Option<Conn> = None;
    let respawn = |conn: &mut Option<Conn>| -> std::result::Result<(), super::child::StartError> {
        if conn.is_none() {
            if sh.stopping.load(Ordering::Acquire) {
                return Err(String::from("the pool is shutting down").into());
            }
            // Back off after deaths: a remote host that drops us is not hammered.
            let deaths = sh.consecutive_deaths.load(Ordering::Relaxed) as u32;
            if deaths > 0 {
                std::thread::sleep(
                    Duration::from_millis(25u64 << deaths.min(6)).min(Duration::from_secs(2)),
                );
            }
            let mut c = Conn::spawn(cmd)?;
            // A worker without a function the resource declares will not
            // grow it: the pool gives up at once, naming what is missing.
            let missing = super::child::missing_functions(cmd.provides(), &c.functions);
            if !missing.is_empty() {
                let m = format!(
                    "`{}` does not provide {} (the functions its resource declares)",
                    cmd.describe(),
                    missing.join(", ")
                );
                let _ = c.kill();
                *lock(&sh.given_up) = Some(m.clone().into());
                return Err(m.into());
            }
            lock(&sh.pids).insert(slot, c.child.id());
            sh.started.fetch_add(1, Ordering::Relaxed);
            *conn = Some(c);
        }
        Ok(())
    };
    // A proxy starting its worker counts as idle: it will take a job in a
    // moment, and a busy proxy must not pipeline that job behind its own.
    sh.idle.fetch_add(1, Ordering::SeqCst);
    let mut counted_idle = true;
    // Start eagerly so the first job does not pay for the start-up.
    if let Err(e) = respawn(&mut conn) {
        tracing::warn!("{} pool `{}`: {e}", sh.kind, sh.name);
    }
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Items sent to worker `served_by`, for recycling.
    let mut served: u64 = 0;
    let mut served_by: Option<u32> = None;
    // Groups sent but not answered yet: the next frame is sent before the
    // previous result is read, so the worker never waits for the host.
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let complete = |inflight: &mut VecDeque<InFlight>, conn: &mut Option<Conn>| {
        complete_oldest(inflight, slot, conn, &respawn, sh);
    };
    // Every group in flight answered (or charged), oldest first.
    let settle = |inflight: &mut VecDeque<InFlight>, conn: &mut Option<Conn>| {
        while !inflight.is_empty() {
            complete(inflight, conn);
        }
    };
    loop {
        let job = match pending.pop_front() {
            Some(j) => j,
            None if inflight.is_empty() => {
                // Idle: counted until a job is in hand, so that no busy
                // proxy pipelines a job this one could start at once.
                if !counted_idle {
                    sh.idle.fetch_add(1, Ordering::SeqCst);
                }
                crate::chaos::point("proxy.idle");
                let job = crate::pool::recv_soon(rx);
                sh.idle.fetch_sub(1, Ordering::SeqCst);
                counted_idle = false;
                match job {
                    Ok(j) => j,
                    Err(_) => break,
                }
            }
            // Idle first: a second frame goes to a busy worker only when
            // no worker is idle, and only behind frames known to be short
            // (a job queued behind a long or unknown one could wait for it
            // while another worker frees up).
            None if sh.idle.load(Ordering::SeqCst) > 0 || !short(&inflight, sh) => {
                complete(&mut inflight, &mut conn);
                continue;
            }
            None => match rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Empty) => {
                    complete(&mut inflight, &mut conn);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            },
        };
        if let Some(e) = lock(&sh.given_up).clone() {
            job.fail_all(Failure::NoWorker(e).error(&job));
            continue;
        }
        if sh.stopping.load(Ordering::Acquire) {
            job.fail_all(ItemError::new(
                ErrorKind::WorkerDied,
                "the pool shut down before this item ran",
            ));
            continue;
        }
        // A worker that died (killed, out of memory) while it had nothing to
        // do, or only frames it already answered, is replaced before it is
        // given this job: its death is no fault of the job's items. The
        // frames still in flight are settled first (charged if they were
        // lost with it). It can still die between this check and reading
        // the frame; that frame is then charged as any other.
        let dead = conn
            .as_mut()
            .is_some_and(|c| crate::os::exited_unreaped(&mut c.child));
        if dead {
            let old = conn.as_ref().map(|c| c.child.id());
            settle(&mut inflight, &mut conn);
            if conn.as_ref().map(|c| c.child.id()) == old {
                if let Some(mut c) = conn.take() {
                    let how = c.reap();
                    tracing::warn!(
                        "{} pool `{}`: worker {slot} exited between jobs ({how}); starting another",
                        sh.kind,
                        sh.name
                    );
                    lock(&sh.pids).remove(&slot);
                }
            }
        }
        // Recycling, between batches: a worker that has served its share
        // (or grown too large) answers what it holds, is shut down, and the
        // next exchange starts a fresh one. Nothing it was sent is lost.
        let now_serving = conn.as_ref().map(|c| c.child.id());
        let mut count = if now_serving.is_some() && now_serving == served_by {
            served
        } else {
            0
        };
        if let Some(why) = conn
            .as_ref()
            .and_then(|c| recycle_reason(cmd, count, c.child.id()))
        {
            settle(&mut inflight, &mut conn);
            if conn.as_ref().map(|c| c.child.id()) == now_serving {
                if let Some(c) = conn.take() {
                    tracing::debug!(
                        "{} pool `{}`: recycling worker {slot} ({why})",
                        sh.kind,
                        sh.name
                    );
                    c.shutdown();
                    lock(&sh.pids).remove(&slot);
                    sh.recycled.fetch_add(1, Ordering::Relaxed);
                }
            }
            count = 0;
        }
        count += job.len() as u64;
        let mut group_items = job.len() as u64;
        // Coalesce queued jobs of the same task into one frame (small
        // strides would otherwise pay a round trip per job), taking no more
        // than this worker's share of the queue.
        // Only jobs known to be short are grouped: a slow or unmeasured job
        // must not hold a queued one that another worker could run.
        let mut group = vec![job];
        if group[0].timeout().is_none() && expected(&group[0], sh).is_some_and(|t| t < SHORT_FRAME)
        {
            let share = (rx.len() / sh.size.max(1)).min(MAX_GROUP);
            // A recycled worker serves at most its share of items (or one
            // job, when a job alone holds more).
            let room = |served: u64| cmd.recycling().after_items.is_none_or(|n| served < n);
            while group.len() <= share && room(count) {
                match rx.try_recv() {
                    // Packed jobs travel with packed jobs only.
                    Ok(j)
                        if Arc::ptr_eq(&j.task, &group[0].task)
                            && j.packed.is_some() == group[0].packed.is_some() =>
                    {
                        count += j.len() as u64;
                        group_items += j.len() as u64;
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
            settle(&mut inflight, &mut conn);
            handle_group(&group, slot, &mut conn, &respawn, sh);
        } else {
            let (plan, wire) = prepare(&group);
            if plan.sent == 0 {
                let results = plan.assemble(&group, Vec::new(), 0);
                deliver_group(&group, results, Duration::ZERO);
                continue;
            }
            let id = sh.next_id.fetch_add(1, Ordering::Relaxed) as u64;
            let sent = match conn.as_mut() {
                Some(c) => send_task(c, &group[0], &wire, id, None),
                None => Err(SendError::Failed("no worker process".into())),
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
                    settle(&mut inflight, &mut conn);
                    handle_group(&group, slot, &mut conn, &respawn, sh);
                }
            }
        }
        account(
            &conn,
            now_serving,
            count,
            group_items,
            &mut served,
            &mut served_by,
        );
        if inflight.len() >= PIPELINE_DEPTH {
            complete(&mut inflight, &mut conn);
        }
    }
    settle(&mut inflight, &mut conn);
    if let Some(c) = conn.take() {
        c.shutdown();
    }
    lock(&sh.pids).remove(&slot);
}
