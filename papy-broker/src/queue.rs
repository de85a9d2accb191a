//! The small broker abstraction the pool and the workers are written
//! against: a task stream read by a group of workers, a result stream read by
//! the host, a dead-letter stream, and the run's settings.
//!
//! [`RedisQueue`](crate::RedisQueue) implements it on Redis Streams; another
//! broker (NATS JetStream, a database) would implement the same few calls.

use std::time::Duration;

use crate::error::Result;
use crate::seal::DeadLetter;

/// A task entry as a worker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The broker's id of the entry.
    pub id: String,
    /// The host session that wrote it.
    pub session: String,
    /// The host's job number (the entry's `j` field), when readable: a
    /// result or dead letter carries it, so the host can fail the right job
    /// even when the payload is unusable.
    pub job: Option<u64>,
    /// The encoded `Task` frame (empty when the entry's payload field is
    /// missing or unreadable: the worker then dead-letters it).
    pub payload: Vec<u8>,
    /// How many times the entry has been delivered, this delivery included.
    pub deliveries: u64,
}

/// What the host reads back: a result, or a batch given up on.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A worker's result.
    Result {
        /// The host session the task came from.
        session: String,
        /// The host's job number, when readable.
        job: Option<u64>,
        /// The encoded `Result` frame (empty if unreadable).
        payload: Vec<u8>,
        /// The time the worker says it spent running the entry (`None`:
        /// not reported or unreadable). Not to be trusted: the host clamps
        /// it to the entry's round trip.
        busy: Option<Duration>,
    },
    /// A task entry moved to the dead-letter stream.
    Dead {
        /// The host session the task came from.
        session: String,
        /// What the letter says and its tag, as read (not checked yet, and
        /// its reason not bounded yet: the host checks the tag, which also
        /// bounds the reason, before it uses either).
        letter: DeadLetter,
    },
}

/// Whether the worker that took a task entry may run it: the first entry
/// that carries a job holds it (redeliveries of that entry run it again:
/// at least once), any other entry with the same job is a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This entry holds the job: run it.
    Mine,
    /// Another entry holds the job, or the entry is of another session than
    /// the run's: the entry has been acknowledged and counted, not run.
    Replay,
    /// The run's settings are gone: the entry is left pending (reclaimed,
    /// or dead-lettered, later), not run.
    RunGone,
}

/// Where the host's reading of the result and dead-letter streams is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Last result entry read.
    pub results: String,
    /// Last dead-letter entry read.
    pub dead: String,
    /// The session of the host reading (empty: none). The results it has
    /// read may be dropped from the broker only while the run is still
    /// this session's: a host another one replaced must not drop the new
    /// host's results.
    pub session: String,
}

impl Cursor {
    /// The start of the streams, read by the host of `session`.
    pub fn of(session: &str) -> Cursor {
        Cursor {
            results: "0-0".into(),
            dead: "0-0".into(),
            session: session.to_string(),
        }
    }
}

/// A run's settings, written by the host and read by its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// The host's session (results of other sessions are ignored).
    pub session: String,
    /// Deliveries of one entry before it is dead-lettered.
    pub max_attempts: u32,
    /// An entry held this long without a heartbeat is reclaimed.
    pub claim_after: Duration,
    /// The host has finished the run.
    pub done: bool,
    /// The lease of the run's keys: every write sets this expiry on the key
    /// it writes, and the host renews it while it runs (zero: no expiry).
    pub lease: Duration,
    /// The check value of the run's key ([`Sealer::check_value`](crate::seal::Sealer::check_value)):
    /// a worker whose key gives another value stops (empty: not written).
    pub key_check: String,
}

/// A task entry run, with its result ([`Queue::complete_all`]).
#[derive(Debug, Clone, Copy)]
pub struct Done<'a> {
    /// The task entry.
    pub entry: &'a Entry,
    /// The sealed `Result` frame.
    pub result: &'a [u8],
    /// The time the worker spent running it.
    pub busy: Duration,
}

/// A broker holding one run's streams.
///
/// # Errors
/// Every method fails when the broker is unreachable or refuses.
pub trait Queue: Send {
    /// Starts a run: forgets whatever the run's keys held, writes the
    /// settings and creates the consumer group.
    fn start_run(&mut self, settings: &RunSettings) -> Result<()>;

    /// The run's settings, `None` if no host has started it (or the broker
    /// lost it).
    fn settings(&mut self) -> Result<Option<RunSettings>>;

    /// Marks the run done and lets its keys expire after `keep_for`.
    fn finish_run(&mut self, keep_for: Duration) -> Result<()>;

    /// Sets the run's keys to expire after `lease` (the host renews this
    /// lease while it runs, so a dead host's keys go away by themselves).
    fn renew(&mut self, lease: Duration) -> Result<()>;

    /// Appends task entries of session `session`: (job number, encoded
    /// `Task` frame) pairs.
    fn add_tasks(&mut self, session: &str, tasks: &[(u64, Vec<u8>)]) -> Result<()>;

    /// Reads up to `count` new entries as `consumer`, waiting up to `block`.
    fn read_tasks(&mut self, consumer: &str, count: usize, block: Duration) -> Result<Vec<Entry>>;

    /// Takes over up to `count` entries that their holders have not touched
    /// for `min_idle` (dead workers'); each comes with its delivery count,
    /// this delivery included.
    fn reclaim(&mut self, consumer: &str, min_idle: Duration, count: usize) -> Result<Vec<Entry>>;

    /// For the host: takes over up to `count` entries idle longer than
    /// `min_idle` that have been delivered `max_attempts` times or more, to
    /// dead-letter them (the next reclaim would dead-letter them anyway;
    /// this way a run ends even when no worker is left to reclaim them).
    fn claim_stale(
        &mut self,
        consumer: &str,
        min_idle: Duration,
        max_attempts: u32,
        count: usize,
    ) -> Result<Vec<Entry>>;

    /// Before task entry `entry`, carrying job `job` (the id of its task
    /// frame; the entry's session and payload have been authenticated), is
    /// run or dead-lettered: records atomically that `entry` holds the job
    /// of its session, unless another entry already does or the session is
    /// not the run's; such a replay is acknowledged and counted
    /// ([`replays`](Self::replays)) instead.
    fn claim_job(&mut self, entry: &Entry, job: u64) -> Result<Claim>;

    /// [`claim_job`](Self::claim_job) for each (entry, job) pair, in one
    /// round trip where the broker allows it (a worker claims the entries
    /// it read ahead together).
    fn claim_jobs(&mut self, claims: &[(&Entry, u64)]) -> Result<Vec<Claim>> {
        claims.iter().map(|(e, j)| self.claim_job(e, *j)).collect()
    }

    /// How many task entries workers acknowledged without running them as
    /// replays ([`Claim::Replay`]) in this run.
    fn replays(&mut self) -> Result<u64>;

    /// Heartbeat: resets the idle time of the entries among `ids` that
    /// `consumer` still holds (never taking over another's), so they are
    /// not reclaimed while it works on them; returns the others, those it
    /// no longer holds (taken over, or acknowledged): not to be run.
    fn touch(&mut self, consumer: &str, ids: &[String]) -> Result<Vec<String>>;

    /// Appends a result, with `busy`, the time the worker spent running the
    /// entry (the host's adaptive batching measures items by it, not by the
    /// round trip), and acknowledges the task entry, atomically.
    fn complete(&mut self, entry: &Entry, result: &[u8], busy: Duration) -> Result<()> {
        self.complete_all(&[Done {
            entry,
            result,
            busy,
        }])
    }

    /// [`complete`](Self::complete) for each, atomically and in one round
    /// trip (a worker completes together the entries it finished while the
    /// previous completion travelled).
    fn complete_all(&mut self, done: &[Done<'_>]) -> Result<()>;

    /// Moves a task entry to the dead-letter stream (and acknowledges it),
    /// with `letter` (made by [`Sealer::dead_letter`](crate::seal::Sealer::dead_letter)
    /// for this entry).
    fn dead_letter(&mut self, entry: &Entry, letter: &DeadLetter) -> Result<()>;

    /// How many workers read the task stream: consumers of the group seen
    /// within `active_within` (dead workers drop out of the count).
    fn active_workers(&mut self, active_within: Duration) -> Result<usize>;

    /// Reads results and dead letters after `cursor` (advancing it), waiting
    /// up to `block`.
    fn read_outcomes(
        &mut self,
        cursor: &mut Cursor,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Outcome>>;
}

/// Opens connections to one run's [`Queue`]: the host opens one per thread
/// (and again after a failure), a worker one for its reads and one for its
/// heartbeats. [`RedisConnector`](crate::RedisConnector) connects to Redis;
/// [`MemoryQueue`](crate::MemoryQueue) hands out handles to one in-process
/// queue.
pub trait Connect: Send + Sync {
    /// A new connection.
    ///
    /// # Errors
    /// The broker is unreachable or refuses.
    fn connect(&self) -> Result<Box<dyn Queue>>;

    /// Where the connections go, for messages (never a password).
    fn describe(&self) -> String;

    /// The URL that worker processes started by a pool
    /// ([`BrokerPoolBuilder::local_workers`](crate::BrokerPoolBuilder::local_workers))
    /// connect to; `None` when the queue cannot be reached from another
    /// process (the pool then refuses local workers).
    fn worker_url(&self) -> Option<&str> {
        None
    }
}
