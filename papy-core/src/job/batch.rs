//! The batch codec of every round-trip pool (process, remote, broker):
//! what a group of jobs of one task puts on the wire as one `Task` frame,
//! how the frame's results are cut back per job, and how a failure is
//! charged to the items sent. It knows nothing of connections: a pool
//! sends the [`Wire`] and hands back what came in.

use std::time::Duration;

use super::{Job, PackedInputs, TaskFn};
use crate::error::{ErrorKind, Item, ItemError};
use crate::protocol::packed::{encode_values, pack_index};
use crate::protocol::{Call, FrameRef, InboxesRef};
use crate::value::Value;

/// Jobs of at least this many items are packed when submitted.
pub(crate) const PACK_FROM: usize = 32;

/// Frames whose expected time where they run is under this are short: jobs
/// known to be this fast may be merged into one frame up to this long (and
/// a process worker may get a frame pipelined behind them).
pub const SHORT_FRAME: Duration = Duration::from_millis(5);

/// What `job` is expected to take where it runs, when it may be merged with
/// other queued jobs of its task into one frame: its task's items have been
/// measured ([`Job::account`]), it has no timeout (its deadline is its own)
/// and it is expected to take less than [`SHORT_FRAME`]. `None` otherwise:
/// a result is never held back by a job whose time is unknown or long
/// (another task's pace is no guide).
pub fn mergeable(job: &Job) -> Option<Duration> {
    expected(job).filter(|t| job.timeout().is_none() && *t < SHORT_FRAME)
}

/// What `job` is expected to take where it runs, from its task's measured
/// pace (`None` until a job of its task has been measured).
pub fn expected(job: &Job) -> Option<Duration> {
    job.expected()
}

/// What goes on the wire for a group: the items' indices, packed, and
/// their values, packed as they are read when every inbox is one value
/// (the common case), else by reference into the group's jobs.
pub struct Wire<'g> {
    indices: Vec<u8>,
    values: WireValues<'g>,
}

impl std::fmt::Debug for Wire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").finish_non_exhaustive()
    }
}

/// The values of a [`Wire`]: packed, or each item's inputs as a list.
enum WireValues<'g> {
    Packed(Vec<u8>),
    Many(Vec<Vec<&'g Value>>),
}

impl Wire<'_> {
    /// Items sent.
    pub(crate) fn len(&self) -> usize {
        self.indices.len() / 8
    }

    /// The `Task` frame carrying it, split for
    /// [`write_frame_tail`](crate::protocol::write_frame_tail) when its
    /// values are packed: the frame without them, and the values. Else the
    /// whole frame and `None`.
    pub fn frame_and_tail<'f>(
        &'f self,
        id: u64,
        chain: &'f [Call],
        node: &'f str,
    ) -> (FrameRef<'f>, Option<&'f [u8]>) {
        let mut frame = self.frame(id, chain, node);
        let tail = match (&self.values, &mut frame) {
            (WireValues::Packed(v), FrameRef::Task { inboxes, .. }) => {
                *inboxes = InboxesRef::Single(&[]);
                Some(v.as_slice())
            }
            _ => None,
        };
        (frame, tail)
    }

    /// The `Task` frame carrying it, for task `id` of `chain` at `node`.
    pub fn frame<'f>(&'f self, id: u64, chain: &'f [Call], node: &'f str) -> FrameRef<'f> {
        let inboxes = match &self.values {
            WireValues::Packed(v) => InboxesRef::Single(v),
            WireValues::Many(v) => InboxesRef::Many(v),
        };
        FrameRef::Task {
            id,
            chain,
            node,
            indices: &self.indices,
            inboxes,
        }
    }
}

/// How a group's results are put together once its sent items come back.
#[derive(Debug)]
pub struct Plan {
    /// Items answered here, as (job, item, result): an error in the inbox
    /// is passed on without a call, so such items never leave the host.
    answered: Vec<(usize, usize, Item)>,
    /// Where the sent items sit in the group, as (job, item); `None` when
    /// every item of the group is sent, in order (the common case).
    positions: Option<Vec<(usize, usize)>>,
    /// Items sent.
    pub sent: usize,
}

impl Plan {
    /// The sent items' places, as (job, item).
    fn positions(&self, group: &[Job]) -> Vec<(usize, usize)> {
        match &self.positions {
            Some(p) => p.clone(),
            None => group
                .iter()
                .enumerate()
                .flat_map(|(g, j)| (0..j.len()).map(move |k| (g, k)))
                .collect(),
        }
    }

    /// The results of every job of the group, from the sent items' results
    /// (in the order they were sent) and the items answered here.
    pub fn assemble(self, group: &[Job], mut sent: Vec<Item>) -> Vec<Vec<Item>> {
        if self.positions.is_none() && self.answered.is_empty() {
            // Every item went out in order: cut the results at job bounds.
            let mut per_job = Vec::with_capacity(group.len());
            for job in group.iter().rev() {
                let at = sent.len().saturating_sub(job.len());
                per_job.push(sent.split_off(at));
            }
            per_job.reverse();
            return per_job;
        }
        let mut slots: Vec<Vec<Option<Item>>> = group
            .iter()
            .map(|j| (0..j.len()).map(|_| None).collect())
            .collect();
        for ((g, k), item) in self.positions(group).into_iter().zip(sent) {
            slots[g][k] = Some(item);
        }
        for (g, k, item) in self.answered {
            slots[g][k] = Some(item);
        }
        let missing = || Err(ItemError::new(ErrorKind::WorkerDied, "no result"));
        slots
            .into_iter()
            .map(|job| job.into_iter().map(|r| r.unwrap_or_else(missing)).collect())
            .collect()
    }

    /// The results of every job when the sent items all failed with `err`
    /// (each error naming its node and index).
    pub fn charge(self, group: &[Job], err: &ItemError) -> Vec<Vec<Item>> {
        let sent = self
            .positions(group)
            .into_iter()
            .map(|(g, k)| {
                let job = &group[g];
                let index = job.func().index_of(job.first + k as u64);
                Err(err.clone().at(job.func().name(), index))
            })
            .collect();
        self.assemble(group, sent)
    }
}

/// Packs a job's inputs for the wire when every inbox is one value (on
/// the thread that submits it, while they are in its cache): the proxy then
/// only writes bytes, and a retry sends the same bytes again.
pub(crate) fn pack(job: &mut Job) {
    // Small jobs are coalesced by the proxy instead (two buffers per item
    // would cost more than they save).
    if job.packed.is_some() || job.inboxes.len() < PACK_FROM {
        return;
    }
    let Some(values) = job
        .inboxes
        .iter()
        .map(|i| match i.as_slice() {
            [Ok(v)] => Some(v),
            _ => None,
        })
        .collect::<Option<Vec<&Value>>>()
    else {
        return;
    };
    let f = job.func();
    let n = values.len();
    let mut indices = Vec::with_capacity(n * 8);
    for k in 0..n as u64 {
        pack_index(node_index(f, job.first + k), &mut indices);
    }
    let mut packed = Vec::new();
    encode_values(values.into_iter(), &mut packed);
    job.packed = Some(PackedInputs {
        values: packed,
        indices,
        len: n,
    });
    job.inboxes = Vec::new();
}

/// The node's own index of task item `index`, so errors name the right
/// input item.
fn node_index(f: &dyn TaskFn, index: u64) -> u64 {
    if f.plain_indices() {
        index
    } else {
        f.index_of(index)
    }
}

/// Splits a group into the items answered here and what goes on the wire.
pub fn prepare(group: &[Job]) -> (Plan, Wire<'_>) {
    if group.iter().all(|j| j.packed.is_some()) {
        // Packed when submitted: the bytes go as they are.
        let (mut values, mut indices) = (Vec::new(), Vec::new());
        for p in group.iter().filter_map(|j| j.packed.as_ref()) {
            values.extend_from_slice(&p.values);
            indices.extend_from_slice(&p.indices);
        }
        let plan = Plan {
            answered: Vec::new(),
            positions: None,
            sent: indices.len() / 8,
        };
        let values = WireValues::Packed(values);
        return (plan, Wire { indices, values });
    }
    // Every inbox of one input: values go packed; else every item as a list.
    let single = group
        .iter()
        .all(|j| j.inboxes.iter().all(|i| i.as_slice().len() == 1));
    let total: usize = group.iter().map(Job::len).sum();
    let mut indices = Vec::with_capacity(total * 8);
    let mut packed = Vec::with_capacity(if single { total * 3 } else { 0 });
    let mut manys = Vec::new();
    let mut answered = Vec::new();
    let mut positions: Option<Vec<(usize, usize)>> = None;
    for (g, job) in group.iter().enumerate() {
        let f = job.func();
        for (k, inbox) in job.inboxes.iter().enumerate() {
            let index = job.first + k as u64;
            let items = inbox.as_slice();
            if items.iter().any(Result::is_err) {
                // The first item answered here: from now on the sent items'
                // places are recorded (every earlier item was sent).
                positions.get_or_insert_with(|| {
                    let mut p: Vec<(usize, usize)> = group[..g]
                        .iter()
                        .enumerate()
                        .flat_map(|(h, j)| (0..j.inboxes.len()).map(move |i| (h, i)))
                        .collect();
                    p.extend((0..k).map(|i| (g, i)));
                    p
                });
                answered.push((g, k, f.call(index, items)));
                continue;
            }
            if let Some(p) = positions.as_mut() {
                p.push((g, k));
            }
            pack_index(node_index(f, index), &mut indices);
            match items {
                [Ok(v)] if single => encode_values(std::iter::once(v), &mut packed),
                _ => manys.push(items.iter().filter_map(|i| i.as_ref().ok()).collect()),
            }
        }
    }
    let plan = Plan {
        answered,
        positions,
        sent: indices.len() / 8,
    };
    let values = if single {
        WireValues::Packed(packed)
    } else {
        WireValues::Many(manys)
    };
    (plan, Wire { indices, values })
}

/// Delivers a group's results (one list per job), sharing `elapsed`, the
/// round trip's time, between its jobs by their number of items.
pub fn deliver_group(group: &[Job], results: Vec<Vec<Item>>, elapsed: Duration) {
    let n: usize = results.iter().map(Vec::len).sum::<usize>().max(1);
    for (job, mut items) in group.iter().zip(results) {
        let share = elapsed.mul_f64(items.len() as f64 / n as f64);
        let failed = items.iter().filter(|r| r.is_err()).count();
        job.account(items.len(), failed, share);
        if failed > 0 {
            job.own_errors(job.first, &mut items);
        }
        job.deliver(job.first, items);
    }
}

#[cfg(test)]
mod tests;
