//! The reader side of a task: [`TaskResults`], an iterator over the
//! results in the task's result queue (see `job/queue.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::error::Item;
use crate::job::{Take, TaskCtx};
use crate::sync::lock;

/// An iterator over one task's results (values or errors).
///
/// In ordered mode results come in input order; otherwise in completion
/// order (batches of consecutive items). Several iterators over one task
/// share its results. Reading before the NuMap starts waits for the start
/// (a stream ends only when its input ended or the NuMap was stopped);
/// [`TaskResults::next_timeout`] bounds that wait.
pub struct TaskResults {
    pub(crate) ctx: Arc<TaskCtx>,
    local: std::vec::IntoIter<Item>,
}

opaque_debug!(TaskResults);

/// The outcome of [`TaskResults::next_timeout`].
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A result.
    Item(Item),
    /// The task has ended.
    End,
    /// Nothing arrived in time; the result is not lost and a later call returns it.
    TimedOut,
}

impl TaskResults {
    pub(crate) fn new(ctx: Arc<TaskCtx>) -> TaskResults {
        TaskResults {
            ctx,
            local: Vec::new().into_iter(),
        }
    }

    /// Waits at most `timeout` for the next result.
    pub fn next_timeout(&mut self, timeout: Duration) -> Next {
        self.next_inner(Some(timeout))
    }

    fn next_inner(&mut self, timeout: Option<Duration>) -> Next {
        if let Some(i) = self.local.next() {
            return Next::Item(i);
        }
        match self.ctx.queue.take(timeout) {
            Take::Batch(first, items) => {
                if let Some(t) = &self.ctx.tracked {
                    let mut t = lock(t);
                    for (k, it) in items.iter().enumerate() {
                        t.insert(first + k as u64, it.clone());
                    }
                }
                self.local = items.into_iter();
                self.local.next().map_or(Next::End, Next::Item)
            }
            Take::End => Next::End,
            Take::TimedOut => Next::TimedOut,
        }
    }
}

impl Iterator for TaskResults {
    type Item = Item;

    // Inlined into the caller: most calls take the next result of the batch
    // already in hand; only the first of each batch goes to the queue.
    #[inline]
    fn next(&mut self) -> Option<Item> {
        if let Some(i) = self.local.next() {
            return Some(i);
        }
        match self.next_inner(None) {
            Next::Item(i) => Some(i),
            Next::End | Next::TimedOut => None,
        }
    }

    /// The lower bound is the results in hand (taken from the queue and not
    /// yet returned): `next` gives that many without waiting.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.local.len(), None)
    }
}
