//! The proxy of a worker slot: takes jobs from the pool's queue (idle
//! workers first), sends them to its worker, delivers every item, and
//! isolates the items that kill a worker (`recover.rs`). It is a state
//! machine over its own fields; each step is a method.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::child::missing_functions;
use super::command::WorkerCommand;
use super::link::{Failure, Link, StartError};
use super::{Job, Shared};
use crate::error::{ErrorKind, Item, ItemError};
use crate::job::batch::{deliver_group, mergeable, prepare, Plan, SHORT_FRAME};
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

/// Most function chains remembered per pool.
const RECENT: usize = 256;

/// Frames sent to one worker before the first of them is answered. Off
/// Unix a write that waits cannot read the worker's answer meanwhile
/// (`pipe.rs`): one frame at a time there.
const PIPELINE_DEPTH: usize = if cfg!(unix) { 2 } else { 1 };

/// Most jobs coalesced into one frame.
const MAX_GROUP: usize = 256;

/// Starts a worker (a child process; a fake in tests).
pub(super) type Start<'a, L> = dyn Fn() -> Result<L, StartError> + 'a;

/// One worker slot's proxy and its state.
pub(super) struct Proxy<'a, L: Link> {
    pub(super) slot: usize,
    pub(super) cmd: &'a WorkerCommand,
    pub(super) start: &'a Start<'a, L>,
    pub(super) rx: &'a Receiver<Job>,
    pub(super) sh: &'a Shared,
    /// The worker, once started.
    pub(super) conn: Option<L>,
    /// Jobs taken from the queue but not sent yet.
    pending: VecDeque<Job>,
    /// Groups sent but not answered yet: the next frame is sent before the
    /// previous result is read, so the worker never waits for the host.
    pub(super) inflight: VecDeque<InFlight>,
    /// Items sent to worker `served_by`, for recycling.
    served: u64,
    served_by: Option<u32>,
    /// Whether this proxy is counted in `Shared::idle`.
    counted_idle: bool,
}

impl<'a, L: Link> Proxy<'a, L> {
    /// A proxy for `slot`, starting workers with `start`.
    pub(super) fn new(
        slot: usize,
        cmd: &'a WorkerCommand,
        start: &'a Start<'a, L>,
        rx: &'a Receiver<Job>,
        sh: &'a Shared,
    ) -> Self {
        Proxy {
            slot,
            cmd,
            start,
            rx,
            sh,
            conn: None,
            pending: VecDeque::new(),
            inflight: VecDeque::new(),
            served: 0,
            served_by: None,
            counted_idle: false,
        }
    }

    /// Serves jobs until the queue closes, then shuts its worker down.
    pub(super) fn run(mut self) {
        // A proxy starting its worker counts as idle: it will take a job in a
        // moment, and a busy proxy must not pipeline that job behind its own.
        self.sh.idle.fetch_add(1, Ordering::SeqCst);
        self.counted_idle = true;
        // Start eagerly so the first job does not pay for the start-up (a
        // pool shut down before this thread ran has nothing to warn about).
        if let Err(e) = self.respawn() {
            if !self.sh.stopping.load(Ordering::Acquire) {
                tracing::warn!("{} pool `{}`: {e}", self.sh.kind, self.sh.name);
            }
        }
        while let Some(job) = self.next_job() {
            self.take(job);
        }
        self.settle();
        if let Some(c) = self.conn.take() {
            c.shutdown();
        }
        self.forget_worker();
    }

    /// The next job to send: pending, else from the queue. Results in
    /// flight are read meanwhile, so that a job goes to a busy worker only
    /// when the queue holds one for each idle worker besides, only while
    /// this worker holds less than its share of the work it can see (at
    /// the end of a run the last jobs go to the worker that frees up, not
    /// behind a frame), and only behind frames known to be short (a job
    /// queued behind a long or unknown one could wait for it while another
    /// worker frees up). `None` once the queue is closed.
    fn next_job(&mut self) -> Option<Job> {
        loop {
            if let Some(j) = self.pending.pop_front() {
                return Some(j);
            }
            if self.inflight.is_empty() {
                // Idle: counted until a job is in hand, so that no busy
                // proxy pipelines a job this one could start at once.
                if !self.counted_idle {
                    self.sh.idle.fetch_add(1, Ordering::SeqCst);
                }
                crate::chaos::point("proxy.idle");
                let job = crate::pool::recv_soon(self.rx);
                self.sh.idle.fetch_sub(1, Ordering::SeqCst);
                self.counted_idle = false;
                return job.ok();
            }
            // An idle worker gets a queued job before a busy one pipelines
            // it; jobs beyond one for each idle worker may be pipelined.
            let idle = self.sh.idle.load(Ordering::SeqCst);
            if (idle > 0 && self.rx.len() <= idle) || self.share(0) == 0 || !self.short() {
                self.complete_oldest();
                continue;
            }
            match self.rx.try_recv() {
                Ok(j) => return Some(j),
                Err(TryRecvError::Empty) => self.complete_oldest(),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
    }

    /// Sends `job` (with the queued jobs it may be merged with), or fails
    /// it when the pool gave up or is stopping.
    fn take(&mut self, job: Job) {
        if let Some(e) = lock(&self.sh.given_up).clone() {
            job.fail_all(Failure::NoWorker(e).error(&job));
            return;
        }
        if self.sh.stopping.load(Ordering::Acquire) {
            job.fail_all(ItemError::new(
                ErrorKind::WorkerDied,
                "the pool shut down before this item ran",
            ));
            return;
        }
        self.replace_if_dead();
        let serving = self.pid();
        let mut count = self.recycle_if_due();
        let group = self.coalesce(job, &mut count);
        let group_items = group.iter().map(|j| j.len() as u64).sum();
        self.send_or_run(group);
        // Who got the group: the worker that was serving (then `count`
        // items in all), or a new one (started for it).
        let now = self.pid();
        self.served = if now.is_some() && now == serving {
            count
        } else {
            group_items
        };
        self.served_by = now;
        if self.inflight.len() >= PIPELINE_DEPTH {
            self.complete_oldest();
        }
    }

    /// The worker's process id, if there is one.
    pub(super) fn pid(&self) -> Option<u32> {
        self.conn.as_ref().map(L::pid)
    }

    /// A new task id.
    pub(super) fn next_id(&self) -> u64 {
        self.sh.next_id.fetch_add(1, Ordering::Relaxed) as u64
    }

    /// Starts a worker if there is none (backing off after failed starts,
    /// so a remote host that drops us is not hammered).
    pub(super) fn respawn(&mut self) -> Result<(), StartError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let sh = self.sh;
        if sh.stopping.load(Ordering::Acquire) {
            return Err(String::from("the pool is shutting down").into());
        }
        let deaths = sh.consecutive_deaths.load(Ordering::Relaxed) as u32;
        if deaths > 0 {
            std::thread::sleep(
                Duration::from_millis(25u64 << deaths.min(6)).min(Duration::from_secs(2)),
            );
        }
        let mut c = (self.start)()?;
        // A worker without a function the resource declares will not
        // grow it: the pool gives up at once, naming what is missing.
        let missing = missing_functions(self.cmd.provides(), c.functions());
        if !missing.is_empty() {
            let m = format!(
                "`{}` does not provide {} (the functions its resource declares)",
                self.cmd.line(),
                missing.join(", ")
            );
            c.kill();
            *lock(&sh.given_up) = Some(m.clone().into());
            return Err(m.into());
        }
        lock(&sh.pids).insert(self.slot, c.pid());
        sh.started.fetch_add(1, Ordering::Relaxed);
        self.conn = Some(c);
        Ok(())
    }

    /// This slot has no live worker any more.
    pub(super) fn forget_worker(&self) {
        lock(&self.sh.pids).remove(&self.slot);
    }

    /// A worker that died (killed, out of memory) while it had nothing to
    /// do, or only frames it already answered, is replaced before it is
    /// given a job: its death is no fault of the job's items. The frames
    /// still in flight are settled first (charged if they were lost with
    /// it). It can still die between this check and reading the frame;
    /// that frame is then charged as any other.
    fn replace_if_dead(&mut self) {
        if !self.conn.as_mut().is_some_and(L::exited) {
            return;
        }
        let old = self.pid();
        self.settle();
        if self.pid() != old {
            return;
        }
        if let Some(mut c) = self.conn.take() {
            let how = c.reap();
            tracing::warn!(
                "{} pool `{}`: worker {} exited between jobs ({how}); starting another",
                self.sh.kind,
                self.sh.name,
                self.slot
            );
            self.forget_worker();
        }
    }

    /// Recycling, between batches: a worker that has served its share (or
    /// grown too large) answers what it holds, is shut down, and the next
    /// exchange starts a fresh one. Nothing it was sent is lost. Returns
    /// the items the worker now serving was sent.
    fn recycle_if_due(&mut self) -> u64 {
        let serving = self.pid();
        let count = if serving.is_some() && serving == self.served_by {
            self.served
        } else {
            0
        };
        let Some(why) = serving.and_then(|pid| recycle_reason(self.cmd, count, pid)) else {
            return count;
        };
        self.settle();
        if self.pid() == serving {
            if let Some(c) = self.conn.take() {
                tracing::debug!(
                    "{} pool `{}`: recycling worker {} ({why})",
                    self.sh.kind,
                    self.sh.name,
                    self.slot
                );
                c.shutdown();
                self.forget_worker();
                self.sh.recycled.fetch_add(1, Ordering::Relaxed);
            }
        }
        0
    }

    /// `job` with the queued jobs of its task merged into one frame (small
    /// jobs would otherwise pay a round trip each), at most this worker's
    /// share of the queue ([`share`](Self::share)). Only jobs whose own
    /// task's items are measured fast are merged, and only up to
    /// [`SHORT_FRAME`] of expected work: a
    /// result is never held back by a job queued behind it whose time is
    /// unknown or long (another task's pace is no guide, issue 28).
    /// `count` (items sent to this worker) grows with the group.
    fn coalesce(&mut self, job: Job, count: &mut u64) -> Vec<Job> {
        *count += job.len() as u64;
        let Some(mut expected) = mergeable(&job) else {
            return vec![job];
        };
        let mut group = vec![job];
        let share = self.share(1).min(MAX_GROUP);
        // A recycled worker serves at most its share of items (or one job,
        // when a job alone holds more).
        let room = |served: u64| self.cmd.recycling().after_items.is_none_or(|n| served < n);
        while group.len() < share && room(*count) && expected < SHORT_FRAME {
            match self.rx.try_recv() {
                // Packed jobs travel with packed jobs only.
                Ok(j)
                    if Arc::ptr_eq(&j.task, &group[0].task)
                        && j.packed.is_some() == group[0].packed.is_some() =>
                {
                    *count += j.len() as u64;
                    // Its task's, so measured too.
                    expected += j.expected().unwrap_or(SHORT_FRAME);
                    group.push(j);
                }
                Ok(j) => {
                    self.pending.push_back(j);
                    break;
                }
                Err(_) => break,
            }
        }
        group
    }

    /// How many more jobs this worker may take: its fair share of the jobs
    /// it can see (queued, `in_hand`, and in flight here), less those
    /// already in flight here. A proxy whose worker is
    /// ahead therefore does not take, frame after pipelined frame, the
    /// jobs another worker would have started at once (the CPU-bound bench
    /// sent 16 of 20 jobs to one worker that way).
    fn share(&self, in_hand: usize) -> usize {
        let here: usize = self.inflight.iter().map(|f| f.group.len()).sum();
        let seen = self.rx.len() + self.pending.len() + here + in_hand;
        seen.div_ceil(self.sh.size.max(1)).saturating_sub(here)
    }

    /// Sends a group to the worker and keeps it in flight, or runs it as
    /// one exchange when it has a timeout or needs a worker started (both
    /// are handled per exchange: timeouts are measured there, and starting
    /// counts failed starts and may give up).
    fn send_or_run(&mut self, group: Vec<Job>) {
        if group[0].timeout().is_some() || self.conn.is_none() {
            self.settle();
            self.handle(&group, 0);
            return;
        }
        let (plan, wire) = prepare(&group);
        if plan.sent == 0 {
            let results = plan.assemble(&group, Vec::new());
            deliver_group(&group, results, Duration::ZERO);
            return;
        }
        let id = self.next_id();
        let sent = self
            .conn
            .as_mut()
            .is_some_and(|c| c.send(&group[0], &wire, id, None).is_ok());
        drop(wire);
        if sent {
            let sent = Instant::now();
            self.inflight.push_back(InFlight {
                group,
                plan,
                id,
                sent,
            });
            return;
        }
        // The worker is gone: what it held is charged as usual, then this
        // group (which it never took) runs again on another.
        let old = self.pid();
        self.settle();
        if self.pid() == old {
            self.lose_worker();
        }
        self.handle(&group, 0);
    }

    /// Every group in flight answered (or charged), oldest first.
    pub(super) fn settle(&mut self) {
        while !self.inflight.is_empty() {
            self.complete_oldest();
        }
    }

    /// Every frame in flight is expected to take less than [`SHORT_FRAME`]
    /// (from its task's measured pace; unknown is not short).
    fn short(&self) -> bool {
        self.inflight.iter().all(|f| {
            f.group
                .iter()
                .try_fold(Duration::ZERO, |sum, j| Some(sum + self.expected(j)?))
                .is_some_and(|t| t < SHORT_FRAME)
        })
    }

    /// What `job` should take on a worker: from its task's pace, else from
    /// what its function chain took here lately (`None`: unknown).
    fn expected(&self, job: &Job) -> Option<Duration> {
        job.expected().or_else(|| {
            let name = job.func().worker()?.name();
            let per_item = *lock(&self.sh.recent).get(&name)?;
            Some(job.time_at(per_item))
        })
    }

    /// Delivers a group's results and remembers its time per item.
    pub(super) fn finish_group(&self, group: &[Job], results: Vec<Vec<Item>>, elapsed: Duration) {
        let items: usize = group.iter().map(Job::len).sum();
        if let (Some(worker), Ok(n @ 1..)) = (group[0].func().worker(), u32::try_from(items)) {
            let mut recent = lock(&self.sh.recent);
            if recent.len() >= RECENT {
                recent.clear();
            }
            recent.insert(worker.name(), elapsed / n);
        }
        deliver_group(group, results, elapsed);
    }
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

/// A process's resident memory (Linux: `VmRSS` of `/proc/PID/status`).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
