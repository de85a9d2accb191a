//! The in-memory broker's state: one run's streams, its consumer group
//! with the pending entries, and the run's hashes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::queue::{Entry, Outcome, RunSettings};

/// A delivered, unacknowledged entry of the group.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) consumer: String,
    pub(super) since: Instant,
    pub(super) deliveries: u64,
}

/// The consumer group.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// Id of the last entry handed out by a read of new entries.
    pub(super) last_delivered: u64,
    /// Pending entries by id.
    pub(super) pending: BTreeMap<u64, Pending>,
    /// When each consumer was last seen.
    pub(super) seen: HashMap<String, Instant>,
}

/// Everything the broker holds.
#[derive(Debug, Default)]
pub(super) struct Broker {
    /// Last id given to an entry (of any stream).
    pub(super) seq: u64,
    pub(super) settings: Option<RunSettings>,
    /// Task entries by id, as `XRANGE` reads them (delivery count 0);
    /// an acknowledged entry is deleted.
    pub(super) tasks: Vec<(u64, Entry)>,
    pub(super) group: Option<Group>,
    pub(super) results: Vec<(u64, Outcome)>,
    pub(super) dead: Vec<(u64, Outcome)>,
    /// `<session>:<job>` -> the id of the entry holding the job.
    pub(super) jobs: HashMap<String, String>,
    pub(super) replays: u64,
    /// Added to the clock (see [`MemoryQueue::advance`]).
    pub(super) offset: Duration,
    /// Every call fails.
    pub(super) down: bool,
}

impl Broker {
    pub(super) fn now(&self) -> Instant {
        Instant::now() + self.offset
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// An empty broker that keeps this one's clock and ids (a restart, or
    /// a new run).
    pub(super) fn emptied(&self) -> Broker {
        Broker {
            offset: self.offset,
            seq: self.seq,
            ..Broker::default()
        }
    }

    /// Appends `o` to the result stream (a `Result`) or the dead-letter
    /// stream (a `Dead`).
    pub(super) fn append(&mut self, o: Outcome) {
        let id = self.next_id();
        match o {
            Outcome::Result { .. } => self.results.push((id, o)),
            Outcome::Dead { .. } => self.dead.push((id, o)),
        }
    }

    /// The group, created (from the start of the stream) if it is missing
    /// and the run exists; `None` when the run is gone.
    pub(super) fn group(&mut self) -> Option<&mut Group> {
        if self.group.is_none() && self.settings.is_some() {
            self.group = Some(Group::default());
        }
        self.group.as_mut()
    }

    /// Acknowledges the task entry `id` and deletes it, as the Redis queue
    /// does (`XACK` with `XDEL`): nothing may read an answered entry again.
    pub(super) fn ack(&mut self, id: &str) {
        let Some(id) = parse_id(id) else {
            return;
        };
        if let Some(g) = self.group.as_mut() {
            g.pending.remove(&id);
        }
        if let Ok(k) = self.tasks.binary_search_by_key(&id, |(n, _)| *n) {
            self.tasks.remove(k);
        }
    }

    /// The entry `id` as delivered to `consumer` now (one more delivery).
    pub(super) fn deliver(&mut self, id: u64, consumer: &str, now: Instant) -> Option<Entry> {
        let k = self.tasks.binary_search_by_key(&id, |(n, _)| *n).ok()?;
        let task = self.tasks[k].1.clone();
        let g = self.group.as_mut()?;
        let deliveries = g.pending.get(&id).map_or(0, |p| p.deliveries) + 1;
        let p = Pending {
            consumer: consumer.to_string(),
            since: now,
            deliveries,
        };
        g.pending.insert(id, p);
        Some(Entry { deliveries, ..task })
    }
}

pub(super) fn format_id(id: u64) -> String {
    format!("{id}-0")
}

/// The number of an id this queue wrote (`<n>-0`); `None` for any other.
pub(super) fn parse_id(id: &str) -> Option<u64> {
    id.strip_suffix("-0")?.parse().ok()
}
