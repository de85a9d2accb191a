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
//! - Nothing expires, and key leases are not kept; a broker that loses
//!   everything is [`MemoryQueue::lose_everything`].
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
//!   is a way in that can be cut alone (one worker cut off) or paused (one
//!   worker stopped).
//!
//! The broker's state is in `broker.rs`, the [`Queue`] operations on it in
//! `commands.rs`.

mod broker;
mod commands;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use broker::{format_id, Broker};
use papy_core::sync::Monitor;

use crate::error::{BrokerError, Result};
use crate::queue::{Connect, Entry, Outcome, Queue};
use crate::seal::DeadLetter;

/// A way in to the queue: every handle opened through it fails once it is
/// cut.
#[derive(Debug, Default)]
struct Link {
    cut: AtomicBool,
    paused: AtomicBool,
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
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    broker: Arc<Monitor<Broker>>,
    link: Arc<Link>,
    /// Where this handle's next `reclaim` starts.
    claim_cursor: u64,
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
        MemoryQueue::default()
    }

    /// A way in to the same broker that can be cut alone
    /// ([`cut`](Self::cut)): hand it to one worker to cut that worker off.
    pub fn link(&self) -> MemoryQueue {
        MemoryQueue {
            broker: self.broker.clone(),
            ..MemoryQueue::default()
        }
    }

    /// Cuts (`true`) or mends (`false`) this handle's link: every call of
    /// every handle opened through it fails meanwhile.
    pub fn cut(&self, cut: bool) {
        self.link.cut.store(cut, Ordering::SeqCst);
    }

    /// Pauses (`true`) or resumes this handle's link: every call of every
    /// handle opened through it waits meanwhile, as the calls of a worker
    /// stopped with SIGSTOP would (nothing fails; time passes).
    pub fn pause(&self, paused: bool) {
        // Under the lock: a call about to wait does not miss the wake.
        let b = self.broker.lock();
        self.link.paused.store(paused, Ordering::SeqCst);
        drop(b);
        self.wake();
    }

    /// The broker, unless it is down or this link is cut (waiting while
    /// the link is paused).
    fn open(&self) -> Result<MutexGuard<'_, Broker>> {
        self.gate(
            self.broker.lock(),
            "connection refused (the memory queue is down)",
        )
    }

    /// `b` once this link is not paused; `Err(why)` when the broker is down
    /// or the link cut.
    fn gate<'a>(&self, mut b: MutexGuard<'a, Broker>, why: &str) -> Result<MutexGuard<'a, Broker>> {
        while self.link.paused.load(Ordering::SeqCst) {
            b = self.broker.wait(b);
        }
        if b.down || self.link.cut.load(Ordering::SeqCst) {
            return Err(BrokerError::Broker(why.into()));
        }
        Ok(b)
    }

    /// Wakes every blocked read.
    fn wake(&self) {
        self.broker.notify_all();
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
            b = self.gate(self.broker.wait_timeout(b, left), "connection lost")?;
        }
    }

    /// Every call of every handle fails (`true`), as when the server is
    /// unreachable, or works again (`false`).
    pub fn set_down(&self, down: bool) {
        self.broker.lock().down = down;
        self.wake();
    }

    /// Moves the queue's clock forward: every pending entry and consumer
    /// is `by` more idle.
    pub fn advance(&self, by: Duration) {
        self.broker.lock().offset += by;
        self.wake();
    }

    /// The broker forgets everything (a restart without persistence).
    pub fn lose_everything(&self) {
        let mut b = self.broker.lock();
        *b = b.emptied();
        drop(b);
        self.wake();
    }

    /// The entries delivered and not acknowledged, by id.
    pub fn pending(&self) -> Vec<PendingEntry> {
        let b = self.broker.lock();
        let pending = b.group.iter().flat_map(|g| &g.pending);
        pending
            .map(|(id, p)| PendingEntry {
                id: format_id(*id),
                consumer: p.consumer.clone(),
                deliveries: p.deliveries,
            })
            .collect()
    }

    /// Every task entry on the stream, that is every one not acknowledged
    /// yet (an answered entry is deleted, as on Redis), with delivery count
    /// 0: as read by `XRANGE`.
    pub fn tasks(&self) -> Vec<Entry> {
        let b = self.broker.lock();
        b.tasks.iter().map(|(_, e)| e.clone()).collect()
    }

    /// Every entry of the result stream.
    pub fn results(&self) -> Vec<Outcome> {
        let b = self.broker.lock();
        b.results.iter().map(|(_, o)| o.clone()).collect()
    }

    /// Every entry of the dead-letter stream.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let b = self.broker.lock();
        let letters = b.dead.iter().filter_map(|(_, o)| match o {
            Outcome::Dead { letter, .. } => Some(letter.clone()),
            Outcome::Result { .. } => None,
        });
        letters.collect()
    }

    /// Appends `outcome` to the result stream (a `Result`) or the
    /// dead-letter stream (a `Dead`), acknowledging nothing: what anyone
    /// who can write to the broker can do.
    pub fn append_outcome(&self, outcome: Outcome) {
        self.broker.lock().append(outcome);
        self.wake();
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
