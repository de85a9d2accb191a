//! The proxy's exchanges and what follows a failed one: poison isolation
//! and retries.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::link::{Failure, Link, StartError};
use super::proxy::{InFlight, Proxy};
use super::Job;
use crate::error::Item;
use crate::job::batch::{deliver_group, prepare, Plan};
use crate::sync::lock;

impl<L: Link> Proxy<'_, L> {
    /// Reads the oldest in-flight group's result and delivers it. When the
    /// worker died, that group is handled as a death during its exchange,
    /// and every later in-flight group (which the worker had not started)
    /// runs again from the start.
    pub(super) fn complete_oldest(&mut self) {
        let Some(f) = self.inflight.pop_front() else {
            return;
        };
        let got = match self.conn.as_mut() {
            Some(c) => c.receive(f.id, f.plan.sent, None),
            None => Err(Failure::Died("no worker process".into())),
        };
        match got {
            Ok(items) => {
                self.sh.consecutive_deaths.store(0, Ordering::Relaxed);
                let results = f.plan.assemble(&f.group, items);
                self.finish_group(&f.group, results, f.sent.elapsed());
                // The next frame's wait behind this one is not its own time.
                if let Some(next) = self.inflight.front_mut() {
                    next.sent = next.sent.max(Instant::now());
                }
            }
            Err(failure) => {
                self.lose_worker();
                let later: Vec<InFlight> = self.inflight.drain(..).collect();
                self.recover(&f.group, f.plan, failure, 0, f.sent);
                for l in later {
                    self.handle(&l.group, 0);
                }
            }
        }
    }

    /// Sends a group of jobs of one task as one frame and delivers every
    /// item; `attempt` is the number of tries so far of a lone item. When
    /// the exchange fails, see [`recover`](Self::recover).
    pub(super) fn handle(&mut self, group: &[Job], attempt: u32) {
        let started = Instant::now();
        match self.attempt(group) {
            Ok(results) => self.finish_group(group, results, started.elapsed()),
            Err((failure, plan)) => self.recover(group, plan, failure, attempt, started),
        }
    }

    /// One try: the results per job, or how it failed (with the group's
    /// plan, to charge its items).
    fn attempt(&mut self, group: &[Job]) -> Result<Vec<Vec<Item>>, (Failure, Plan)> {
        // Items with an error in their inbox never leave the host: the
        // Worker passes the error on without calling anything.
        let (plan, wire) = prepare(group);
        if plan.sent == 0 {
            return Ok(plan.assemble(group, Vec::new()));
        }
        let id = self.next_id();
        let got = match self.respawn() {
            Err(e) => Err(self.start_failed(e)),
            Ok(()) => match self.conn.as_mut() {
                Some(c) => c.exchange(&group[0], &wire, id),
                None => Err(Failure::Died("no worker process".into())),
            },
        };
        drop(wire);
        match got {
            Ok(items) => {
                self.sh.consecutive_deaths.store(0, Ordering::Relaxed);
                Ok(plan.assemble(group, items))
            }
            Err(f @ Failure::NoWorker(_)) => Err((f, plan)),
            // A death during a job is charged to the job's items (a poison
            // item must not take the pool down).
            Err(f) => {
                let how = self.lose_worker();
                let f = match f {
                    Failure::TimedOut(m) => Failure::TimedOut(format!(
                        "{m}; the worker process was killed ({how}) and replaced"
                    )),
                    other => other,
                };
                Err((f, plan))
            }
        }
    }

    /// The worker failed while it held a frame: it is killed (unless it
    /// was reaped already) and counted, and the slot is left without a
    /// worker. Returns how it ended.
    pub(super) fn lose_worker(&mut self) -> String {
        self.sh.died.fetch_add(1, Ordering::Relaxed);
        let how = self.conn.take().map(|mut c| c.kill()).unwrap_or_default();
        self.forget_worker();
        how
    }

    /// A worker that could not even start or shake hands: after
    /// `max_deaths` in a row the pool gives up instead of looping.
    fn start_failed(&mut self, e: StartError) -> Failure {
        let sh = self.sh;
        self.forget_worker();
        sh.failed_starts.fetch_add(1, Ordering::Relaxed);
        let deaths = sh.consecutive_deaths.fetch_add(1, Ordering::Relaxed) + 1;
        if deaths >= sh.max_deaths {
            let m = format!(
                "{} pool `{}` gave up after {deaths} consecutive failed worker starts (last: {e})",
                sh.kind, sh.name
            );
            tracing::error!("{m}");
            *lock(&sh.given_up) = Some(StartError {
                message: m,
                function: e.function.clone(),
            });
        }
        Failure::NoWorker(e)
    }

    /// After a failed exchange: poison isolation and retries.
    ///
    /// - Several jobs that were only together for speed run again one by one.
    /// - A job of several items whose worker died is split in two halves,
    ///   each run on its own (recursively), so only an item whose own
    ///   evaluation kills a worker is ever charged: its innocent batch-mates
    ///   succeed. A job of `n` items with `p` poison items costs at most
    ///   about `p x log2(n)` extra worker starts, and retries are never
    ///   spent on halves.
    /// - A lone item is retried `retries` times (with the backoff), then
    ///   becomes an error item (`WorkerDied` or `Timeout`).
    /// - Items that run at most once fail with the worker that ran them.
    /// - When the pool has given up starting workers, everything is charged.
    pub(super) fn recover(
        &mut self,
        group: &[Job],
        plan: Plan,
        failure: Failure,
        attempt: u32,
        started: Instant,
    ) {
        let (retries, backoff) = group[0].retry_policy();
        let given_up = lock(&self.sh.given_up).is_some();
        // A worker that never started ran nothing.
        let once = !matches!(failure, Failure::NoWorker(_)) && group.iter().any(Job::at_most_once);
        let failure = match failure {
            Failure::Died(m) if once => Failure::Died(format!(
                "{m} (not run again: the node runs each item at most once)"
            )),
            other => other,
        };
        let again = !once && !given_up;
        if again && group.len() > 1 {
            for job in group {
                self.handle(std::slice::from_ref(job), 0);
            }
            return;
        }
        let halves = match (&failure, group) {
            (Failure::Died(_) | Failure::BadFrame(_), [job]) if again => job.halves(),
            _ => None,
        };
        if let Some((a, b)) = halves {
            tracing::debug!(
                "a worker died holding {} items; running them again in two halves",
                group[0].len()
            );
            self.handle(std::slice::from_ref(&a), 0);
            self.handle(std::slice::from_ref(&b), 0);
            return;
        }
        if again && attempt < retries {
            tracing::debug!(
                "retrying an item after its worker failed (attempt {} of {retries})",
                attempt + 1
            );
            std::thread::sleep(backoff);
            self.handle(group, attempt + 1);
            return;
        }
        let error = failure.error(&group[0]);
        deliver_group(group, plan.charge(group, &error), started.elapsed());
    }
}
