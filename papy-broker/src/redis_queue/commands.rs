//! [`Queue`] on a [`RedisQueue`]: each operation as Redis commands.

use std::collections::HashMap;
use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamPendingCountReply, StreamReadReply};
use redis::Value;

use super::entries::{busy_of, field_string, job_of, payload_of, task_entry};
use super::scripts::{CLAIM_SCRIPT, RECLAIM_SCRIPT, TOUCH_SCRIPT, TRIM_SCRIPT};
use super::RedisQueue;
use crate::error::Result;
use crate::keys::GROUP;
use crate::queue::{Claim, Cursor, Done, Entry, Outcome, Queue, RunSettings};
use crate::seal::DeadLetter;

impl Queue for RedisQueue {
    fn start_run(&mut self, s: &RunSettings) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(&self.keys.all()[..]).ignore();
        pipe.hset_multiple(
            &self.keys.state,
            &[
                ("session", s.session.clone()),
                ("max_attempts", s.max_attempts.to_string()),
                ("claim_after_ms", s.claim_after.as_millis().to_string()),
                ("lease_s", s.lease.as_secs().to_string()),
                ("state", if s.done { "done" } else { "running" }.to_string()),
                ("key_check", s.key_check.clone()),
            ],
        )
        .ignore();
        Self::expire_on(&mut pipe, &[&self.keys.state], s.lease);
        pipe.query::<()>(&mut self.con)?;
        self.lease = s.lease;
        self.claim_cursor = "0-0".into();
        self.ensure_group()?;
        self.renew(s.lease)
    }

    fn settings(&mut self) -> Result<Option<RunSettings>> {
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&self.keys.state)
            .query(&mut self.con)?;
        if h.is_empty() {
            return Ok(None);
        }
        let num = |k: &str, d: u64| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        // Clamped as the builder clamps them (claim_after: at most a week).
        let attempts = u32::try_from(num("max_attempts", 3)).unwrap_or(u32::MAX);
        let claim_after = Duration::from_millis(num("claim_after_ms", 30_000));
        let week = Duration::from_secs(7 * 24 * 3600);
        let s = RunSettings {
            session: h.get("session").cloned().unwrap_or_default(),
            max_attempts: attempts.max(1),
            claim_after: claim_after.clamp(Duration::from_millis(10), week),
            done: h.get("state").is_some_and(|s| s == "done"),
            lease: Duration::from_secs(num("lease_s", 0).min(10 * 365 * 24 * 3600)),
            key_check: h.get("key_check").cloned().unwrap_or_default(),
        };
        self.lease = s.lease;
        Ok(Some(s))
    }

    fn finish_run(&mut self, keep_for: Duration) -> Result<()> {
        let keep_for = keep_for.max(Duration::from_secs(1));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&self.keys.state, "state", "done")
            .ignore()
            .hset(&self.keys.state, "lease_s", keep_for.as_secs())
            .ignore();
        Self::expire_on(&mut pipe, &self.keys.all(), keep_for);
        Ok(pipe.query::<()>(&mut self.con)?)
    }

    fn renew(&mut self, lease: Duration) -> Result<()> {
        let mut pipe = redis::pipe();
        // A write Redis refuses when it is at its `maxmemory` (EXPIRE is
        // not refused), so the host learns of it here even when it has
        // nothing to append and its workers cannot write a result. An
        // empty SETRANGE on a missing key stores nothing.
        pipe.cmd("SETRANGE")
            .arg(format!("papy:{}:probe", self.keys.run))
            .arg(0)
            .arg("")
            .ignore();
        Self::expire_on(&mut pipe, &self.keys.all(), lease);
        Ok(pipe.query::<()>(&mut self.con)?)
    }

    fn add_tasks(&mut self, session: &str, tasks: &[(u64, Vec<u8>)]) -> Result<()> {
        let mut pipe = redis::pipe();
        for (job, p) in tasks {
            Self::add_entry(&mut pipe, &self.keys.tasks, session, Some(*job), p, &[]);
        }
        Ok(pipe.query::<()>(&mut self.con)?)
    }

    fn read_tasks(&mut self, consumer: &str, count: usize, block: Duration) -> Result<Vec<Entry>> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.keys.tasks)
            .arg(">");
        let reply: Option<Option<StreamReadReply>> = self.with_group(&read)?;
        let Some(reply) = reply else {
            // The run is gone (or not started yet): wait as a read would.
            std::thread::sleep(block);
            return Ok(Vec::new());
        };
        Ok(reply
            .map(|r| r.keys)
            .unwrap_or_default()
            .iter()
            .flat_map(|k| k.ids.iter().map(|e| task_entry(e, 1)))
            .collect())
    }

    fn reclaim(&mut self, consumer: &str, min_idle: Duration, count: usize) -> Result<Vec<Entry>> {
        let mut reclaim = redis::cmd("EVAL");
        reclaim
            .arg(RECLAIM_SCRIPT)
            .arg(1)
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg(count.max(1));
        let reply: Option<Vec<Value>> = self.with_group(&reclaim)?;
        let Some([next, taken, counts]) = reply.and_then(|r| <[Value; 3]>::try_from(r).ok()) else {
            return Ok(Vec::new());
        };
        let claimed: StreamAutoClaimReply =
            redis::from_redis_value(&Value::Array(vec![next, taken]))?;
        let counts: Vec<u64> = redis::from_redis_value(&counts)?;
        self.claim_cursor = claimed.next_stream_id;
        Ok(claimed
            .claimed
            .iter()
            .zip(counts.into_iter().chain(std::iter::repeat(1)))
            .map(|(e, n)| task_entry(e, n))
            .collect())
    }

    fn claim_stale(
        &mut self,
        consumer: &str,
        min_idle: Duration,
        max_attempts: u32,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let idle = min_idle.as_millis() as u64;
        let r: redis::RedisResult<StreamPendingCountReply> = redis::cmd("XPENDING")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(count.max(1))
            .query(&mut self.con);
        let mut stale = match r {
            Ok(pending) => pending.ids,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        stale.retain(|p| p.times_delivered as u64 >= u64::from(max_attempts));
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        // XCLAIM with a minimum idle time: of the host and a worker racing
        // for the same entry, only one gets it.
        let mut c = redis::cmd("XCLAIM");
        c.arg(&self.keys.tasks).arg(GROUP).arg(consumer).arg(idle);
        let ids: Vec<&str> = stale.iter().map(|p| p.id.as_str()).collect();
        let claimed: redis::streams::StreamClaimReply = c.arg(ids).query(&mut self.con)?;
        // XCLAIM counted one more delivery.
        let delivered = |id: &str| stale.iter().find(|p| p.id == id).map(|p| p.times_delivered);
        Ok(claimed
            .ids
            .iter()
            .map(|e| task_entry(e, delivered(&e.id).unwrap_or(0) as u64 + 1))
            .collect())
    }

    fn claim_job(&mut self, entry: &Entry, job: u64) -> Result<Claim> {
        let mut claims = self.claim_jobs(&[(entry, job)])?;
        Ok(claims.pop().unwrap_or(Claim::RunGone))
    }

    fn claim_jobs(&mut self, claims: &[(&Entry, u64)]) -> Result<Vec<Claim>> {
        let secs = if self.lease.is_zero() {
            0
        } else {
            self.lease.as_secs().max(1)
        };
        let mut pipe = redis::pipe();
        for (entry, job) in claims {
            pipe.cmd("EVAL")
                .arg(CLAIM_SCRIPT)
                .arg(3)
                .arg(&self.keys.state)
                .arg(&self.keys.jobs)
                .arg(&self.keys.tasks)
                .arg(&entry.session)
                .arg(*job)
                .arg(&entry.id)
                .arg(GROUP)
                .arg(secs);
        }
        let codes: Vec<i64> = pipe.query(&mut self.con)?;
        Ok(codes
            .into_iter()
            .map(|r| match r {
                0 => Claim::Mine,
                1 => Claim::Replay,
                _ => Claim::RunGone,
            })
            .collect())
    }

    fn replays(&mut self) -> Result<u64> {
        let n: Option<u64> = redis::cmd("HGET")
            .arg(&self.keys.jobs)
            .arg("replays")
            .query(&mut self.con)?;
        Ok(n.unwrap_or(0))
    }

    fn touch(&mut self, consumer: &str, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // A slice is one argument per id.
        Ok(redis::cmd("EVAL")
            .arg(TOUCH_SCRIPT)
            .arg(1)
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(consumer)
            .arg(ids)
            .query(&mut self.con)?)
    }

    fn complete_all(&mut self, done: &[Done<'_>]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let results = self.keys.results.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for d in done {
            let busy = d.busy.as_micros().to_string();
            let extra = [("b", busy.as_bytes())];
            let (session, job) = (&d.entry.session, d.entry.job);
            Self::add_entry(&mut pipe, &results, session, job, d.result, &extra);
        }
        let ids: Vec<&str> = done.iter().map(|d| d.entry.id.as_str()).collect();
        self.settle(pipe, &results, &ids)
    }

    fn dead_letter(&mut self, entry: &Entry, letter: &DeadLetter) -> Result<()> {
        let dead = self.keys.dead.clone();
        let deliveries = letter.deliveries.to_string();
        let job = letter.job.map(|j| j.to_string()).unwrap_or_default();
        let extra = [
            ("entry", letter.entry.as_bytes()),
            ("n", deliveries.as_bytes()),
            ("why", letter.reason.as_bytes()),
            ("job", job.as_bytes()),
            ("t", letter.tag.as_bytes()),
        ];
        let mut pipe = redis::pipe();
        pipe.atomic();
        let (session, job) = (&entry.session, entry.job);
        Self::add_entry(&mut pipe, &dead, session, job, &entry.payload, &extra);
        self.settle(pipe, &dead, &[entry.id.as_str()])
    }

    fn active_workers(&mut self, active_within: Duration) -> Result<usize> {
        let r: redis::RedisResult<redis::streams::StreamInfoConsumersReply> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .query(&mut self.con);
        match r {
            Ok(reply) => Ok(reply
                .consumers
                .iter()
                .filter(|c| (c.idle as u128) < active_within.as_millis())
                .count()),
            Err(e) if e.code() == Some("NOGROUP") => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn read_outcomes(
        &mut self,
        cursor: &mut Cursor,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Outcome>> {
        let mut pipe = redis::pipe();
        // The run's host reads each result once: what it has read goes
        // before it reads on, so a long run's result stream holds what is
        // unread, not every batch of the run (dead letters stay, to
        // inspect); only while the run is still this host's session.
        if cursor.results != "0-0" && !cursor.session.is_empty() {
            pipe.cmd("EVAL")
                .arg(TRIM_SCRIPT)
                .arg(2)
                .arg(&self.keys.state)
                .arg(&self.keys.results)
                .arg(&cursor.session)
                .arg(&cursor.results)
                .ignore();
        }
        let (reply,): (Option<StreamReadReply>,) = pipe
            .cmd("XREAD")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.keys.results)
            .arg(&self.keys.dead)
            .arg(&cursor.results)
            .arg(&cursor.dead)
            .query(&mut self.con)?;
        let mut out = Vec::new();
        for k in reply.map(|r| r.keys).unwrap_or_default() {
            let dead = k.key == self.keys.dead;
            for e in &k.ids {
                // A malformed entry is logged and passed on with an empty
                // payload (the host fails its job if it can tell which);
                // the rest of the batch is read as usual.
                if dead {
                    cursor.dead = e.id.clone();
                    out.push(Outcome::Dead {
                        session: field_string(e, "s"),
                        letter: DeadLetter {
                            job: field_string(e, "job").parse().ok(),
                            entry: field_string(e, "entry"),
                            deliveries: field_string(e, "n").parse().unwrap_or(0),
                            reason: field_string(e, "why"),
                            tag: field_string(e, "t"),
                        },
                    });
                } else {
                    cursor.results = e.id.clone();
                    out.push(Outcome::Result {
                        session: field_string(e, "s"),
                        job: job_of(e),
                        payload: payload_of(e),
                        busy: busy_of(e),
                    });
                }
            }
        }
        Ok(out)
    }
}
