//! [`Queue`] on a [`MemoryQueue`]: each operation as the Redis commands
//! it stands for would do it.

use std::time::Duration;

use super::broker::{format_id, parse_id, Broker, Group};
use super::MemoryQueue;
use crate::error::Result;
use crate::options::default_settings;
use crate::queue::{Claim, Cursor, Done, Entry, Outcome, Queue, RunSettings};
use crate::seal::DeadLetter;

impl Queue for MemoryQueue {
    fn start_run(&mut self, settings: &RunSettings) -> Result<()> {
        let mut b = self.open()?;
        *b = Broker {
            settings: Some(settings.clone()),
            group: Some(Group::default()),
            ..b.emptied()
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
        let s = b.settings.get_or_insert_with(default_settings);
        s.done = true;
        s.lease = Duration::from_secs(keep_for.as_secs());
        Ok(())
    }

    fn renew(&mut self, _lease: Duration) -> Result<()> {
        self.open().map(drop)
    }

    fn add_tasks(&mut self, session: &str, tasks: &[(u64, Vec<u8>)]) -> Result<()> {
        let mut b = self.open()?;
        for (job, payload) in tasks {
            let id = b.next_id();
            let entry = Entry {
                id: format_id(id),
                session: session.to_string(),
                job: Some(*job),
                payload: payload.clone(),
                deliveries: 0,
            };
            b.tasks.push((id, entry));
        }
        drop(b);
        self.wake();
        Ok(())
    }

    fn read_tasks(&mut self, consumer: &str, count: usize, block: Duration) -> Result<Vec<Entry>> {
        self.blocking(block, |b| {
            let now = b.now();
            let Some(g) = b.group() else {
                return Vec::new();
            };
            g.seen.insert(consumer.to_string(), now);
            let after = g.last_delivered;
            let ids: Vec<u64> = b
                .tasks
                .iter()
                .filter(|(id, _)| *id > after)
                .take(count.max(1))
                .map(|(id, _)| *id)
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
        let mut b = self.open()?;
        let now = b.now();
        let Some(g) = b.group() else {
            return Ok(Vec::new());
        };
        g.seen.insert(consumer.to_string(), now);
        let mut chosen = Vec::new();
        // Where the next call starts: 0 once the walk reached the end.
        let mut next = 0;
        for (id, p) in g.pending.range(self.claim_cursor..) {
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
        drop(b);
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

    fn touch(&mut self, consumer: &str, ids: &[String]) -> Result<Vec<String>> {
        let mut b = self.open()?;
        let now = b.now();
        let Some(g) = b.group.as_mut() else {
            return Ok(ids.to_vec());
        };
        let mut lost = Vec::new();
        for i in ids {
            match parse_id(i).and_then(|id| g.pending.get_mut(&id)) {
                Some(p) if p.consumer == consumer => p.since = now,
                _ => lost.push(i.clone()),
            }
        }
        if lost.len() < ids.len() {
            g.seen.insert(consumer.to_string(), now);
        }
        Ok(lost)
    }

    fn complete_all(&mut self, done: &[Done<'_>]) -> Result<()> {
        let mut b = self.open()?;
        for d in done {
            b.append(Outcome::Result {
                session: d.entry.session.clone(),
                job: d.entry.job,
                payload: d.result.to_vec(),
                busy: Some(d.busy),
            });
            b.ack(&d.entry.id);
        }
        drop(b);
        self.wake();
        Ok(())
    }

    fn dead_letter(&mut self, entry: &Entry, letter: &DeadLetter) -> Result<()> {
        let mut b = self.open()?;
        b.append(Outcome::Dead {
            session: entry.session.clone(),
            letter: letter.clone(),
        });
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
            read_after(&b.results, &mut after_results, count, &mut out);
            read_after(&b.dead, &mut after_dead, count, &mut out);
            out
        })?;
        cursor.results = format_id(after_results);
        cursor.dead = format_id(after_dead);
        Ok(out)
    }
}

/// Appends to `out` up to `count` entries of `stream` after id `after`,
/// moving `after` to the last one read.
fn read_after(stream: &[(u64, Outcome)], after: &mut u64, count: usize, out: &mut Vec<Outcome>) {
    let from = *after;
    for (id, o) in stream
        .iter()
        .filter(|(id, _)| *id > from)
        .take(count.max(1))
    {
        *after = *id;
        out.push(o.clone());
    }
}
