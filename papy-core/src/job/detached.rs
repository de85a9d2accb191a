//! A job outside any NuMap: a program that evaluates batches it did not
//! make (a broker worker relaying a task entry to a process pool) submits
//! it to a [`Pool`](crate::Pool) and waits for its items here.

use std::sync::Arc;

use super::queue::{Release, Take, TaskCtx};
use super::{Inbox, Job, TaskFn};
use crate::error::{ErrorKind, Item, ItemError};

/// No buffer to give credits back to.
struct NoCredits;

impl Release for NoCredits {
    fn release(&self, _n: usize) {}
    fn wake(&self) {}
}

/// The results of a [`Job::detached`], in item order.
pub struct Detached {
    task: Arc<TaskCtx>,
    len: usize,
}

opaque_debug!(Detached);

impl Job {
    /// A job of `inboxes` (items `0..`) for `func` that belongs to no
    /// NuMap, and where its results arrive: submit the job to a pool, then
    /// [`Detached::wait`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use papy_core::pool::{Job, WorkerTask};
    /// use papy_core::{IntoInbox, Pool, ThreadPool, Worker};
    /// let f = WorkerTask::new(Worker::typed("double", |x: i64| x * 2), "node");
    /// let (job, results) = Job::detached(Arc::new(f), vec![1i64.into_inbox(), 2i64.into_inbox()]);
    /// let pool = ThreadPool::new("p", 1).unwrap();
    /// pool.submit(job);
    /// let items = results.wait();
    /// assert_eq!(items.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(), [2i64.into(), 4i64.into()]);
    /// ```
    pub fn detached(func: Arc<dyn TaskFn>, inboxes: Vec<Inbox>) -> (Job, Detached) {
        let task = Arc::new(TaskCtx::new(0, func, None, Some(true), false));
        task.queue.reset(true, Arc::new(NoCredits), 0);
        let len = inboxes.len();
        let job = Job::new(task.clone(), 0, inboxes);
        (job, Detached { task, len })
    }
}

impl Detached {
    /// Waits for every item of the job (a pool delivers each one, as a
    /// value or an error), in order.
    pub fn wait(self) -> Vec<Item> {
        let mut out = Vec::with_capacity(self.len);
        while out.len() < self.len {
            match self.task.queue.take(None) {
                Take::Batch(_, items) => out.extend(items),
                // Not reached: nothing closes or ends this queue.
                Take::End | Take::TimedOut => break,
            }
        }
        let missing = || Err(ItemError::new(ErrorKind::WorkerDied, "no result"));
        out.extend(std::iter::repeat_with(missing).take(self.len.saturating_sub(out.len())));
        out
    }
}
