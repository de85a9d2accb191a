//! Items a source task pulled with its stride and has not submitted yet
//! (the part of a stride the buffer could not take at once), kept already
//! cut into jobs: a grant of whole jobs submits them as they are, so an
//! item is copied once, from the input into its job, whatever the grants.

use std::collections::VecDeque;

use crate::pool::Inbox;

/// Pulled items waiting for credit, in input order, as jobs.
#[derive(Default)]
pub(crate) struct Pending {
    jobs: VecDeque<Vec<Inbox>>,
    /// Items in `jobs`.
    items: usize,
}

impl Pending {
    /// Items waiting.
    pub(crate) fn len(&self) -> usize {
        self.items
    }

    /// `true` when no item waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Drops every waiting item.
    pub(crate) fn clear(&mut self) {
        self.jobs.clear();
        self.items = 0;
    }

    /// Pulls up to `n` more items as jobs of at most `job_size`, topping up
    /// the last job first. `first` is the index of the first waiting item;
    /// `pull(job, k, index)` appends up to `k` inboxes to `job` (whose first
    /// inbox is item `index`) and says whether the input ended, which ends
    /// the pull (returned).
    pub(crate) fn pull(
        &mut self,
        n: usize,
        job_size: usize,
        first: u64,
        mut pull: impl FnMut(&mut Vec<Inbox>, usize, u64) -> bool,
    ) -> bool {
        let job_size = job_size.max(1);
        let mut left = n;
        while left > 0 {
            let top_up = self.jobs.back().is_some_and(|j| j.len() < job_size);
            let mut job = if top_up {
                self.jobs.pop_back().unwrap_or_default()
            } else {
                Vec::new()
            };
            self.items -= job.len();
            let (before, want) = (job.len(), (job_size - job.len()).min(left));
            job.reserve_exact(want);
            let ended = pull(&mut job, want, first + self.items as u64);
            left = left.saturating_sub(job.len() - before);
            self.items += job.len();
            if !job.is_empty() {
                self.jobs.push_back(job);
            }
            if ended {
                return true;
            }
        }
        false
    }

    /// Takes up to `n` items, in order, as jobs of at most `job_size`:
    /// waiting jobs move whole (no copy); only a job the grant cuts, or
    /// jobs smaller than `job_size` put together, move their items.
    pub(crate) fn take(&mut self, n: usize, job_size: usize) -> Vec<Vec<Inbox>> {
        let job_size = job_size.max(1);
        let mut out: Vec<Vec<Inbox>> = Vec::new();
        let mut left = n.min(self.items);
        while left > 0 {
            let Some(front) = self.jobs.front_mut() else {
                break;
            };
            let k = front.len().min(left).min(job_size);
            let job = if k == front.len() {
                self.jobs.pop_front().unwrap_or_default()
            } else {
                let rest = front.split_off(k);
                std::mem::replace(front, rest)
            };
            left -= k;
            self.items -= k;
            match out.last_mut() {
                Some(prev) if prev.len() + job.len() <= job_size => prev.extend(job),
                _ => out.push(job),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
