//! The weave: the feeder thread that pulls task inputs and submits them.
//!
//! Invariants:
//! - tasks are visited in task order; each visit pulls up to `stride` items
//!   from the task's input and submits them as one job (one job per item for
//!   tasks with a timeout, so a timed-out worker holds a single item);
//! - before submitting `n` items the feeder takes `n` buffer credits; a
//!   reader returns them when it takes the results, so at most `buffer` items
//!   are submitted and unretrieved (`buffer >= stride` is enforced, so a
//!   visit can always complete once readers progress);
//! - when stop is requested, every source task ends at its next visit (a
//!   stride boundary); chained tasks run until their upstream task ends, so
//!   every item pulled from an input is processed;
//! - when a task's input ends, its result queue learns the task's total, so
//!   readers see the end only after every result was handed out;
//! - a panicking input iterator becomes one error item and ends that task.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::buffer::Credits;
use super::task::TaskCtx;
use crate::error::{ErrorKind, ItemError};
use crate::pool::{Inbox, Job, Pool};

/// A task's input stream.
pub(crate) type Input = Box<dyn Iterator<Item = Inbox> + Send>;

/// A task as the feeder sees it.
pub(crate) struct FeedTask {
    pub(crate) ctx: Arc<TaskCtx>,
    pub(crate) input: Option<Input>,
    pub(crate) chained: bool,
    pub(crate) next_index: u64,
}

pub(crate) struct Feeder {
    pub(crate) name: String,
    pub(crate) tasks: Vec<FeedTask>,
    pub(crate) pool: Arc<dyn Pool>,
    pub(crate) credits: Arc<Credits>,
    pub(crate) stride: usize,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stall: Duration,
}

impl Feeder {
    /// Runs until every task has ended or the buffer is closed; returns the
    /// tasks (with their unfinished inputs) for a later restart.
    pub(crate) fn run(mut self) -> Vec<FeedTask> {
        let mut ended = vec![false; self.tasks.len()];
        loop {
            let mut active = false;
            for t in 0..self.tasks.len() {
                if ended[t] {
                    continue;
                }
                active = true;
                let task = &mut self.tasks[t];
                let stop_now = !task.chained && self.stop.load(Ordering::Acquire);
                let (batch, exhausted) = if stop_now {
                    (Vec::new(), true)
                } else {
                    pull(task, self.stride)
                };
                if !batch.is_empty() && !self.submit(t, batch) {
                    return self.tasks;
                }
                if exhausted {
                    ended[t] = true;
                    let task = &self.tasks[t];
                    task.ctx.queue.set_total(task.next_index);
                }
            }
            if !active {
                return self.tasks;
            }
        }
    }

    fn report_stall(&self) {
        let waiting: Vec<String> = self
            .tasks
            .iter()
            .filter_map(|t| {
                let w = t.ctx.queue.waiting();
                (w > 0).then(|| format!("task {} `{}` holds {w} unread result(s)", t.ctx.id, t.ctx.func.name()))
            })
            .collect();
        tracing::warn!(
            "NuMap `{}` has made no progress for {:?}: its buffer of {} is full and nobody reads the results ({}). Read every task's results (Plumber::run does), or raise the buffer.",
            self.name,
            self.stall,
            self.credits.size(),
            if waiting.is_empty() { "results still computing".to_string() } else { waiting.join("; ") }
        );
    }

    fn submit(&mut self, t: usize, batch: Vec<Inbox>) -> bool {
        let n = batch.len();
        if !self.credits.acquire(n, self.stall, &|| self.report_stall()) {
            return false;
        }
        let task = &mut self.tasks[t];
        let first = task.next_index;
        task.next_index += n as u64;
        if task.ctx.timeout.is_some() {
            for (k, inbox) in batch.into_iter().enumerate() {
                self.pool.submit(Job {
                    task: task.ctx.clone(),
                    first: first + k as u64,
                    inboxes: vec![inbox],
                });
            }
        } else {
            self.pool.submit(Job {
                task: task.ctx.clone(),
                first,
                inboxes: batch,
            });
        }
        true
    }
}

/// Pulls up to `stride` inboxes; returns them and whether the input ended.
fn pull(task: &mut FeedTask, stride: usize) -> (Vec<Inbox>, bool) {
    let Some(input) = task.input.as_mut() else {
        return (Vec::new(), true);
    };
    let mut batch = Vec::with_capacity(stride);
    let r = catch_unwind(AssertUnwindSafe(|| {
        while batch.len() < stride {
            match input.next() {
                Some(x) => batch.push(x),
                None => return true,
            }
        }
        false
    }));
    match r {
        Ok(exhausted) => {
            if exhausted {
                task.input = None;
            }
            (batch, exhausted)
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the input iterator panicked".into());
            let index = task.next_index + batch.len() as u64;
            let err = ItemError::new(ErrorKind::Input, format!("input iterator panicked: {msg}"))
                .at(task.ctx.func.name(), index);
            batch.push(Inbox::One(Err(err)));
            task.input = None;
            (batch, true)
        }
    }
}
