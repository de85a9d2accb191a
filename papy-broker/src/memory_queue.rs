//! [`Queue`] in memory: one run's streams, consumer group and hashes in a
//! `Mutex`, shared by every handle (a host and workers in one process), so
//! the broker's delivery rules run without a server.
//!
//! It models what [`RedisQueue`](crate::RedisQueue) does, call by call:
//! - the task, result and dead-letter streams (`XADD`), with increasing
//!   entry ids `<n>-0`;
//! - the consumer group: new entries go to the first consumer that reads
//!   them (`XREADGROUP >`) and stay pending, with their consumer, delivery
//!   count and last delivery time, until acknowledged; `reclaim` takes over
//!   entries idle longer than a bound, walking the pending list from a
//!   cursor per handle (`XAUTOCLAIM`), counting a delivery; `claim_stale`
//!   takes those already delivered `max_attempts` times (`XPENDING IDLE` +
//!   `XCLAIM`); `touch` resets the idle time of the entries the consumer
//!   still holds, counting no delivery (the heartbeat script);
//! - `complete` and `dead_letter` append and acknowledge under one lock (the
//!   `MULTI` transaction);
//! - the run's settings (`papy:<run>:run`) and the job-claim record with its
//!   replay count (`papy:<run>:jobs`, the claim script);
//! - a read of a run whose group is gone recreates the group only while the
//!   settings exist, as `with_group` does.
//!
//! Where it simplifies:
//! - Leases are recorded ([`MemoryQueue::lease`]) but nothing expires; a
//!   broker that loses everything is [`MemoryQueue::lose_everything`].
//! - Entries are stored already parsed (session, job, payload), so an entry
//!   with missing or unreadable fields cannot be written: only wrong
//!   payloads and tags can (which is what the seal guards against).
//! - `reclaim` scans the pending list until it has `count` entries or
//!   reaches its end (`XAUTOCLAIM` stops after `10 * count` entries).
//! - A consumer is "seen" when it reads, reclaims, claims or touches, and
//!   never forgotten (`XINFO CONSUMERS`' idle time, without `XGROUP
//!   DELCONSUMER`).
//! - Time is the process's monotonic clock plus an offset that tests move
//!   forward ([`MemoryQueue::advance`]) to make entries idle at once.
//! - Failures: [`MemoryQueue::set_down`] makes every call of every handle
//!   fail, as an unreachable server would; a [`link`](MemoryQueue::link)
//!   is a way in that can be cut alone (one worker cut off).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{BrokerError, Result};
use crate::queue::{Claim, Connect, Cursor, Entry, Outcome, Queue, RunSettings};
use crate::seal::DeadLetter;

/// A task entry as stored.
#[derive(Debug, Clone)]
struct Task {
    id: u64,
    session: String,
    job: Option<u64>,
    payload: Vec<u8>,
}

/// A delivered, unacknowledged entry of the group.
#[derive(Debug, Clone)]
struct Pending {
    consumer: String,
    since: Instant,
    deliveries: u64,
}

/// The consumer group.
#[derive(Debug, Default)]
struct Group {
    /// Id of the last entry handed out by a read of new entries.
    last_delivered: u64,
    /// Pending entries by id.
    pending: BTreeMap<u64, Pending>,
    /// When each consumer was last seen.
    seen: HashMap<String, Instant>,
}

/// Everything the broker holds.
#[derive(Debug, Default)]
struct Broker {
    /// Last id given to an entry (of any stream).
    seq: u64,
    settings: Option<RunSettings>,
    tasks: Vec<Task>,
    group: Option<Group>,
    results: Vec<(u64, Outcome)>,
    dead: Vec<(u64, Outcome)>,
    /// `<session>:<job>` -> the id of the entry holding the job.
    jobs: HashMap<String, String>,
    replays: u64,
    lease: Duration,
    /// Added to the clock (see [`MemoryQueue::advance`]).
    offset: Duration,
    /// Every call fails.
    down: bool,
}

impl Broker {
    fn now(&self) -> Instant {
        Instant::now() + self.offset
    }

    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn task(&self, id: u64) -> Option<&Task> {
        self.tasks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .and_then(|k| self.tasks.get(k))
    }

    /// The group, created (from the start of the stream) if it is missing
    /// and the run exists; `None` when the run is gone.
    fn group(&mut self) -> Option<&mut Group> {
        if self.group.is_none() && self.settings.is_some() {
            self.group = Some(Group::default());
        }
        self.group.as_mut()
    }

    fn ack(&mut self, id: &str) {
        if let (Some(id), Some(g)) = (parse_id(id), self.group.as_mut()) {
            g.pending.remove(&id);
        }
    }

    /// The entry `id` as delivered to `consumer` now (one more delivery).
    fn deliver(&mut self, id: u64, consumer: &str, now: Instant) -> Option<Entry> {
        let task = self.task(id)?.clone();
        let g = self.group.as_mut()?;
        let p = g.pending.entry(id).or_insert(Pending {
            consumer: consumer.to_string(),
            since: now,
            deliveries: 0,
        });
        p.consumer = consumer.to_string();
        p.since = now;
        p.deliveries += 1;
        Some(Entry {
            id: format_id(task.id),
            session: task.session,
            job: task.job,
            payload: task.payload,
            deliveries: p.deliveries,
        })
    }
}

fn format_id(id: u64) -> String {
    format!("{id}-0")
}

/// The number of an id this queue wrote (`<n>-0`); `None` for any other.
fn parse_id(id: &str) -> Option<u64> {
    id.strip_suffix("-0")?.parse().ok()
}

/// A way in to the queue: every handle opened through it fails once it is
/// cut.
#[derive(Debug, Default)]
struct Link {
    cut: AtomicBool,
}

/// An in-memory [`Queue`] holding one run; a handle (clone it, or
/// [`connect`](Connect::connect)) is a connection to the same broker.
///
/// ```
/// use std::time::Duration;
/// use papy_broker::{MemoryQueue, Queue, RunSettings};
/// let mut host = MemoryQueue::new();
/// let mut worker = host.clone();
/// host.start_run(&RunSettings {
///     session: "s".into(),
///     max_attempts: 3,
///     claim_after: Duration::from_secs(30),
///     done: false,
///     lease: Duration::ZERO,
///     key_check: String::new(),
/// })?;
/// host.add_tasks("s", &[(0, b"task".to_vec())])?;
/// let taken = worker.read_tasks("w", 10, Duration::ZERO)?;
/// assert_eq!(taken[0].deliveries, 1);
/// assert_eq!(host.pending().len(), 1);
/// # Ok::<(), papy_broker::BrokerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    broker: Arc<(Mutex<Broker>, Condvar)>,
    link: Arc<Link>,
    /// Where this handle's next `reclaim` starts.
    claim_cursor: u64,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        MemoryQueue::new()
    }
}

/// A pending entry, as [`MemoryQueue::pending`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// The entry's id.
    pub id: String,
    /// The consumer holding it.
    pub consumer: String,
    /// How many times it has been delivered.
    pub deliveries: u64,
}

impl MemoryQueue {
    /// An empty broker (no run started).
    pub fn new() -> MemoryQueue {
        MemoryQueue {
            broker: Arc::new((Mutex::new(Broker::default()), Condvar::new())),
            link: Arc::new(Link::default()),
            claim_cursor: 0,
        }
    }

    /// A way in to the same broker that can be cut alone
    /// ([`cut`](Self::cut)): hand it to one worker to cut that worker off.
    pub fn link(&self) -> MemoryQueue {
        MemoryQueue {
            broker: self.broker.clone(),
            link: Arc::new(Link::default()),
            claim_cursor: 0,
        }
    }

    /// Cuts (`true`) or mends (`false`) this handle's link: every call of
    /// every handle opened through it fails meanwhile.
    pub fn cut(&self, cut: bool) {
        self.link.cut.store(cut, Ordering::SeqCst);
    }

    fn state(&self) -> MutexGuard<'_, Broker> {
        self.broker.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The broker, unless it is down or this link is cut.
    fn open(&self) -> Result<MutexGuard<'_, Broker>> {
        let b = self.state();
        if b.down || self.link.cut.load(Ordering::SeqCst) {
            return Err(BrokerError::Broker(
                "connection refused (the memory queue is down)".into(),
            ));
        }
        Ok(b)
    }

    /// Wakes every blocked read.
    fn wake(&self) {
        self.broker.1.notify_all();
    }

    /// Runs `f` until it returns something non-empty or `block` has passed,
    /// waiting for a write in between.
    fn blocking<T>(
        &self,
        block: Duration,
        mut f: impl FnMut(&mut Broker) -> Vec<T>,
    ) -> Result<Vec<T>> {
        let deadline = Instant::now() + block;
        let mut b = self.open()?;
        loop {
            let got = f(&mut b);
            let left = deadline.saturating_duration_since(Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got);
            }
            b = self
                .broker
                .1
                .wait_timeout(b, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if b.down || self.link.cut.load(Ordering::SeqCst) {
                return Err(BrokerError::Broker("connection lost".into()));
            }
        }
    }

    /// Every call of every handle fails (`true`), as when the server is
    /// unreachable, or works again (`false`).
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
        self.wake();
    }

    /// Moves the queue's clock forward: every pending entry and consumer
    /// is `by` more idle.
    pub fn advance(&self, by: Duration) {
        self.state().offset += by;
        self.wake();
    }

    /// The broker forgets everything (a restart without persistence).
    pub fn lose_everything(&self) {
        let mut b = self.state();
        let (offset, seq) = (b.offset, b.seq);
        *b = Broker {
            offset,
            seq,
            ..Broker::default()
        };
        drop(b);
        self.wake();
    }

    /// The entries delivered and not acknowledged, by id.
    pub fn pending(&self) -> Vec<PendingEntry> {
        self.state()
            .group
            .as_ref()
            .map(|g| {
                g.pending
                    .iter()
                    .map(|(id, p)| PendingEntry {
                        id: format_id(*id),
                        consumer: p.consumer.clone(),
                        deliveries: p.deliveries,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every task entry on the stream, acknowledged or not (with delivery
    /// count 0: as read by `XRANGE`).
    pub fn tasks(&self) -> Vec<Entry> {
        self.state()
            .tasks
            .iter()
            .map(|t| Entry {
                id: format_id(t.id),
                session: t.session.clone(),
                job: t.job,
                payload: t.payload.clone(),
                deliveries: 0,
            })
            .collect()
    }

    /// Every entry of the result stream.
    pub fn results(&self) -> Vec<Outcome> {
        self.state()
            .results
            .iter()
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Every entry of the dead-letter stream.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state()
            .dead
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Dead { letter, .. } => Some(letter.clone()),
                Outcome::Result { .. } => None,
            })
            .collect()
    }

    /// Appends `outcome` to the result stream (a `Result`) or the
    /// dead-letter stream (a `Dead`), acknowledging nothing: what anyone
    /// who can write to the broker can do.
    pub fn append_outcome(&self, outcome: Outcome) {
        let mut b = self.state();
        let id = b.next_id();
        match outcome {
            o @ Outcome::Result { .. } => b.results.push((id, o)),
            o @ Outcome::Dead { .. } => b.dead.push((id, o)),
        }
        drop(b);
        self.wake();
    }

    /// The lease last set on the run's keys (zero: none).
    pub fn lease(&self) -> Duration {
        self.state().lease
    }
}

impl Connect for MemoryQueue {
    fn connect(&self) -> Result<Box<dyn Queue>> {
        drop(self.open()?);
        Ok(Box::new(MemoryQueue {
            claim_cursor: 0,
            ..self.clone()
        }))
    }

    fn describe(&self) -> String {
        "an in-memory queue".into()
    }
}

impl Queue for MemoryQueue {
    fn start_run(&mut self, settings: &RunSettings) -> Result<()> {
        let mut b = self.open()?;
        let (offset, seq) = (b.offset, b.seq);
        *b = Broker {
            offset,
            seq,
            settings: Some(settings.clone()),
            group: Some(Group::default()),
            lease: settings.lease,
            ..Broker::default()
        };
        drop(b);
        self.claim_cursor = 0;
        self.wake();
        Ok(())
    }

    fn settings(&mut self) -> Result<Option<RunSettings>> {
        Ok(self.open()?.settings.clone())
    }

    fn finish_run(&mut self, keep_for: Duration) -> Result<()> {
        let mut b = self.open()?;
        let keep_for = keep_for.max(Duration::from_secs(1));
        // HSET on a missing hash creates it, as in Redis.
        let s = b.settings.get_or_insert_with(|| RunSettings {
            session: String::new(),
            max_attempts: crate::DEFAULT_MAX_ATTEMPTS,
            claim_after: crate::DEFAULT_CLAIM_AFTER,
            done: true,
            lease: keep_for,
            key_check: String::new(),
        });
        s.done = true;
        s.lease = Duration::from_secs(keep_for.as_secs());
        b.lease = keep_for;
        Ok(())
    }

    fn renew(&mut self, lease: Duration) -> Result<()> {
        self.open()?.lease = lease;
        Ok(())
    }

    fn add_tasks(&mut self, session: &str, tasks: &[(u64, Vec<u8>)]) -> Result<()> {
        let mut b = self.open()?;
        for (job, payload) in tasks {
            let id = b.next_id();
            b.tasks.push(Task {
                id,
                session: session.to_string(),
                job: Some(*job),
                payload: payload.clone(),
            });
        }
        drop(b);
        self.wake();
        Ok(())
    }

    fn read_tasks(&mut self, consumer: &str, count: usize, block: Duration) -> Result<Vec<Entry>> {
        self.blocking(block, |b| {
            let now = b.now();
            let after = match b.group() {
                Some(g) => {
                    g.seen.insert(consumer.to_string(), now);
                    g.last_delivered
                }
                None => return Vec::new(),
            };
            let ids: Vec<u64> = b
                .tasks
                .iter()
                .filter(|t| t.id > after)
                .take(count.max(1))
                .map(|t| t.id)
                .collect();
            if let (Some(last), Some(g)) = (ids.last(), b.group.as_mut()) {
                g.last_delivered = *last;
            }
            ids.into_iter()
                .filter_map(|id| b.deliver(id, consumer, now))
                .collect()
        })
    }

    fn reclaim(&mut self, consumer: &str, min_idle: Duration, count: usize) -> Result<Vec<Entry>> {
        let start = self.claim_cursor;
        let (taken, next) = {
            let mut b = self.open()?;
            let now = b.now();
            let Some(g) = b.group() else {
                return Ok(Vec::new());
            };
            g.seen.insert(consumer.to_string(), now);
            let mut chosen = Vec::new();
            // Where the next call starts: 0 once the walk reached the end.
            let mut next = 0;
            for (id, p) in g.pending.range(start..) {
                if chosen.len() == count.max(1) {
                    next = *id;
                    break;
                }
                if now.saturating_duration_since(p.since) >= min_idle {
                    chosen.push(*id);
                }
            }
            let taken: Vec<Entry> = chosen
                .into_iter()
                .filter_map(|id| b.deliver(id, consumer, now))
                .collect();
            (taken, next)
        };
        self.claim_cursor = next;
        Ok(taken)
    }

    fn claim_stale(
        &mut self,
        consumer: &str,
        min_idle: Duration,
        max_attempts: u32,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let mut b = self.open()?;
        let now = b.now();
        let Some(g) = b.group.as_mut() else {
            return Ok(Vec::new());
        };
        let stale: Vec<u64> = g
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) >= min_idle)
            .take(count.max(1))
            .filter(|(_, p)| p.deliveries >= u64::from(max_attempts))
            .map(|(id, _)| *id)
            .collect();
        if !stale.is_empty() {
            g.seen.insert(consumer.to_string(), now);
        }
        Ok(stale
            .into_iter()
            .filter_map(|id| b.deliver(id, consumer, now))
            .collect())
    }

    fn claim_job(&mut self, entry: &Entry, job: u64) -> Result<Claim> {
        let mut b = self.open()?;
        let Some(session) = b.settings.as_ref().map(|s| s.session.clone()) else {
            return Ok(Claim::RunGone);
        };
        if entry.session == session {
            let field = format!("{}:{job}", entry.session);
            match b.jobs.get(&field) {
                None => {
                    b.jobs.insert(field, entry.id.clone());
                    return Ok(Claim::Mine);
                }
                Some(holder) if *holder == entry.id => return Ok(Claim::Mine),
                Some(_) => {}
            }
        }
        b.ack(&entry.id);
        b.replays += 1;
        Ok(Claim::Replay)
    }

    fn replays(&mut self) -> Result<u64> {
        Ok(self.open()?.replays)
    }

    fn touch(&mut self, consumer: &str, ids: &[String]) -> Result<()> {
        let mut b = self.open()?;
        let now = b.now();
        let ids: HashSet<u64> = ids.iter().filter_map(|i| parse_id(i)).collect();
        if let Some(g) = b.group.as_mut() {
            let mut touched = false;
            for (id, p) in &mut g.pending {
                if ids.contains(id) && p.consumer == consumer {
                    p.since = now;
                    touched = true;
                }
            }
            if touched {
                g.seen.insert(consumer.to_string(), now);
            }
        }
        Ok(())
    }

    fn complete(&mut self, entry: &Entry, result: &[u8]) -> Result<()> {
        let mut b = self.open()?;
        let id = b.next_id();
        b.results.push((
            id,
            Outcome::Result {
                session: entry.session.clone(),
                job: entry.job,
                payload: result.to_vec(),
            },
        ));
        b.ack(&entry.id);
        drop(b);
        self.wake();
        Ok(())
    }

    fn dead_letter(&mut self, entry: &Entry, letter: &DeadLetter) -> Result<()> {
        let mut b = self.open()?;
        let id = b.next_id();
        b.dead.push((
            id,
            Outcome::Dead {
                session: entry.session.clone(),
                letter: letter.clone(),
            },
        ));
        b.ack(&entry.id);
        drop(b);
        self.wake();
        Ok(())
    }

    fn active_workers(&mut self, active_within: Duration) -> Result<usize> {
        let b = self.open()?;
        let now = b.now();
        Ok(b.group.as_ref().map_or(0, |g| {
            g.seen
                .values()
                .filter(|t| now.saturating_duration_since(**t) < active_within)
                .count()
        }))
    }

    fn read_outcomes(
        &mut self,
        cursor: &mut Cursor,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Outcome>> {
        // A cursor this queue did not write reads from the start.
        let mut after_results = parse_id(&cursor.results).unwrap_or(0);
        let mut after_dead = parse_id(&cursor.dead).unwrap_or(0);
        let out = self.blocking(block, |b| {
            let mut out = Vec::new();
            let (from_results, from_dead) = (after_results, after_dead);
            for (id, o) in b
                .results
                .iter()
                .filter(|(id, _)| *id > from_results)
                .take(count.max(1))
            {
                after_results = *id;
                out.push(o.clone());
            }
            for (id, o) in b
                .dead
                .iter()
                .filter(|(id, _)| *id > from_dead)
                .take(count.max(1))
            {
                after_dead = *id;
                out.push(o.clone());
            }
            out
        })?;
        cursor.results = format_id(after_results);
        cursor.dead = format_id(after_dead);
        Ok(out)
    }
}
