//! What a task applies to each item: the [`TaskFn`] trait, and
//! [`WorkerTask`], a [`Worker`] as a task function.

use std::sync::Arc;
use std::time::Duration;

use super::Inbox;
use crate::error::Item;
use crate::worker::Worker;

/// The function a task applies to each item.
pub trait TaskFn: Send + Sync {
    /// Evaluates one item; `index` is the item's position in the task's input.
    fn call(&self, index: u64, inbox: &[Item]) -> Item;

    /// Evaluates a batch of consecutive items (`first`, `first + 1`, ...),
    /// appending the results to `out`. The default calls [`call`](Self::call)
    /// per item; Worker-backed tasks catch panics per segment instead.
    fn call_batch(&self, first: u64, inboxes: &[Inbox], out: &mut Vec<Item>) {
        out.extend(
            inboxes
                .iter()
                .enumerate()
                .map(|(k, inbox)| self.call(first + k as u64, inbox.as_slice())),
        );
    }

    /// The item's index in the node's input, from its index in this task
    /// (they differ for a node spawned as several tasks).
    fn index_of(&self, local: u64) -> u64 {
        local
    }

    /// `true` when [`index_of`](Self::index_of) is the identity, so pools
    /// may skip calling it per item. Must be `false` (the default) for any
    /// function that maps indices.
    fn plain_indices(&self) -> bool {
        false
    }

    /// A name for logs and errors.
    fn name(&self) -> String;

    /// The Worker behind this task, for pools that run it elsewhere by name.
    fn worker(&self) -> Option<&Worker> {
        None
    }

    /// Called after each batch with the number of items, how many failed,
    /// and the time spent (statistics hook).
    fn on_batch(&self, _items: usize, _failed: usize, _busy: Duration) {}
}

/// A [`Worker`] as a task function; errors are attributed to node `node`.
#[derive(Debug)]
pub struct WorkerTask {
    worker: Worker,
    node: String,
    /// (task j, of k spawned tasks, chunk size): maps task indices to node indices.
    spawn: Option<(usize, usize, usize)>,
    counters: Option<Arc<crate::stats::NodeCounters>>,
}

impl WorkerTask {
    /// Wraps a Worker; `node` names it in error paths.
    pub fn new(worker: Worker, node: impl Into<String>) -> WorkerTask {
        WorkerTask {
            worker,
            node: node.into(),
            spawn: None,
            counters: None,
        }
    }

    /// Task `j` of `k` spawned tasks taking `chunk`-sized chunks in turn.
    pub(crate) fn spawned(mut self, j: usize, k: usize, chunk: usize) -> WorkerTask {
        if k > 1 {
            self.spawn = Some((j, k, chunk));
        }
        self
    }

    /// Adds busy time to a node's statistics.
    pub(crate) fn counting(mut self, counters: Arc<crate::stats::NodeCounters>) -> WorkerTask {
        self.counters = Some(counters);
        self
    }
}

impl TaskFn for WorkerTask {
    fn call(&self, index: u64, inbox: &[Item]) -> Item {
        self.worker.eval(inbox, &self.node, self.index_of(index))
    }
    fn call_batch(&self, first: u64, inboxes: &[Inbox], out: &mut Vec<Item>) {
        self.worker.eval_batch(
            inboxes.len(),
            |i| inboxes[i].as_slice(),
            |i| self.index_of(first + i as u64),
            &self.node,
            out,
        );
    }
    fn index_of(&self, local: u64) -> u64 {
        match self.spawn {
            None => local,
            Some((j, k, chunk)) => spawn_index(local, j, k, chunk),
        }
    }
    fn plain_indices(&self) -> bool {
        self.spawn.is_none()
    }
    fn name(&self) -> String {
        self.node.clone()
    }
    fn worker(&self) -> Option<&Worker> {
        Some(&self.worker)
    }
    fn on_batch(&self, items: usize, failed: usize, busy: Duration) {
        if let Some(c) = &self.counters {
            c.add_batch(items, failed, busy);
        }
    }
}

/// The index in a spawned node's input of item `local` of task `j` of `k`
/// tasks that take `chunk`-sized chunks of the input in turn.
pub(crate) fn spawn_index(local: u64, j: usize, k: usize, chunk: usize) -> u64 {
    let (c, k, j) = (chunk as u64, k as u64, j as u64);
    let m = local / c;
    (m * k + j) * c + local % c
}

#[cfg(test)]
mod tests;
