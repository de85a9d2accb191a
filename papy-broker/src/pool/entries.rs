//! Task entries: a group of consecutive jobs of one task becomes one sealed
//! `Task` frame on the stream (through papy-core's batch codec, as for a
//! process worker), and the entry's result, failure or timeout comes back
//! as per-item results of its jobs.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use papy_core::batch::{self, deliver_group, Plan, SHORT_FRAME};
use papy_core::pool::Job;
use papy_core::protocol::serve::chain_of;
use papy_core::protocol::{write_frame_with, MAX_FRAME};
use papy_core::sync::lock;
use papy_core::{ErrorKind, Item, ItemError};

use super::distance::Distance;
use super::Shared;
use crate::seal::Role;

/// An entry on the stream, in flight: consecutive jobs of one task.
pub(super) struct InFlight {
    /// Its jobs.
    pub(super) group: Vec<Job>,
    /// What was sent of them (`sent`: how many items).
    pub(super) plan: Plan,
    at: Instant,
    pub(super) deadline: Option<Instant>,
    /// The entry's sealed `Task` frame, to append it again after a
    /// reconnection (the broker may have lost it).
    pub(super) payload: Vec<u8>,
}

impl InFlight {
    /// Every item sent fails with `error` (the chain the worker was running
    /// is to blame, not the node).
    pub(super) fn fail(self, error: &ItemError) {
        let error = match self.group[0].func().worker() {
            Some(w) => error.clone().with_function(w.name()),
            None => error.clone(),
        };
        let results = self.plan.charge(&self.group, &error);
        deliver_group(&self.group, results, self.at.elapsed());
    }

    /// Delivers the entry's results (`items`: one per item sent, in order),
    /// accounting `busy`, the time the worker says it spent on them, at
    /// most the round trip (its own claim is not trusted further; without
    /// one, the round trip): from far away, the round trip is mostly
    /// distance, and counting it as the items' time would keep adaptive
    /// jobs at one item. A reported busy time is recorded in `distance`,
    /// with the round trip, the items and the entry's size.
    pub(super) fn succeed(self, items: Vec<Item>, busy: Option<Duration>, distance: &Distance) {
        let round_trip = self.at.elapsed();
        if let Some(b) = busy {
            distance.record(round_trip, b, self.plan.sent, self.payload.len());
        }
        let results = self.plan.assemble(&self.group, items);
        deliver_group(
            &self.group,
            results,
            busy.map_or(round_trip, |b| b.min(round_trip)),
        );
    }
}

/// Turns a group of consecutive jobs of one task into a sealed task entry
/// (kept in flight under its id), or delivers them at once when no item has
/// to leave the host (items whose inbox holds an error pass it on here,
/// without a round trip).
pub(super) fn prepare(sh: &Shared, group: Vec<Job>) -> Option<(u64, Vec<u8>)> {
    let Some(worker) = group.first().and_then(|j| j.func().worker()) else {
        for job in group {
            job.fail_all(ItemError::new(
                ErrorKind::Function,
                "internal: a task without a Worker reached a broker pool",
            ));
        }
        return None;
    };
    let (chain, node) = (chain_of(worker), group[0].func().name());
    let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
    let (plan, wire) = batch::prepare(&group);
    let mut bytes = Vec::new();
    let frame = wire.frame(id, &chain, &node);
    // The frame is built in `bytes` (its length prefix included).
    let encoded = (plan.sent > 0)
        .then(|| write_frame_with(&mut std::io::sink(), &mut bytes, &frame).map(|()| bytes));
    let at = Instant::now();
    let mut f = InFlight {
        deadline: group[0].timeout().map(|t| at + t),
        group,
        plan,
        at,
        payload: Vec::new(),
    };
    let conversion = |m: String| ItemError::new(ErrorKind::Conversion, m);
    match encoded {
        None => f.succeed(Vec::new(), None, &sh.distance),
        Some(Ok(bytes)) if bytes.len() > MAX_FRAME => f.fail(&conversion(format!(
            "the batch is {} bytes, more than a frame may hold ({MAX_FRAME}); use a smaller stride",
            bytes.len()
        ))),
        Some(Ok(bytes)) => {
            let bytes = sh.sealer.seal(Role::Task, &sh.settings.session, bytes);
            f.payload.clone_from(&bytes);
            lock(&sh.in_flight).insert(id, f);
            return Some((id, bytes));
        }
        Some(Err(e)) => f.fail(&conversion(e.to_string())),
    }
    None
}

/// Of a task not measured yet, jobs go one per entry ([`groups`]); so
/// that a distant broker is not handed a whole queue of one-item entries
/// before the first of them comes back (each costs a worker its round trips
/// to the broker), at most `workers` of them are in flight at a time. The
/// first goes alone, [`HEAD_START`] ahead of the others: its worker does not
/// share the cores with every other worker starting at once (with 32
/// workers on 2 cores the first result waited behind them). The rest are held
/// back (returned second) until their task is measured; then they are
/// merged as usual.
pub(super) fn hold_back(sh: &Shared, queue: Vec<Job>, workers: usize) -> (Vec<Job>, Vec<Job>) {
    if queue.iter().all(|j| batch::expected(j).is_some()) {
        return (queue, Vec::new());
    }
    let (mut ready, mut held) = (Vec::new(), Vec::new());
    // Entries in flight or sent now, and how many may be, per unmeasured
    // task (by its function).
    let mut out: HashMap<*const (), (usize, usize)> = HashMap::new();
    for job in queue {
        if batch::expected(&job).is_some() {
            ready.push(job);
            continue;
        }
        let task = task_of(&job);
        let (sent, most) = out.entry(task).or_insert_with(|| {
            let (flying, first) = lock(&sh.in_flight)
                .values()
                .filter(|f| task_of(&f.group[0]) == task)
                .fold((0, Duration::ZERO), |(n, t), f| {
                    (n + 1, t.max(f.at.elapsed()))
                });
            let most = match flying {
                0 => 1,
                n if first < HEAD_START => n,
                _ => workers.max(1),
            };
            (flying, most)
        });
        if *sent < *most {
            *sent += 1;
            ready.push(job);
        } else {
            held.push(job);
        }
    }
    (ready, held)
}

/// How long the first entry of a task not measured yet travels alone.
const HEAD_START: Duration = Duration::from_millis(5);

/// The task of `job`, as the address of its function.
fn task_of(job: &Job) -> *const () {
    std::ptr::from_ref(job.func()).cast()
}

/// Most jobs in one entry.
const MAX_JOBS: usize = 256;

/// Splits queued jobs into entries: consecutive jobs of one task, about an
/// equal share per worker (so every worker gets some), at most `MAX_JOBS`
/// each. Only jobs whose task is measured fast are merged, up to
/// [`SHORT_FRAME`] of expected work ([`batch::mergeable`], the process
/// pool's rule): a job whose time is unknown (the first ones of a task) or
/// long, or with a timeout, travels alone, so no result waits behind it.
pub(super) fn groups(queue: Vec<Job>, workers: usize) -> Vec<Vec<Job>> {
    let share = queue.len().div_ceil(workers.max(1)).clamp(1, MAX_JOBS);
    // Each entry with its expected time, if its jobs may take more.
    let mut out: Vec<(Vec<Job>, Option<Duration>)> = Vec::new();
    for job in queue {
        let expected = batch::mergeable(&job);
        match (out.last_mut(), expected) {
            (Some((g, Some(sum))), Some(t))
                if g.len() < share
                    && *sum < SHORT_FRAME
                    && std::ptr::addr_eq(g[0].func(), job.func()) =>
            {
                g.push(job);
                *sum += t;
            }
            _ => out.push((vec![job], expected)),
        }
    }
    out.into_iter().map(|(g, _)| g).collect()
}
