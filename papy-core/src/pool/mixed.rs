//! A pool made of other pools: thread, process and remote workers serving
//! the same NuMap. Idle first: a job goes to a member with a worker that
//! has no job (the least loaded of them); only when every worker of every
//! member is busy does it go to the member with the fewest items in flight
//! per worker, so faster members take more work.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Job, Pool, TaskFn};
use crate::error::{Error, Result};

struct Member {
    pool: Arc<dyn Pool>,
    /// Items submitted and not delivered.
    in_flight: Arc<AtomicUsize>,
    /// Jobs submitted and not wholly delivered.
    jobs: Arc<AtomicUsize>,
}

/// Several pools behind one [`Pool`].
///
/// ```
/// use std::sync::Arc;
/// use papy_core::{pool::MixedPool, Pool, ThreadPool};
/// let a: Arc<dyn Pool> = Arc::new(ThreadPool::new("a", 1).unwrap());
/// let b: Arc<dyn Pool> = Arc::new(ThreadPool::new("b", 2).unwrap());
/// let mixed = MixedPool::new(vec![a, b]).unwrap();
/// assert_eq!(mixed.size(), 3);
/// ```
pub struct MixedPool {
    members: Vec<Member>,
    size: usize,
}

opaque_debug!(MixedPool);

impl MixedPool {
    /// Combines `pools` (at least one).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list.
    pub fn new(pools: Vec<Arc<dyn Pool>>) -> Result<MixedPool> {
        if pools.is_empty() {
            return Err(Error::Config("a mixed pool needs at least one pool".into()));
        }
        let size = pools.iter().map(|p| p.size()).sum();
        Ok(MixedPool {
            members: pools
                .into_iter()
                .map(|pool| Member {
                    pool,
                    in_flight: Arc::new(AtomicUsize::new(0)),
                    jobs: Arc::new(AtomicUsize::new(0)),
                })
                .collect(),
            size,
        })
    }
}

impl Pool for MixedPool {
    fn kind(&self) -> &'static str {
        "mixed"
    }

    fn size(&self) -> usize {
        self.size
    }

    fn accepts(&self, f: &dyn TaskFn) -> Result<()> {
        self.members.iter().try_for_each(|m| m.pool.accepts(f))
    }

    /// The members' counts added up.
    fn stats(&self) -> super::PoolStats {
        let mut sum = super::PoolStats {
            kind: "mixed",
            ..super::PoolStats::default()
        };
        for s in self.members.iter().map(|m| m.pool.stats()) {
            sum.workers += s.workers;
            sum.busy += s.busy;
            sum.started += s.started;
            sum.died += s.died;
            sum.recycled += s.recycled;
            sum.failed_starts += s.failed_starts;
        }
        sum
    }

    /// The longest of the members' (jobs go to any member).
    fn job_target(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.pool.job_target())
            .max()
            .unwrap_or(Duration::from_micros(100))
    }

    fn submit(&self, job: Job) {
        let load =
            |m: &Member| m.in_flight.load(Ordering::Relaxed) as f64 / m.pool.size().max(1) as f64;
        let has_idle = |m: &Member| m.jobs.load(Ordering::Relaxed) < m.pool.size();
        let least = |a: &&Member, b: &&Member| load(a).total_cmp(&load(b));
        let member = self
            .members
            .iter()
            .filter(|m| has_idle(m))
            .min_by(least)
            .or_else(|| self.members.iter().min_by(least));
        let Some(member) = member else {
            return;
        };
        let n = job.len();
        member.in_flight.fetch_add(n, Ordering::Relaxed);
        member.jobs.fetch_add(usize::from(n > 0), Ordering::Relaxed);
        let (items, jobs) = (member.in_flight.clone(), member.jobs.clone());
        let left = AtomicUsize::new(n);
        member.pool.submit(job.on_delivered(move |done| {
            items.fetch_sub(done, Ordering::Relaxed);
            if done > 0 && left.fetch_sub(done, Ordering::Relaxed) == done {
                jobs.fetch_sub(1, Ordering::Relaxed);
            }
        }));
    }

    fn shutdown(&self) {
        for m in &self.members {
            m.pool.shutdown();
        }
    }
}
