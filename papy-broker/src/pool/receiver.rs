//! The host's receiver thread: reads results and dead letters, expires
//! timeouts, and looks at the run every second (its owner, its lease, stale
//! entries, live workers), reconnecting when the broker goes away.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use papy_core::error::quote_peer;
use papy_core::pool::Job;
use papy_core::protocol::Frame;
use papy_core::sync::lock;
use papy_core::{ErrorKind, ItemError};

use super::entries::{prepare, InFlight};
use super::Shared;
use crate::codec::decode;
use crate::error::Result;
use crate::queue::{Cursor, Outcome, Queue};
use crate::seal::{DeadLetter, Role};

/// How often the host's reader checks the run (settings, lease, workers,
/// stale entries).
const POLL: Duration = Duration::from_secs(1);

/// No live worker for this long: the host warns (again each period).
const NO_WORKERS_WARNING: Duration = Duration::from_secs(10);

/// The host's consumer name (it claims only entries it dead-letters at once).
const HOST_CONSUMER: &str = "papy-host";

/// The receiver thread's state.
struct Reader<'a> {
    sh: &'a Shared,
    cursor: Cursor,
    backoff: Duration,
    polled: Option<Instant>,
    /// When the broker last answered (`None`: its silence has been reported).
    answered: Option<Instant>,
    /// Since when no worker has been seen, and when that was last reported.
    no_workers_since: Option<Instant>,
    warned: Option<Instant>,
}

/// The receiver thread, until the pool halts.
pub(super) fn receiver(sh: &Shared, q: Box<dyn Queue>) {
    let mut r = Reader {
        sh,
        cursor: Cursor::of(&sh.settings.session),
        backoff: Duration::from_millis(50),
        polled: None,
        answered: Some(Instant::now()),
        no_workers_since: None,
        warned: None,
    };
    let mut q = Some(q);
    while !sh.halt.load(Ordering::Acquire) {
        expire_timeouts(sh);
        let Some(c) = q.as_deref_mut() else {
            q = r.reconnect();
            continue;
        };
        // A failed exchange drops the connection.
        if (r.polled.is_none_or(|t| t.elapsed() >= POLL) && !r.look(c)) || !r.read(c) {
            q = None;
        }
    }
}

impl Reader<'_> {
    /// Without a connection: fails what is in flight once the broker has
    /// not answered for `unreachable_after`, and tries again (backing off).
    fn reconnect(&mut self) -> Option<Box<dyn Queue>> {
        let sh = self.sh;
        let silent = |t: Instant| t.elapsed() >= sh.spec.unreachable_after;
        if self.answered.is_some_and(silent) {
            self.answered = None;
            let m = format!(
                "the broker has not answered for {:?}; the items in flight are lost",
                sh.spec.unreachable_after
            );
            tracing::error!("broker pool `{}`: {m}", sh.spec.name);
            sh.fail_in_flight(&m);
        }
        std::thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_millis(500));
        let c = (sh.connector.connect())
            .and_then(|mut c| check_run(sh, &mut *c, &mut self.cursor).map(|()| c))
            .map_err(|e| tracing::warn!("broker pool `{}`: {e}", sh.spec.name))
            .ok()?;
        self.answered = Some(Instant::now());
        self.backoff = Duration::from_millis(50);
        Some(c)
    }

    /// The periodic look at the run ([`poll`]), and a warning while no
    /// worker serves it; `false` when the connection failed.
    fn look(&mut self, c: &mut dyn Queue) -> bool {
        let sh = self.sh;
        self.polled = Some(Instant::now());
        let n = match poll(sh, c, &mut self.cursor) {
            Ok(n) => n,
            Err(e) => {
                warn_or_break_down(sh, &e);
                return false;
            }
        };
        self.answered = Some(Instant::now());
        if n > 0 {
            self.no_workers_since = None;
            self.warned = None;
            return true;
        }
        let since = *self.no_workers_since.get_or_insert_with(Instant::now);
        let pending = !lock(&sh.in_flight).is_empty();
        let due = |t: Instant| t.elapsed() >= NO_WORKERS_WARNING;
        if pending && due(since) && self.warned.is_none_or(due) {
            self.warned = Some(Instant::now());
            tracing::warn!(
                "broker pool `{}`: no worker has read run `{}` for {:?}; \
                 start some: papy worker --redis URL --run {}",
                sh.spec.name,
                sh.spec.run(),
                since.elapsed(),
                sh.spec.run()
            );
        }
        true
    }

    /// Reads the outcomes that came (waiting at most 100 ms), delivers
    /// them, and appends the jobs to send again; `false` when the
    /// connection failed.
    fn read(&mut self, c: &mut dyn Queue) -> bool {
        let sh = self.sh;
        let outcomes = match c.read_outcomes(&mut self.cursor, 1024, Duration::from_millis(100)) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                warn_or_break_down(sh, &e);
                return false;
            }
        };
        self.answered = Some(Instant::now());
        let again: Vec<(u64, Vec<u8>)> = outcomes
            .into_iter()
            .flat_map(|o| take(sh, o))
            .filter_map(|job| prepare(sh, vec![job]))
            .collect();
        if !again.is_empty() {
            if let Err(e) = c.add_tasks(&sh.settings.session, &again) {
                // The entries are in flight: they are appended again once
                // the connection is back.
                tracing::warn!("broker pool `{}`: {e}; reconnecting", sh.spec.name);
                return false;
            }
        }
        true
    }
}

/// A failed exchange with the broker: retried after a reconnection, except
/// when Redis is full (at its `maxmemory`), which retrying cannot help
/// until memory is freed: the pool breaks down at once, naming the cause.
fn warn_or_break_down(sh: &Shared, e: &crate::BrokerError) {
    if matches!(e, crate::BrokerError::Full(_)) {
        sh.break_down(&e.to_string());
    }
    tracing::warn!("broker pool `{}`: {e}; reconnecting", sh.spec.name);
}

/// The reader's periodic look at the run: the run is still this host's
/// (another host with the same run id fails the pool loudly), the keys'
/// lease is renewed, entries over `max_attempts` that nobody reclaims are
/// dead-lettered, and the live workers are counted (returned).
fn poll(sh: &Shared, c: &mut dyn Queue, cursor: &mut Cursor) -> Result<usize> {
    match c.settings()? {
        Some(s) if s.session != sh.settings.session => {
            let m = format!(
                "another host took over run `{}` on this broker (one host per run id at a \
                 time: give each a `run_id` of its own); the items in flight are lost",
                sh.spec.run()
            );
            if sh.broken().is_none() {
                tracing::error!("broker pool `{}`: {m}", sh.spec.name);
            }
            sh.break_down(&m);
            return Ok(0);
        }
        Some(_) => {}
        // Redis lost the run (a restart without persistence).
        None => restart_run(sh, c, cursor)?,
    }
    c.renew(sh.settings.lease)?;
    let (claim_after, max_attempts) = (sh.settings.claim_after, sh.settings.max_attempts);
    let stale = c.claim_stale(HOST_CONSUMER, claim_after, max_attempts, 64)?;
    // Checked as a worker checks what it takes: a replay is acknowledged,
    // not dead-lettered (it must not fail the job of the entry it copies),
    // and an entry not the run's fails no job.
    for (e, task) in crate::admit::admit_all(c, &sh.sealer, stale, max_attempts)? {
        let reason = crate::admit::too_often(e.deliveries, max_attempts);
        crate::admit::give_up(c, &sh.sealer, &e, Some(task.id), &reason)?;
    }
    sh.replays.store(c.replays()?, Ordering::Relaxed);
    let n = c.active_workers(Duration::from_secs(5))?;
    sh.live_workers.store(n, Ordering::Relaxed);
    Ok(n)
}

/// After a reconnection: the broker may have lost entries (a restart, with
/// or without persistence), so every entry in flight is appended again (a
/// result that arrives twice is dropped); if the run itself is gone, it is
/// started again first. Another host's run fails the pool.
fn check_run(sh: &Shared, q: &mut dyn Queue, cursor: &mut Cursor) -> Result<()> {
    match q.settings()? {
        Some(s) if s.session != sh.settings.session => poll(sh, q, cursor).map(|_| ()),
        Some(_) => {
            tracing::info!("broker pool `{}`: reconnected", sh.spec.name);
            send_again(sh, q)
        }
        None => restart_run(sh, q, cursor),
    }
}

/// The broker lost the run's keys (a restart without persistence): starts
/// the run again, reading its new streams from the start, and appends the
/// entries in flight again.
fn restart_run(sh: &Shared, q: &mut dyn Queue, cursor: &mut Cursor) -> Result<()> {
    tracing::error!(
        "broker pool `{}`: the broker lost the run's streams (did Redis restart without \
         persistence?); starting the run again and sending the entries in flight again",
        sh.spec.name
    );
    q.start_run(&sh.settings)?;
    *cursor = Cursor::of(&sh.settings.session);
    send_again(sh, q)
}

/// Appends every entry in flight again (a result that arrives twice is
/// dropped).
fn send_again(sh: &Shared, q: &mut dyn Queue) -> Result<()> {
    let mut again: Vec<(u64, Vec<u8>)> = lock(&sh.in_flight)
        .iter()
        .map(|(id, f)| (*id, f.payload.clone()))
        .collect();
    again.sort_by_key(|(id, _)| *id);
    if again.is_empty() {
        return Ok(());
    }
    tracing::info!(
        "broker pool `{}`: appending the {} entries in flight again",
        sh.spec.name,
        again.len()
    );
    q.add_tasks(&sh.settings.session, &again)
}

/// Fails job `id` (when its outcome cannot be used) with `why`.
fn fail_job(sh: &Shared, id: Option<u64>, why: &str) {
    tracing::warn!("broker pool `{}`: {why}", sh.spec.name);
    let f = id.and_then(|id| lock(&sh.in_flight).remove(&id));
    if let Some(f) = f {
        f.fail(&ItemError::new(ErrorKind::WorkerDied, why));
    }
}

/// Counts and logs a result or dead letter (`what`) ignored because it
/// does not carry the run's tag.
fn forged(sh: &Shared, what: &str, why: &str) {
    sh.forged.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("broker pool `{}`: a {what} ignored: {why}", sh.spec.name);
}

/// Handles one outcome of this session; returns the jobs to send again.
fn take(sh: &Shared, o: Outcome) -> Vec<Job> {
    match o {
        Outcome::Result {
            session,
            job,
            payload,
            busy,
        } if session == sh.settings.session => {
            take_result(sh, job, &payload, busy);
            Vec::new()
        }
        Outcome::Dead { session, letter } if session == sh.settings.session => {
            take_dead_letter(sh, &letter)
        }
        _ => Vec::new(),
    }
}

/// Delivers a result entry's items, at the first result of its job only
/// (a later one is a duplicate of at-least-once delivery, and dropped).
fn take_result(sh: &Shared, job: Option<u64>, payload: &[u8], busy: Option<Duration>) {
    let payload = match sh.sealer.open(Role::Result, &sh.settings.session, payload) {
        Ok(p) => p,
        Err(why) => return forged(sh, "result", &why),
    };
    let (id, results) = match decode("result", payload) {
        Ok(Frame::Result { id, results }) => (id, results),
        Ok(_) => return fail_job(sh, job, "a worker sent something else than a result"),
        Err(e) => return fail_job(sh, job, &format!("a worker's result is unreadable: {e}")),
    };
    let f = lock(&sh.in_flight).remove(&id);
    let Some(f) = f else {
        sh.duplicates.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            "broker pool `{}`: dropped a duplicate result of job {id}",
            sh.spec.name
        );
        return;
    };
    let items = results.into_items();
    if items.len() != f.plan.sent {
        let m = format!(
            "a worker sent {} results for {} items",
            items.len(),
            f.plan.sent
        );
        f.fail(&ItemError::new(ErrorKind::WorkerDied, m));
        return;
    }
    f.succeed(items, busy, &sh.distance);
}

/// Fails a dead-lettered entry's items; returns its jobs to send again,
/// one entry each, when it held several (only the poison one should fail).
fn take_dead_letter(sh: &Shared, letter: &DeadLetter) -> Vec<Job> {
    // A dead letter counts only with its own tag, which binds the job, the
    // entry, the deliveries and the reason (at most `MAX_REASON` bytes): a
    // task entry or result copied into the dead-letter stream, or a letter
    // with another reason, is counted and ignored.
    if let Err(why) = sh.sealer.check_dead_letter(&sh.settings.session, letter) {
        forged(sh, "dead letter", &why);
        return Vec::new();
    }
    let reason = quote_peer(&letter.reason);
    let Some(id) = letter.job else {
        // A worker refused a task entry that was not the run's: it reports
        // it, and fails no job.
        sh.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "broker pool `{}`: a worker refused task entry {}: {reason}",
            sh.spec.name,
            quote_peer(&letter.entry)
        );
        return Vec::new();
    };
    let Some(f) = lock(&sh.in_flight).remove(&id) else {
        return Vec::new();
    };
    if f.group.len() > 1 {
        tracing::debug!(
            "broker pool `{}`: entry of {} jobs dead-lettered; sending each job alone",
            sh.spec.name,
            f.group.len()
        );
        return f.group;
    }
    let m = format!(
        "dead-lettered after {} deliveries: {reason}",
        letter.deliveries
    );
    f.fail(&ItemError::new(ErrorKind::WorkerDied, m));
    Vec::new()
}

/// Fails the entries whose task's timeout has passed.
fn expire_timeouts(sh: &Shared) {
    let now = Instant::now();
    let expired: Vec<InFlight> = {
        let mut m = lock(&sh.in_flight);
        let due = |(id, f): (&u64, &InFlight)| f.deadline.is_some_and(|d| d <= now).then_some(*id);
        let ids: Vec<u64> = m.iter().filter_map(due).collect();
        ids.into_iter().filter_map(|id| m.remove(&id)).collect()
    };
    for f in expired {
        let t = f.group[0].timeout().unwrap_or_default();
        f.fail(&ItemError::new(
            ErrorKind::Timeout,
            format!("no result within {t:?}; a late result is discarded"),
        ));
    }
}
