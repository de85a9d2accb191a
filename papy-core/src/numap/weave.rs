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
//!   turns while another waits);
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::buffer::{Credits, Doorbell};
use crate::error::{ErrorKind, ItemError};
use crate::job::{TaskCtx, MAX_CHUNK};
use crate::pool::{Inbox, Job, Pool};

/// A task's input as the feeder pulls it: a job at a time, so there is
/// one dynamic call per job (per item for a task with a timeout, whose
/// jobs hold one item) and the loop over the items is compiled for the
/// input's own iterator type (a range of integers is a tight loop).
pub(crate) trait Pull: Send {
    /// Appends up to `n` inboxes to `out`; returns `true` when the input ended.
    fn fill(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool;

    /// Appends one inbox (waiting for it if need be), then those of the
    /// next ones that are already in hand, up to `n` in all; returns `true`
    /// when the input ended. "In hand" is the lower bound of the iterator's
    /// `size_hint`: the result readers and node adapters report the results
    /// they hold, so a chained task forwards what has arrived at once and
    /// never waits for more than one item.
    fn fill_ready(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool;
}

impl<I: Iterator<Item = Inbox> + Send> Pull for I {
    fn fill(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool {
        let before = out.len();
        out.extend(self.by_ref().take(n));
        out.len() - before < n
    }

    fn fill_ready(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        match self.next() {
            None => return true,
            Some(first) => out.push(first),
        }
        let ready = self.size_hint().0.min(n - 1);
        // Taking only what is in hand never waits; an iterator whose hint
        // was wrong ends the input early, which `fill` would too.
        self.fill(out, ready)
    }
}

/// A task's input stream.
pub(crate) type Input = Box<dyn Pull>;

/// A task as the feeder sees it.
pub(crate) struct FeedTask {
    pub(crate) ctx: Arc<TaskCtx>,
    pub(crate) input: Option<Input>,
    pub(crate) chained: bool,
    pub(crate) next_index: u64,
    /// Buffer room this task asks for (adaptive batching: [`room`]).
    pub(crate) room: usize,
    /// Items pulled from a source input and not yet submitted (the rest of
    /// a stride the buffer could not take at once).
    pub(crate) pending: VecDeque<Inbox>,
}

/// Adaptive batching (no fixed stride): each task's job size follows its
/// pace (see `job/pace.rs`); a visit is one job per worker.
pub(crate) struct Adaptive {
    /// How long a job should take in this pool.
    pub(crate) target: Duration,
    pub(crate) workers: usize,
    /// The buffer the user fixed; `None`: [`room`] per task.
    pub(crate) buffer: Option<usize>,
}

use crate::sync::Monitor;

#[derive(Default)]
struct HandoffState {
    /// Items pulled and not yet submitted, in input order.
    items: VecDeque<Inbox>,
    /// Most items held (`LOOKAHEAD` visits; the feeder keeps it current).
    cap: usize,
    ended: bool,
    closed: bool,
}

/// Items pulled by a puller thread, waiting for the feeder (the monitor
/// is notified when the feeder makes space or closes it).
type Handoff = Monitor<HandoffState>;

/// Visits of buffer room per task with adaptive batching: enough that
/// every worker has its next job queued while its results are read. Pools
/// that pay a round trip per job (`Pool::whole_strides`) keep twice as
/// many in flight; on threads more room only spreads the working set
/// (`cargo bench --bench defaults`, 50 ns items: 2 visits 1.06x the best
/// fixed stride on threads and 1.22x on processes, 4 visits 1.23x and
/// 1.01x).
fn room_visits(pool: &dyn Pool) -> usize {
    if pool.whole_strides() {
        4
    } else {
        2
    }
}

/// Most bytes of input in one adaptive job (estimated, see [`approx_bytes`]):
/// large items get smaller jobs, whatever their pace.
const JOB_BYTES: usize = 8 << 20;

/// Most bytes of input a task's adaptive buffer room holds beyond the two
/// (four) visits it always has: cheap large items cannot fill memory.
const ROOM_BYTES: usize = 64 << 20;

/// Roughly how many bytes an inbox holds: its values' own sizes, with a
/// list or map estimated from its first entry (looked at 4 levels deep at
/// most), so the cost does not grow with the item.
pub(crate) fn approx_bytes(inbox: &Inbox) -> usize {
    fn value(v: &crate::value::Value, depth: u32) -> usize {
        use crate::value::Value;
        let own = std::mem::size_of::<Value>();
        let nested = |n: usize, first: Option<usize>| n.saturating_mul(first.unwrap_or(own));
        own.saturating_add(match v {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(l) if depth > 0 => nested(l.len(), l.first().map(|x| value(x, depth - 1))),
            Value::Map(m) if depth > 0 => nested(
                m.len(),
                m.iter()
                    .next()
                    .map(|(k, x)| value(k, depth - 1).saturating_add(value(x, depth - 1))),
            ),
            Value::List(l) => l.len().saturating_mul(own),
            Value::Map(m) => m.len().saturating_mul(2 * own),
            _ => 0,
        })
    }
    inbox
        .as_slice()
        .iter()
        .map(|item| match item {
            Ok(v) => value(v, 4),
            Err(_) => 64,
        })
        .fold(0usize, usize::saturating_add)
}

/// Visits of buffer room a task with small jobs may have (see [`room`]).
const DEEP_VISITS: usize = 8;

/// Buffer room of a task whose visits hold `visit` items, `workers` jobs, in
/// a pool of `base` [`room_visits`]: [`DEEP_VISITS`] visits, but never more items than `base` visits
/// of the largest jobs ([`MAX_CHUNK`] items each), nor fewer than `base`
/// visits. Small jobs (slow items) thus get a deeper buffer,
/// so that a worker finishing a job finds the next one queued even when
/// the reader or the feeder is late to run (a thread woken from sleep can
/// take tens of microseconds to run; with two visits of 500 us items, a
/// run of `cargo bench --bench defaults` took 1.48x the best fixed stride),
/// while the buffer never holds more items than the fastest items had.
fn room(base: usize, visit: usize, workers: usize) -> usize {
    let most = base * MAX_CHUNK * workers.max(1);
    (DEEP_VISITS * visit).min(most).max(base * visit)
}

/// Strides of items a puller may hold ahead of the feeder.
const LOOKAHEAD: usize = 2;

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

impl Feeder {
    /// Runs until every task has ended or the buffer is closed; returns the
    /// tasks (with their unfinished inputs) for a later restart.
    pub(crate) fn run(mut self) -> Vec<FeedTask> {
        let bell = self.credits.bell.clone();
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
        let n = self.tasks.len();
        let mut ended = vec![false; n];
        let mut last_progress = Instant::now();
        let mut warned = false;
        // Where the next round starts: the first task the last round skipped.
        let mut start = 0;
        loop {
            let seen = bell.seen();
            let mut active = false;
            let mut progressed = false;
            let mut skipped: Option<usize> = None;
            // Ready downstream work first, then new work from the sources.
            for chained_pass in [true, false] {
                for k in 0..n {
                    let t = (start + k) % n;
                    if ended[t] || self.tasks[t].chained != chained_pass {
                        continue;
                    }
                    active = true;
                    crate::chaos::point("feeder.visit");
                    // Once a task of this round found no credit, credit freed
                    // meanwhile is its own: the tasks after it wait their
                    // turn (unless starved, see `buffer.rs`).
                    let reserved = skipped.is_some();
                    let visit = match &sources[t] {
                        Source::Inline => self.visit_inline(t, reserved),
                        Source::Puller { handoff, .. } => self.visit_handoff(t, handoff, reserved),
                    };
                    match visit {
                        Visit::Ended => {
                            ended[t] = true;
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
            start = skipped.unwrap_or(start);
            if !active || self.credits.is_closed() {
                break;
            }
            if progressed {
                last_progress = Instant::now();
                warned = false;
            } else {
                if !warned && last_progress.elapsed() >= self.stall {
                    warned = true;
                    self.report_stall();
                }
                // A ring within the short look needs no sleep (see `sync.rs`).
                if crate::sync::spin_for(|| bell.rung_since(seen).then_some(())).is_none() {
                    bell.wait(seen, Duration::from_millis(200));
                }
            }
        }
        // Collect the pullers (they have ended, or the NuMap is closing).
        for (t, s) in sources.into_iter().enumerate() {
            if let Source::Puller { handoff, thread } = s {
                handoff.lock().closed = true;
                handoff.notify_all();
                if let Some(h) = thread {
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
        }
        self.tasks
    }

    /// A reader waits for task `t` and nothing of it is outstanding (see
    /// the exception in `buffer.rs`).
    fn starved(&self, t: usize) -> bool {
        let task = &self.tasks[t];
        task.ctx.queue.starved(task.next_index)
    }

    /// Credits for `want` items of task `t`: what the buffer allows, or a
    /// batch over the bound for a starved task; none when the credit is
    /// `reserved` for a task skipped earlier in the round.
    fn grant(&self, t: usize, want: usize, reserved: bool) -> usize {
        // Whether the task is starved matters only when the bound cuts its
        // batch (asked outside the credit lock: readers take the queue lock
        // and then the credit lock).
        let starved = (reserved || self.credits.free() < want) && self.starved(t);
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
            let held = self.tasks.iter().map(|t| t.pending.len()).sum();
            self.credits.held.store(held, Ordering::Relaxed);
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
        // is room left (so jobs keep their full size: a short grant does
        // not split every later stride in two). Jobs are cut as they are
        // filled: an item moves once from the input (or from `pending`)
        // into its job, and the part of a new stride the grant does not
        // cover once into `pending`.
        let mut from_pending = granted.min(task.pending.len());
        let pull_new = from_pending < granted && task.input.is_some() && !stopping;
        let mut room = if pull_new { granted - from_pending } else { 0 };
        let pulled_room = room;
        let mut jobs: Vec<Vec<Inbox>> = Vec::new();
        let mut taken = 0;
        while from_pending > 0 || (room > 0 && task.input.is_some()) {
            let mut job = Vec::with_capacity(job_size.min(from_pending + room));
            let k = from_pending.min(job_size);
            job.extend(task.pending.drain(..k));
            from_pending -= k;
            if job.len() < job_size && from_pending == 0 && room > 0 {
                let (want, before) = ((job_size - job.len()).min(room), job.len());
                let first = task.next_index + taken as u64;
                pull_append(task, &mut job, want, first);
                room = room.saturating_sub(job.len() - before);
            }
            if job.is_empty() {
                break;
            }
            taken += job.len();
            jobs.push(job);
        }
        if pull_new && task.input.is_some() {
            // The whole stride is pulled now (a stop ends the input at a
            // stride boundary); what the grant did not cover waits.
            let surplus = visit.saturating_sub(pulled_room - room);
            if surplus > 0 {
                let mut rest = Vec::with_capacity(surplus);
                let first = task.next_index + taken as u64;
                pull_append(task, &mut rest, surplus, first);
                task.pending = rest.into();
            }
        }
        if task.input.is_none() {
            // The input ended in this visit: what it gave is shared among
            // the workers, whatever the job size (5 slow items of a
            // stride of 10 on 2 workers went as one job to one worker).
            jobs = share(jobs, self.pool.size(), taken);
        }
        self.credits.release(granted - taken);
        let moved = taken > 0;
        let held = self.tasks.iter().map(|t| t.pending.len()).sum();
        self.credits.held.store(held, Ordering::Relaxed);
        self.submit_jobs(t, jobs);
        let task = &self.tasks[t];
        match (task.input.is_none() && task.pending.is_empty(), moved) {
            (true, _) => Visit::Ended,
            (false, true) => Visit::Submitted,
            (false, false) => Visit::Nothing,
        }
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
        let mut jobs = Vec::with_capacity(granted.div_ceil(job_size));
        let mut left = granted;
        while left > 0 {
            let k = left.min(job_size);
            jobs.push(st.items.drain(..k).collect::<Vec<Inbox>>());
            left -= k;
        }
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

    /// Items per visit and per job for task `t`: the fixed stride and its
    /// share per worker, or what the task's pace asks for (adaptive); one
    /// item per job for a task with a timeout (a timed-out worker then
    /// holds a single item).
    fn sizes(&mut self, t: usize) -> (usize, usize) {
        let (visit, chunk) = self.visit_sizes(t);
        let job = if self.tasks[t].ctx.timeout.is_some() {
            1
        } else {
            chunk
        };
        (visit, job)
    }

    fn visit_sizes(&mut self, t: usize) -> (usize, usize) {
        let Some(a) = &self.adaptive else {
            // Jobs of a stride's share per worker, so that one task with the
            // default stride (= workers) keeps every worker busy, as in PaPy
            // (the share comes from the stride, not from a batch, so batches
            // freed a few items at a time do not shrink the jobs further).
            // For workers that pay a round trip per batch, a buffer that
            // holds a stride per worker keeps them busy with whole strides,
            // in fewer and larger jobs.
            let workers = self.pool.size().max(1);
            let chunk = if self.pool.whole_strides() && self.credits.size() >= self.stride * workers
            {
                self.stride
            } else {
                self.stride.div_ceil(workers)
            };
            return (self.stride, chunk.max(1));
        };
        // A fixed buffer must hold two visits; else the buffer follows.
        let pace = &self.tasks[t].ctx.pace;
        let most = a.buffer.map_or(MAX_CHUNK, |b| (b / (2 * a.workers)).max(1));
        let chunk = pace.chunk(a.target, most.min(pace.items_within(JOB_BYTES)));
        let visit = chunk * a.workers;
        if a.buffer.is_none() {
            let base = room_visits(&*self.pool);
            let room = room(base, visit, a.workers)
                .min(pace.items_within(ROOM_BYTES))
                .max(base * visit);
            if self.tasks[t].room != room {
                self.tasks[t].room = room;
                let total: usize = self.tasks.iter().map(|x| x.room).sum();
                self.credits.set_size(total.max(self.stride));
            }
        }
        (visit, chunk)
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

/// A puller thread: pulls a chained task's input ahead of the feeder and
/// forwards each item as it arrives (at most `cap` items held). Returns the
/// input for a restart.
fn puller(
    mut input: Input,
    handoff: &Handoff,
    bell: &Doorbell,
    ctx: &TaskCtx,
    mut next_index: u64,
) -> Option<Input> {
    let mut one = Vec::new();
    loop {
        let room = {
            let mut st = handoff.lock();
            while st.items.len() >= st.cap && !st.closed {
                st = handoff.wait(st);
            }
            if st.closed {
                return Some(input);
            }
            st.cap - st.items.len()
        };
        // What has arrived, and never more than one item that has not: the
        // first downstream item never waits for the slowest upstream item
        // of its stride.
        let exhausted = pull_ready(&mut input, &mut one, room, ctx, next_index);
        next_index += one.len() as u64;
        crate::chaos::point("puller.handoff");
        let mut st = handoff.lock();
        let was_empty = st.items.is_empty();
        st.items.extend(one.drain(..));
        if exhausted {
            st.ended = true;
        }
        let wake = was_empty || exhausted;
        drop(st);
        // The feeder needs a ring only when it may have seen nothing to do;
        // items added behind others are taken with them.
        if wake {
            bell.ring();
        }
        if exhausted {
            // Kept: a chained input ends when its upstream stops, and goes on
            // with the upstream's new results after a restart.
            return Some(input);
        }
    }
}

/// Appends up to `n` inboxes of `task`'s input to `out`, whose first inbox
/// is item `first`; an input that ends is dropped (`task.input` becomes
/// `None`).
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

fn pull_append(task: &mut FeedTask, out: &mut Vec<Inbox>, n: usize, first: u64) {
    let Some(input) = task.input.as_mut() else {
        return;
    };
    if pull_with(out, &task.ctx, first, |b| input.fill(b, n)) {
        task.input = None;
    }
}

/// As [`pull_append`], taking what is in hand (see [`Pull::fill_ready`]).
fn pull_ready(
    input: &mut Input,
    batch: &mut Vec<Inbox>,
    most: usize,
    ctx: &TaskCtx,
    first: u64,
) -> bool {
    pull_with(batch, ctx, first, |b| input.fill_ready(b, most))
}

/// Runs a pull; a panicking input becomes one error item and ends it.
fn pull_with(
    batch: &mut Vec<Inbox>,
    ctx: &TaskCtx,
    first: u64,
    f: impl FnOnce(&mut Vec<Inbox>) -> bool,
) -> bool {
    let r = crate::catch(|| f(&mut *batch));
    match r {
        Ok(exhausted) => exhausted,
        Err(msg) => {
            let index = first + batch.len() as u64;
            let err = ItemError::new(ErrorKind::Input, format!("input iterator panicked: {msg}"))
                .at(ctx.func.name(), index);
            batch.push(Inbox::One(Err(err)));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{room, DEEP_VISITS, MAX_CHUNK};

    #[test]
    fn small_jobs_get_a_deeper_buffer_never_larger_than_the_largest_jobs_had() {
        // Threads (2 visits of room at least), 2 workers.
        let most = 2 * MAX_CHUNK * 2;
        // 500 us items: jobs of 2, visits of 4 items: eight visits.
        assert_eq!(room(2, 4, 2), DEEP_VISITS * 4);
        // 1 us items: jobs of 1000: eight visits, under the cap.
        assert_eq!(room(2, 2000, 2), 16_000);
        // The fastest items (jobs of MAX_CHUNK): two visits, as before.
        assert_eq!(room(2, MAX_CHUNK * 2, 2), most);
        assert!(room(2, 3000, 2) <= most);
        // Pools with a round trip per job keep four visits at least.
        assert_eq!(room(4, MAX_CHUNK * 2, 2), 4 * MAX_CHUNK * 2);
        assert_eq!(room(4, 2, 2), DEEP_VISITS * 2);
    }
}
