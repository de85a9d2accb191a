//! The weave: the feeder thread that submits task inputs to the pool.
//!
//! Invariants:
//! - tasks are visited in rounds; a round first visits the *chained* tasks
//!   that have items ready (downstream work before new upstream work, so an
//!   item's latency through a chain is the sum of its own times), then the
//!   *source* tasks; both in task order, starting at the first task the
//!   previous round skipped for want of credit, or where it began when it
//!   skipped none; once a round skips a task, credit freed during the round
//!   is kept for it (PaPy's order when the buffer is full: nobody takes two
//!   turns while another waits); a task gives the tasks chained on it
//!   (`NuMap::add_chained`) no new work until they have submitted every
//!   result it gave (PaPy's weave), so downstream work reaches the pool
//!   first whatever the timing (until a stop);
//! - a visit submits what the buffer allows, up to `stride` items (credits
//!   are per item, see `buffer.rs`), split into jobs of at most
//!   `stride / workers` items (one job per item for tasks with a timeout,
//!   so a timed-out worker holds a single item); with adaptive batching (no
//!   fixed stride) a visit is one job per worker, of the size the task's
//!   pace asks for (`job/pace.rs`) and the items' measured size allows
//!   (`JOB_BYTES`), and the buffer holds up to eight visits per task (two
//!   or four of the largest jobs at most, and `ROOM_BYTES`: `room`) unless
//!   the user fixed it;
//! - *source* tasks (inputs that are plain iterators) are pulled by the
//!   feeder itself; *chained* tasks (inputs that read results of a NuMap)
//!   are pulled by a puller thread per task, which forwards each item as it
//!   arrives into a handoff of at most `LOOKAHEAD` strides, so the feeder
//!   never blocks on a result that itself needs the feeder;
//! - the feeder never blocks on credits: a task that cannot submit is
//!   skipped for this round; when a whole round makes no progress the
//!   feeder watches the doorbell for a moment (`sync::IDLE_SPIN`), then
//!   sleeps on it (rung by readers, pullers and stop);
//! - credits follow the rule in `buffer.rs` (bound, plus one batch for a
//!   starved task: one whose reader waits with nothing outstanding), which with in-order submission guarantees that any item a
//!   reader waits for is in flight or can be submitted: no deadlock;
//! - when stop is requested every source task ends at its next visit;
//!   chained tasks run until their input ends, so every item pulled from
//!   an input is processed;
//! - when a task's input ends, its result queue learns the task's total;
//! - a panicking input iterator becomes one error item and ends that task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::buffer::{Credits, Doorbell};
use super::pending::Pending;
use super::puller::{pull_with, puller, Handoff, Input, LOOKAHEAD};
use super::sizing::{self, approx_bytes, Adaptive};
use crate::job::TaskCtx;
use crate::pool::{Inbox, Job, Pool};

/// A task as the feeder sees it.
pub(crate) struct FeedTask {
    pub(crate) ctx: Arc<TaskCtx>,
    pub(crate) input: Option<Input>,
    pub(crate) chained: bool,
    /// The task of this NuMap whose results are this task's input, one for
    /// one ([`NuMap::add_chained`](super::NuMap::add_chained)).
    pub(crate) upstream: Option<usize>,
    pub(crate) next_index: u64,
    /// Buffer room this task asks for (adaptive batching: [`room`]).
    pub(crate) room: usize,
    /// Items pulled from a source input and not yet submitted (the rest of
    /// a stride the buffer could not take at once).
    pub(crate) pending: Pending,
}

enum Source {
    Inline,
    Puller {
        handoff: Arc<Handoff>,
        thread: Option<JoinHandle<Option<Input>>>,
    },
}

pub(crate) struct Feeder {
    pub(crate) name: String,
    pub(crate) tasks: Vec<FeedTask>,
    pub(crate) pool: Arc<dyn Pool>,
    pub(crate) credits: Arc<Credits>,
    /// Items per visit with a fixed stride (and the initial visit size).
    pub(crate) stride: usize,
    /// `Some` when the job sizes are chosen from measures.
    pub(crate) adaptive: Option<Adaptive>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stall: Duration,
}

/// What a visit did.
#[derive(Clone, Copy, PartialEq)]
enum Visit {
    /// The task's input ended (its total is now known).
    Ended,
    /// Items were submitted.
    Submitted,
    /// Items are waiting but the buffer has no room for them.
    NoCredit,
    /// Nothing to do (a chained task with nothing ready).
    Nothing,
}

/// What the feeder keeps from one round to the next.
struct Rounds {
    ended: Vec<bool>,
    /// For each task, the tasks of this NuMap chained on its results.
    downstream: Vec<Vec<usize>>,
    /// Where the next round starts: the first task the last round skipped.
    start: usize,
}

impl Rounds {
    /// Whether task `t` waits for the tasks chained on it: it gives them
    /// new work only once they have submitted every result it gave (PaPy's
    /// weave: a stride of `t`, then a stride of its downstream task). So
    /// downstream work reaches the pool before new upstream work whatever
    /// the timing, and a chain's items go through it one stride at a time.
    fn holds_back(&self, tasks: &[FeedTask], t: usize) -> bool {
        self.downstream[t]
            .iter()
            .any(|&d| !self.ended[d] && tasks[d].next_index < tasks[t].next_index)
    }
}

/// For each task, the tasks chained on its results ([`FeedTask::upstream`]).
fn downstream(tasks: &[FeedTask]) -> Vec<Vec<usize>> {
    let mut down = vec![Vec::new(); tasks.len()];
    for (d, task) in tasks.iter().enumerate() {
        if let Some(u) = task.upstream.filter(|&u| u < tasks.len()) {
            down[u].push(d);
        }
    }
    down
}

impl Feeder {
    /// Runs until every task has ended or the buffer is closed; returns the
    /// tasks (with their unfinished inputs) for a later restart.
    pub(crate) fn run(mut self) -> Vec<FeedTask> {
        let bell = self.credits.bell.clone();
        let sources = self.start_pullers(&bell);
        let mut rounds = Rounds {
            ended: vec![false; self.tasks.len()],
            downstream: downstream(&self.tasks),
            start: 0,
        };
        // Since when no round made progress (the clock is read only then:
        // at stride 1 a round per item).
        let mut idle_since: Option<Instant> = None;
        let mut warned = false;
        loop {
            let seen = bell.seen();
            let Some(progressed) = self.round(&sources, &mut rounds) else {
                break;
            };
            if self.credits.is_closed() {
                break;
            }
            if progressed {
                idle_since = None;
                warned = false;
            } else {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if !warned && since.elapsed() >= self.stall {
                    warned = true;
                    self.report_stall();
                }
                // A ring within the short look needs no sleep (see `sync.rs`).
                if crate::sync::spin_for(|| bell.rung_since(seen).then_some(())).is_none() {
                    bell.wait(seen, Duration::from_millis(200));
                }
            }
        }
        self.collect_pullers(sources);
        self.tasks
    }

    /// Starts a puller thread per chained task.
    fn start_pullers(&mut self, bell: &Arc<Doorbell>) -> Vec<Source> {
        let mut sources: Vec<Source> = Vec::with_capacity(self.tasks.len());
        for t in &mut self.tasks {
            if !t.chained {
                sources.push(Source::Inline);
                continue;
            }
            let handoff = Arc::new(Handoff::default());
            handoff.lock().cap = self.stride * LOOKAHEAD;
            let thread = t.input.take().and_then(|input| {
                let (h, b) = (handoff.clone(), bell.clone());
                let (ctx, first) = (t.ctx.clone(), t.next_index);
                std::thread::Builder::new()
                    .name(format!("{}-pull{}", self.name, t.ctx.id))
                    .spawn(move || puller(input, &h, &b, &ctx, first))
                    .map_err(|e| tracing::error!("NuMap: cannot start a puller thread: {e}"))
                    .ok()
            });
            if thread.is_none() {
                handoff.lock().ended = true;
            }
            sources.push(Source::Puller { handoff, thread });
        }
        sources
    }

    /// One round: the chained tasks with items ready, then the sources (see
    /// the module's invariants). `None` when no task is left; else whether
    /// anything moved.
    fn round(&mut self, sources: &[Source], r: &mut Rounds) -> Option<bool> {
        let n = self.tasks.len();
        let (mut active, mut progressed) = (false, false);
        let mut skipped: Option<usize> = None;
        let stopping = self.stop.load(Ordering::Acquire);
        for chained_pass in [true, false] {
            for k in 0..n {
                let t = (r.start + k) % n;
                if r.ended[t] || self.tasks[t].chained != chained_pass {
                    continue;
                }
                active = true;
                crate::chaos::point("feeder.visit");
                // Once a task of this round found no credit, credit freed
                // meanwhile is its own: the tasks after it wait their turn
                // (unless starved, see `buffer.rs`).
                let reserved = skipped.is_some();
                let visit = match &sources[t] {
                    _ if !stopping && r.holds_back(&self.tasks, t) => Visit::Nothing,
                    Source::Inline => self.visit_inline(t, reserved),
                    Source::Puller { handoff, .. } => self.visit_handoff(t, handoff, reserved),
                };
                match visit {
                    Visit::Ended => {
                        r.ended[t] = true;
                        let task = &self.tasks[t];
                        task.ctx.queue.set_total(task.next_index);
                        progressed = true;
                    }
                    Visit::Submitted => progressed = true,
                    Visit::NoCredit => {
                        skipped.get_or_insert(t);
                    }
                    Visit::Nothing => {}
                }
            }
        }
        // A round that skipped nobody was a whole cycle: the next goes on
        // from where it began.
        r.start = skipped.unwrap_or(r.start);
        active.then_some(progressed)
    }

    /// Collects the pullers (they have ended, or the NuMap is closing):
    /// their inputs go back to their tasks.
    fn collect_pullers(&mut self, sources: Vec<Source>) {
        for (t, s) in sources.into_iter().enumerate() {
            let Source::Puller { handoff, thread } = s else {
                continue;
            };
            handoff.lock().closed = true;
            handoff.notify_all();
            let Some(h) = thread else { continue };
            let deadline = Instant::now() + Duration::from_secs(2);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.is_finished() {
                self.tasks[t].input = h.join().ok().flatten();
            } else {
                tracing::warn!(
                    "NuMap `{}`: the input of task {t} is blocked; its thread is left behind",
                    self.name
                );
            }
        }
    }

    /// Credits for `want` items of task `t`: what the buffer allows, or a
    /// batch over the bound for a starved task; none when the credit is
    /// `reserved` for a task skipped earlier in the round.
    fn grant(&self, t: usize, want: usize, reserved: bool) -> usize {
        // Whether the task is starved (a reader waits for it and nothing of
        // it is outstanding, see the exception in `buffer.rs`) matters only
        // when the bound cuts its batch (asked outside the credit lock:
        // readers take the queue lock and then the credit lock).
        let task = &self.tasks[t];
        let starved =
            (reserved || self.credits.free() < want) && task.ctx.queue.starved(task.next_index);
        if reserved && !starved {
            return 0;
        }
        self.credits.acquire_up_to(want, starved)
    }

    /// A source task's visit. The input is pulled a whole stride (visit)
    /// at a time, so a stop ends it at a stride boundary (PaPy's); what
    /// the buffer cannot take yet waits in `pending`, and is submitted, as
    /// credits allow, before the task ends or pulls again.
    fn visit_inline(&mut self, t: usize, reserved: bool) -> Visit {
        if self.credits.abandon.load(Ordering::Acquire) && !self.tasks[t].pending.is_empty() {
            // A stop that takes nothing more: the rest of the stride is
            // never submitted (its indices were never given out).
            self.tasks[t].pending.clear();
            self.store_held();
        }
        let task = &self.tasks[t];
        // Stopping keeps the input, so a restart resumes where it stopped.
        if task.pending.is_empty() && (task.input.is_none() || self.stop.load(Ordering::Acquire)) {
            return Visit::Ended;
        }
        let (visit, job_size) = self.sizes(t);
        let granted = self.grant(t, visit, reserved);
        if granted == 0 {
            return Visit::NoCredit;
        }
        let stopping = self.stop.load(Ordering::Acquire);
        let task = &mut self.tasks[t];
        // The rest of the last stride first, then a new stride when there
        // is room left. The whole stride is pulled now (a stop ends the
        // input at a stride boundary), cut into jobs as it is pulled;
        // what the grant does not cover waits in `pending`.
        if task.pending.len() < granted && !stopping {
            if let Some(input) = task.input.as_mut() {
                let ctx = &task.ctx;
                let ended = task
                    .pending
                    .pull(visit, job_size, task.next_index, |job, n, first| {
                        pull_with(job, ctx, first, |b| input.fill(b, n))
                    });
                if ended {
                    task.input = None;
                }
            }
        }
        let mut jobs = task.pending.take(granted, job_size);
        let taken: usize = jobs.iter().map(Vec::len).sum();
        if task.input.is_none() {
            // The input ended: what it gave is shared among the workers,
            // whatever the job size (5 slow items of a stride of 10 on 2
            // workers went as one job to one worker).
            jobs = share(jobs, self.pool.size(), taken);
        }
        self.credits.release(granted - taken);
        self.store_held();
        self.submit_jobs(t, jobs);
        let task = &self.tasks[t];
        match (task.input.is_none() && task.pending.is_empty(), taken > 0) {
            (true, _) => Visit::Ended,
            (false, true) => Visit::Submitted,
            (false, false) => Visit::Nothing,
        }
    }

    /// Publishes how many pulled items wait for credit ([`Credits::held`]).
    fn store_held(&self) {
        let held = self.tasks.iter().map(|t| t.pending.len()).sum();
        self.credits.held.store(held, Ordering::Relaxed);
    }

    fn visit_handoff(&mut self, t: usize, handoff: &Handoff, reserved: bool) -> Visit {
        let (visit, job_size) = self.sizes(t);
        let mut st = handoff.lock();
        let cap = visit.saturating_mul(LOOKAHEAD);
        if st.cap != cap {
            st.cap = cap;
            handoff.notify_all();
        }
        if st.items.is_empty() {
            return if st.ended {
                Visit::Ended
            } else {
                Visit::Nothing
            };
        }
        let want = st.items.len().min(visit);
        let granted = self.grant(t, want, reserved);
        if granted == 0 {
            return Visit::NoCredit;
        }
        // Jobs cut straight from the handoff.
        let jobs: Vec<Vec<Inbox>> = (0..granted)
            .step_by(job_size)
            .map(|at| st.items.drain(..job_size.min(granted - at)).collect())
            .collect();
        let done = st.ended && st.items.is_empty();
        drop(st);
        handoff.notify_all();
        self.submit_jobs(t, jobs);
        if done {
            Visit::Ended
        } else {
            Visit::Submitted
        }
    }

    fn report_stall(&self) {
        let waiting: Vec<String> = self
            .tasks
            .iter()
            .filter_map(|t| {
                let w = t.ctx.queue.waiting();
                (w > 0).then(|| {
                    format!(
                        "task {} `{}` holds {w} unread result(s)",
                        t.ctx.id,
                        t.ctx.func.name()
                    )
                })
            })
            .collect();
        if waiting.is_empty() {
            tracing::warn!(
                "NuMap `{}`: {} item(s) in flight and none finished for {:?}: slow items or a stuck worker (a `timeout` on the node bounds each item)",
                self.name,
                self.credits.in_use(),
                self.stall,
            );
        } else {
            tracing::warn!(
                "NuMap `{}`: its buffer ({} of {} slots) has been full for {:?}: {}. A program that reads this NuMap's results itself must read every task's (a Plumber does)",
                self.name,
                self.credits.in_use(),
                self.credits.size(),
                self.stall,
                waiting.join("; ")
            );
        }
    }

    /// Items per visit and per job for task `t` (see `sizing.rs`); one
    /// item per job for a task with a timeout (a timed-out worker then
    /// holds a single item). With adaptive batching the buffer follows the
    /// room the tasks ask for.
    fn sizes(&mut self, t: usize) -> (usize, usize) {
        let (visit, chunk) = match &self.adaptive {
            None => sizing::fixed(self.stride, &*self.pool, self.credits.size()),
            Some(a) => {
                let (visit, chunk, room) =
                    sizing::adaptive(a, &self.tasks[t].ctx.pace, &*self.pool);
                if let Some(room) = room.filter(|&r| r != self.tasks[t].room) {
                    self.tasks[t].room = room;
                    let total: usize = self.tasks.iter().map(|x| x.room).sum();
                    self.credits.set_size(total.max(self.stride));
                }
                (visit, chunk)
            }
        };
        let timed = self.tasks[t].ctx.timeout.is_some();
        (visit, if timed { 1 } else { chunk })
    }

    /// Submits jobs of consecutive items of task `t`, in order. With
    /// adaptive batching each job's first item is measured for the task's
    /// bytes per item (`JOB_BYTES`, `ROOM_BYTES`).
    fn submit_jobs(&mut self, t: usize, jobs: Vec<Vec<Inbox>>) {
        if jobs.is_empty() {
            return;
        }
        crate::chaos::point("feeder.submit");
        let task = &mut self.tasks[t];
        for inboxes in jobs {
            if let (Some(first), Some(_)) = (inboxes.first(), &self.adaptive) {
                task.ctx.pace.record_bytes(approx_bytes(first));
            }
            let first = task.next_index;
            task.next_index += inboxes.len() as u64;
            self.pool.submit(Job::new(task.ctx.clone(), first, inboxes));
        }
    }
}

/// `jobs` (of `items` items in all, in order) cut again into as many jobs
/// as there are `workers` when they were fewer, of near-equal sizes, the
/// items in the same order; unchanged otherwise.
fn share(jobs: Vec<Vec<Inbox>>, workers: usize, items: usize) -> Vec<Vec<Inbox>> {
    let k = workers.min(items);
    if jobs.len() >= k || k < 2 {
        return jobs;
    }
    let size = items.div_ceil(k);
    let mut out: Vec<Vec<Inbox>> = Vec::with_capacity(k);
    for item in jobs.into_iter().flatten() {
        match out.last_mut() {
            Some(job) if job.len() < size => job.push(item),
            _ => {
                let mut job = Vec::with_capacity(size);
                job.push(item);
                out.push(job);
            }
        }
    }
    out
}
