//! The batch codec: what a group of jobs puts on the wire, how its
//! results come back and are cut per job, and how a death is charged.
//! It knows nothing of the connection ([`exchange`](super::exchange) sends
//! and receives).

use std::time::Duration;

use super::{Job, TaskFn};
use crate::error::{ErrorKind, Item, ItemError, Result};
use crate::job::PackedInputs;
use crate::protocol::packed::{encode_values, pack_index};
use crate::protocol::Frame;
use crate::value::Value;

/// Jobs of at least this many items are packed when submitted.
pub(super) const PACK_FROM: usize = 32;

/// A frame from a worker as its reader thread passes it on: results are
/// turned into items in the thread that decoded them (while they are in its
/// cache), with their number of failures.
#[derive(Debug)]
pub(super) enum Incoming {
    Results {
        id: u64,
        items: Vec<Item>,
        failed: usize,
    },
    Other(Frame),
}

impl Incoming {
    /// The frame's kind, for messages (never its data).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Incoming::Results { .. } => "Result",
            Incoming::Other(f) => f.kind(),
        }
    }
}

impl From<Frame> for Incoming {
    fn from(f: Frame) -> Incoming {
        match f {
            Frame::Result { id, results } => Incoming::Results {
                id,
                failed: results.errors.len(),
                items: results.into_items(),
            },
            other => Incoming::Other(other),
        }
    }
}

/// What goes on the wire for a group: the items' indices, packed, and
/// their values, packed as they are read when every inbox is one value
/// (the common case), else by reference into the group's jobs.
pub(super) struct Wire<'g> {
    pub(super) indices: Vec<u8>,
    pub(super) values: WireValues<'g>,
}

impl Wire<'_> {
    /// Items sent.
    pub(super) fn len(&self) -> usize {
        self.indices.len() / 8
    }
}

pub(super) enum WireValues<'g> {
    Packed(Vec<u8>),
    Many(Vec<Vec<&'g Value>>),
}

/// How a group's results are put together once its sent items come back.
pub(super) struct Plan {
    /// Items answered here, as (job, item, result): an error in the inbox
    /// is passed on without a call, so such items never leave the host.
    pub(super) answered: Vec<(usize, usize, Item)>,
    /// Where the sent items sit in the group, as (job, item); `None` when
    /// every item of the group is sent, in order (the common case).
    pub(super) positions: Option<Vec<(usize, usize)>>,
    /// Items sent.
    pub(super) sent: usize,
}

impl Plan {
    /// The sent items' places, as (job, item).
    pub(super) fn positions(&self, group: &[Job]) -> Vec<(usize, usize)> {
        match &self.positions {
            Some(p) => p.clone(),
            None => group
                .iter()
                .enumerate()
                .flat_map(|(g, j)| (0..j.len()).map(move |k| (g, k)))
                .collect(),
        }
    }

    /// The results of every job of the group with their number of
    /// failures, from the sent items' results (in the order they were sent;
    /// `failed` of them failed) and the items answered here.
    pub(super) fn assemble(self, group: &[Job], mut sent: Vec<Item>, failed: usize) -> Vec<Batch> {
        if self.positions.is_none() && self.answered.is_empty() {
            // Every item went out in order: cut the results at job bounds
            // (no item is looked at unless some failed).
            if let [_] = group {
                return vec![Batch::new(sent, failed)];
            }
            let mut per_job = Vec::with_capacity(group.len());
            for job in group.iter().rev() {
                let at = sent.len().saturating_sub(job.len());
                per_job.push(Batch::new(sent.split_off(at), failed));
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
        slots
            .into_iter()
            .map(|job| {
                let items = job
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| Err(ItemError::new(ErrorKind::WorkerDied, "no result")))
                    })
                    .collect();
                Batch::new(items, usize::MAX)
            })
            .collect()
    }

    /// The results of every job when the sent items all failed with `err`
    /// (each error naming its function and index).
    pub(super) fn charge(self, group: &[Job], err: &ItemError) -> Vec<Batch> {
        let sent = self
            .positions(group)
            .into_iter()
            .map(|(g, k)| {
                let job = &group[g];
                let index = job.func().index_of(job.first + k as u64);
                Err(err.clone().at(job.func().name(), index))
            })
            .collect::<Vec<_>>();
        let failed = sent.len();
        self.assemble(group, sent, failed)
    }
}

/// Packs a job's inputs for the wire when every inbox is one value (on
/// the thread that submits it, while they are in its cache): the proxy then
/// only writes bytes, and a retry sends the same bytes again.
pub(super) fn pack(job: &mut Job) {
    // Small jobs are coalesced by the proxy instead (two buffers per item
    // would cost more than they save).
    if job.packed.is_some()
        || job.inboxes.len() < PACK_FROM
        || !job.inboxes.iter().all(|i| matches!(i.as_slice(), [Ok(_)]))
    {
        return;
    }
    let f = job.func();
    let plain = f.plain_indices();
    let n = job.inboxes.len();
    let mut indices = Vec::with_capacity(n * 8);
    for k in 0..n as u64 {
        let index = job.first + k;
        pack_index(if plain { index } else { f.index_of(index) }, &mut indices);
    }
    const NULL: Value = Value::Null;
    let mut values = Vec::new();
    encode_values(
        job.inboxes.iter().map(|i| match i.as_slice() {
            [Ok(v)] => v,
            _ => &NULL, // not reached: checked above
        }),
        &mut values,
    );
    job.packed = Some(PackedInputs {
        values,
        indices,
        len: n,
    });
    job.inboxes = Vec::new();
}

/// Splits a group into the items answered here and what goes on the wire.
pub(super) fn prepare(group: &[Job]) -> (Plan, Wire<'_>) {
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
    prepare_as(group, single)
}

/// As [`prepare`], with every item's input packed as one value (`single`:
/// every inbox holds one input) or its inputs as a list.
pub(super) fn prepare_as(group: &[Job], single: bool) -> (Plan, Wire<'_>) {
    let total: usize = group.iter().map(Job::len).sum();
    let mut indices = Vec::with_capacity(total * 8);
    let mut packed = Vec::new();
    if single {
        packed.reserve(total * 3);
    }
    let mut manys = Vec::new();
    let mut answered = Vec::new();
    let mut positions: Option<Vec<(usize, usize)>> = None;
    for (g, job) in group.iter().enumerate() {
        let f = job.func();
        let plain = f.plain_indices();
        for (k, inbox) in job.inboxes.iter().enumerate() {
            let index = job.first + k as u64;
            // The node's own index, so errors name the right input item.
            let node_index = |f: &dyn TaskFn| if plain { index } else { f.index_of(index) };
            if single {
                if let [Ok(v)] = inbox.as_slice() {
                    if let Some(p) = positions.as_mut() {
                        p.push((g, k));
                    }
                    pack_index(node_index(f), &mut indices);
                    encode_values(std::iter::once(v), &mut packed);
                    continue;
                }
            }
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
            pack_index(node_index(f), &mut indices);
            manys.push(items.iter().filter_map(|i| i.as_ref().ok()).collect());
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

/// The results of one job, with its number of failures.
pub(super) struct Batch {
    pub(super) items: Vec<Item>,
    pub(super) failed: usize,
}

impl Batch {
    /// A job's results, where at most `failed` items failed: zero means
    /// none, and the items need not be looked at; otherwise they are counted.
    pub(super) fn new(items: Vec<Item>, failed: usize) -> Batch {
        let failed = if failed == 0 {
            0
        } else {
            items.iter().filter(|r| r.is_err()).count()
        };
        Batch { items, failed }
    }
}

/// Delivers a group's results, sharing the round trip's time between its jobs.
pub(super) fn deliver_group(group: &[Job], results: Vec<Batch>, elapsed: Duration) {
    let n: usize = results.iter().map(|b| b.items.len()).sum::<usize>().max(1);
    for (job, b) in group.iter().zip(results) {
        let share = elapsed.mul_f64(b.items.len() as f64 / n as f64);
        job.account(b.items.len(), b.failed, share);
        let mut items = b.items;
        if b.failed > 0 {
            job.own_errors(job.first, &mut items);
        }
        job.deliver(job.first, items);
    }
}
