//! [`Queue`] on Redis Streams (the `redis` crate's synchronous API).
//!
//! Commands used: `XADD` (tasks, results, dead letters), `XGROUP CREATE
//! ... MKSTREAM`, `XREADGROUP` (workers), `XREAD` (host), `XACK`,
//! `XAUTOCLAIM` + `XPENDING` (recovery with delivery counts), `XPENDING
//! IDLE` + `XCLAIM` (the host dead-letters entries nobody reclaims), a small
//! Lua script around `XCLAIM ... JUSTID` (heartbeats: resets the idle time
//! of entries the consumer still owns, without counting a delivery),
//! another that records which entry holds a job (replays are acknowledged
//! unrun), `HSET`/`HGETALL` (the run's settings), `DEL` and `EXPIRE` (a
//! lease on every key).

use std::collections::HashMap;
use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{Connection, RedisError, Value};

use crate::error::{BrokerError, Result};
use crate::keys::{RunKeys, GROUP};
use crate::queue::{Claim, Connect, Cursor, Entry, Outcome, Queue, RunSettings};
use crate::seal::DeadLetter;
use crate::url::redact;
use papy_core::error::quote_peer;

/// One connection to Redis, bound to one run's keys.
pub struct RedisQueue {
    con: Connection,
    keys: RunKeys,
    /// Where the next `XAUTOCLAIM` starts (it walks the pending list).
    claim_cursor: String,
    /// The run's key lease, as last read from its settings (zero: none).
    lease: Duration,
}

/// Opens [`RedisQueue`]s: a URL and a run.
#[derive(Clone)]
pub struct RedisConnector {
    url: String,
    run: String,
}

/// Shows the URL with its password hidden.
impl std::fmt::Debug for RedisConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnector")
            .field("url", &redact(&self.url))
            .field("run", &self.run)
            .finish()
    }
}

impl RedisConnector {
    /// Connections to run `run` of the Redis at `url` (see [`RedisQueue::connect`]).
    pub fn new(url: &str, run: &str) -> RedisConnector {
        RedisConnector {
            url: url.to_string(),
            run: run.to_string(),
        }
    }
}

impl Connect for RedisConnector {
    fn connect(&self) -> Result<Box<dyn Queue>> {
        Ok(Box::new(RedisQueue::connect(&self.url, &self.run)?))
    }

    fn describe(&self) -> String {
        redact(&self.url)
    }

    fn worker_url(&self) -> Option<&str> {
        Some(&self.url)
    }
}

/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl RedisQueue {
    /// Connects to `url` (`redis://`, `rediss://` for TLS, `redis+unix://`)
    /// for run `run`.
    ///
    /// # Errors
    /// A bad URL or an unreachable server; the message holds the URL with
    /// its password hidden.
    ///
    /// ```no_run
    /// use papy_broker::RedisQueue;
    /// let q = RedisQueue::connect("redis://:secret@127.0.0.1:6379", "run-1")?;
    /// # Ok::<(), papy_broker::BrokerError>(())
    /// ```
    pub fn connect(url: &str, run: &str) -> Result<RedisQueue> {
        let fail = |e: RedisError| {
            BrokerError::Broker(format!(
                "cannot connect to {}: {}",
                redact(url),
                scrub(&e, url)
            ))
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let con = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(fail)?;
        // Blocking reads wait at most a second or so; a server that does
        // not answer for much longer is treated as gone.
        con.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(fail)?;
        con.set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(fail)?;
        Ok(RedisQueue {
            con,
            keys: RunKeys::new(run),
            claim_cursor: "0-0".into(),
            lease: Duration::ZERO,
        })
    }

    /// The run's keys.
    pub fn keys(&self) -> &RunKeys {
        &self.keys
    }

    /// The underlying connection (for inspection, e.g. `XRANGE` of the
    /// dead-letter stream in tests).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.con
    }

    pub(crate) fn ensure_group(&mut self) -> Result<()> {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut self.con);
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Runs `f`; if the group is missing (a new run reset the keys, or the
    /// server restarted) or the stream was deleted under a blocked read,
    /// creates it and runs `f` again, but only while the run's settings
    /// exist: a worker never recreates the streams of a run that expired or
    /// was never started (`None`: nothing to do).
    fn with_group<T>(
        &mut self,
        f: impl Fn(&mut Self) -> redis::RedisResult<T>,
    ) -> Result<Option<T>> {
        match f(self) {
            Err(e) if matches!(e.code(), Some("NOGROUP" | "UNBLOCKED")) => {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(&self.keys.state)
                    .query(&mut self.con)?;
                if !exists {
                    return Ok(None);
                }
                self.ensure_group()?;
                Ok(Some(f(self)?))
            }
            other => Ok(Some(other?)),
        }
    }

    /// `EXPIRE key lease` on `pipe` for each key, if there is a lease.
    /// In one transaction: appends an outcome entry for `entry` to
    /// `stream` (session, job id, payload and `extra` fields), acknowledges
    /// the task entry, and keeps the stream's lease (a late write must not
    /// leave a key without expiry).
    fn settle(
        &mut self,
        entry: &Entry,
        stream: &str,
        payload: &[u8],
        extra: &[(&str, &[u8])],
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        let add = pipe
            .atomic()
            .cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("s")
            .arg(&entry.session)
            .arg("j")
            .arg(entry.job.map(|j| j.to_string()).unwrap_or_default())
            .arg("f")
            .arg(payload);
        for (k, v) in extra {
            add.arg(*k).arg(*v);
        }
        add.ignore()
            .cmd("XACK")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(&entry.id)
            .ignore();
        Self::expire_on(&mut pipe, &[stream], self.lease);
        Ok(pipe.query::<()>(&mut self.con)?)
    }

    fn expire_on(pipe: &mut redis::Pipeline, keys: &[&str], lease: Duration) {
        if lease.is_zero() {
            return;
        }
        let secs = i64::try_from(lease.as_secs().max(1)).unwrap_or(i64::MAX);
        for k in keys {
            pipe.expire(*k, secs).ignore();
        }
    }

    fn pending_counts(&mut self, ids: &[String]) -> Result<HashMap<String, u64>> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(&self.keys.tasks)
                .arg(GROUP)
                .arg(id)
                .arg(id)
                .arg(1);
        }
        let replies: Vec<StreamPendingCountReply> = pipe.query(&mut self.con)?;
        Ok(replies
            .into_iter()
            .flat_map(|r| r.ids)
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }
}

/// The error's text without the URL's password, in case a message quotes it.
fn scrub(e: &RedisError, url: &str) -> String {
    let text = e.to_string();
    match password_of(url) {
        Some(p) if !p.is_empty() => text.replace(&p, "***"),
        _ => text,
    }
}

fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    Some(
        userinfo
            .split_once(':')
            .map_or(userinfo, |(_, p)| p)
            .to_string(),
    )
}

fn field_bytes(e: &StreamId, name: &str) -> Result<Vec<u8>> {
    match e.map.get(name) {
        Some(v) => redis::from_redis_value::<Vec<u8>>(v).map_err(|err| BrokerError::Malformed {
            id: e.id.clone(),
            reason: format!("field `{name}`: {}", quote_peer(&err.to_string())),
        }),
        None => Err(BrokerError::Malformed {
            id: e.id.clone(),
            reason: format!("no field `{name}`"),
        }),
    }
}

/// The entry's payload, or an empty one (logged) when it is unreadable: an
/// empty payload is not a frame, so whoever reads it fails just that entry.
fn payload_of(e: &StreamId) -> Vec<u8> {
    field_bytes(e, "f").unwrap_or_else(|err| {
        tracing::warn!("{err}");
        Vec::new()
    })
}

fn field_string(e: &StreamId, name: &str) -> String {
    e.map
        .get(name)
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .unwrap_or_default()
}

fn job_of(e: &StreamId) -> Option<u64> {
    field_string(e, "j").parse().ok()
}

fn task_entry(e: &StreamId, deliveries: u64) -> Entry {
    Entry {
        id: e.id.clone(),
        session: field_string(e, "s"),
        job: job_of(e),
        payload: payload_of(e),
        deliveries,
    }
}

/// Heartbeat: for each id (ARGV[3..]) still pending with consumer ARGV[2],
/// resets its idle time (`XCLAIM ... JUSTID` counts no delivery); entries
/// another consumer has taken over are left alone.
const TOUCH_SCRIPT: &str = r"
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
";

/// Claims a job for a task entry (see [`Queue::claim_job`]). KEYS: the
/// run's settings, its jobs hash, its task stream; ARGV: the entry's
/// session, the job, the entry's id, the group, the lease in seconds (0:
/// none). Returns 0 (the entry holds the job), 1 (a replay: acknowledged
/// and counted) or 2 (the run is gone: nothing written).
const CLAIM_SCRIPT: &str = r"
local s = redis.call('HGET', KEYS[1], 'session')
if not s then return 2 end
local lease = tonumber(ARGV[5])
local field = ARGV[1] .. ':' .. ARGV[2]
if s == ARGV[1] then
  local holder = redis.call('HGET', KEYS[2], field)
  if not holder then
    redis.call('HSET', KEYS[2], field, ARGV[3])
    if lease > 0 then redis.call('EXPIRE', KEYS[2], lease) end
    return 0
  end
  if holder == ARGV[3] then return 0 end
end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'replays', 1)
if lease > 0 then redis.call('EXPIRE', KEYS[2], lease) end
return 1
";

/// Settings as the builder clamps them.
fn clamp_max_attempts(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

fn clamp_claim_after(ms: u64) -> Duration {
    Duration::from_millis(ms).clamp(
        Duration::from_millis(10),
        Duration::from_secs(7 * 24 * 3600),
    )
}

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
        let s = RunSettings {
            session: h.get("session").cloned().unwrap_or_default(),
            max_attempts: clamp_max_attempts(num("max_attempts", 3)),
            claim_after: clamp_claim_after(num("claim_after_ms", 30_000)),
            done: h.get("state").is_some_and(|s| s == "done"),
            lease: Duration::from_secs(num("lease_s", 0).min(10 * 365 * 24 * 3600)),
            key_check: h.get("key_check").cloned().unwrap_or_default(),
        };
        self.lease = s.lease;
        Ok(Some(s))
    }

    fn finish_run(&mut self, keep_for: Duration) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&self.keys.state, "state", "done")
            .ignore()
            .hset(&self.keys.state, "lease_s", keep_for.as_secs().max(1))
            .ignore();
        Self::expire_on(
            &mut pipe,
            &self.keys.all(),
            keep_for.max(Duration::from_secs(1)),
        );
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
            pipe.cmd("XADD")
                .arg(&self.keys.tasks)
                .arg("*")
                .arg("s")
                .arg(session)
                .arg("j")
                .arg(*job)
                .arg("f")
                .arg(p.as_slice())
                .ignore();
        }
        Ok(pipe.query::<()>(&mut self.con)?)
    }

    fn read_tasks(&mut self, consumer: &str, count: usize, block: Duration) -> Result<Vec<Entry>> {
        let tasks = self.keys.tasks.clone();
        let reply: Option<Option<StreamReadReply>> = self.with_group(|q| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(count.max(1))
                .arg("BLOCK")
                .arg(block.as_millis().max(1) as u64)
                .arg("STREAMS")
                .arg(&tasks)
                .arg(">")
                .query(&mut q.con)
        })?;
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
        let tasks = self.keys.tasks.clone();
        let start = self.claim_cursor.clone();
        let reply: Option<StreamAutoClaimReply> = self.with_group(|q| {
            redis::cmd("XAUTOCLAIM")
                .arg(&tasks)
                .arg(GROUP)
                .arg(consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(count.max(1))
                .query(&mut q.con)
        })?;
        let Some(reply) = reply else {
            return Ok(Vec::new());
        };
        self.claim_cursor = reply.next_stream_id.clone();
        // Entries deleted from the stream while pending cannot run: drop them.
        if !reply.deleted_ids.is_empty() {
            let mut ack = redis::cmd("XACK");
            ack.arg(&tasks).arg(GROUP);
            for id in &reply.deleted_ids {
                ack.arg(id);
            }
            ack.query::<()>(&mut self.con)?;
        }
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = reply.claimed.iter().map(|e| e.id.clone()).collect();
        let counts = self.pending_counts(&ids)?;
        Ok(reply
            .claimed
            .iter()
            .map(|e| task_entry(e, counts.get(&e.id).copied().unwrap_or(1)))
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
        let pending = match r {
            Ok(p) => p,
            Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let stale: Vec<String> = pending
            .ids
            .into_iter()
            .filter(|p| p.times_delivered as u64 >= u64::from(max_attempts))
            .map(|p| p.id)
            .collect();
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        // XCLAIM with a minimum idle time: of the host and a worker racing
        // for the same entry, only one gets it.
        let mut c = redis::cmd("XCLAIM");
        c.arg(&self.keys.tasks).arg(GROUP).arg(consumer).arg(idle);
        for id in &stale {
            c.arg(id);
        }
        let claimed: redis::streams::StreamClaimReply = c.query(&mut self.con)?;
        let ids: Vec<String> = claimed.ids.iter().map(|e| e.id.clone()).collect();
        let counts = self.pending_counts(&ids)?;
        Ok(claimed
            .ids
            .iter()
            .map(|e| task_entry(e, counts.get(&e.id).copied().unwrap_or(1)))
            .collect())
    }

    fn claim_job(&mut self, entry: &Entry, job: u64) -> Result<Claim> {
        let secs = if self.lease.is_zero() {
            0
        } else {
            self.lease.as_secs().max(1)
        };
        let r: i64 = redis::cmd("EVAL")
            .arg(CLAIM_SCRIPT)
            .arg(3)
            .arg(&self.keys.state)
            .arg(&self.keys.jobs)
            .arg(&self.keys.tasks)
            .arg(&entry.session)
            .arg(job)
            .arg(&entry.id)
            .arg(GROUP)
            .arg(secs)
            .query(&mut self.con)?;
        Ok(match r {
            0 => Claim::Mine,
            1 => Claim::Replay,
            _ => Claim::RunGone,
        })
    }

    fn replays(&mut self) -> Result<u64> {
        let n: Option<u64> = redis::cmd("HGET")
            .arg(&self.keys.jobs)
            .arg("replays")
            .query(&mut self.con)?;
        Ok(n.unwrap_or(0))
    }

    fn touch(&mut self, consumer: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = redis::cmd("EVAL");
        c.arg(TOUCH_SCRIPT)
            .arg(1)
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(consumer);
        for id in ids {
            c.arg(id);
        }
        c.query::<Value>(&mut self.con)?;
        Ok(())
    }

    fn complete(&mut self, entry: &Entry, result: &[u8]) -> Result<()> {
        let results = self.keys.results.clone();
        self.settle(entry, &results, result, &[])
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
        self.settle(entry, &dead, entry.payload.as_slice(), &extra)
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
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
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
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::password_of;

    #[test]
    fn finds_the_password_of_a_url() {
        assert_eq!(password_of("redis://:pw@h:1").as_deref(), Some("pw"));
        assert_eq!(password_of("rediss://u:pw@h").as_deref(), Some("pw"));
        assert_eq!(password_of("redis://h:1"), None);
        assert_eq!(
            password_of("redis://:a/b@c@h:1/0").as_deref(),
            Some("a/b@c")
        );
    }
}
