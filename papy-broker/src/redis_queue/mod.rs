//! [`Queue`] on Redis Streams (the `redis` crate's synchronous API).
//!
//! Commands used: `XADD` (tasks, results, dead letters), `XGROUP CREATE
//! ... MKSTREAM`, `XREADGROUP` (workers), `XREAD` (host), `XACK` with
//! `XDEL` (an answered task entry goes), `XTRIM MINID` (results the host
//! has read go),
//! `XAUTOCLAIM` + `XPENDING` (recovery with delivery counts), `XPENDING
//! IDLE` + `XCLAIM` (the host dead-letters entries nobody reclaims), a small
//! Lua script around `XCLAIM ... JUSTID` (heartbeats: resets the idle time
//! of entries the consumer still owns, without counting a delivery),
//! another that records which entry holds a job (replays are acknowledged
//! unrun), `HSET`/`HGETALL` (the run's settings), `DEL` and `EXPIRE` (a
//! lease on every key).
//!
//! The connection and its helpers are here; `entries.rs` reads stream
//! entries, `scripts.rs` holds the Lua scripts, `commands.rs` implements
//! [`Queue`](crate::Queue) with them.

mod commands;
mod entries;
mod scripts;

use std::time::Duration;

use redis::{Connection, RedisError};

use crate::error::{BrokerError, Result};
use crate::keys::{RunKeys, GROUP};
use crate::queue::{Connect, Queue};
use crate::url::{redact, Url};

/// One connection to Redis, bound to one run's keys.
pub struct RedisQueue {
    con: Connection,
    keys: RunKeys,
    /// Where the next `XAUTOCLAIM` starts (it walks the pending list).
    claim_cursor: String,
    /// The run's key lease, as last read from its settings (zero: none).
    lease: Duration,
}

papy_core::opaque_debug!(RedisQueue);

/// Opens [`RedisQueue`]s: a URL and a run. Its `Debug` hides the URL's
/// password.
#[derive(Debug, Clone)]
pub struct RedisConnector {
    url: Url,
    run: String,
}

impl RedisConnector {
    /// Connections to run `run` of the Redis at `url` (see [`RedisQueue::connect`]).
    pub fn new(url: &str, run: &str) -> RedisConnector {
        RedisConnector {
            url: Url(url.to_string()),
            run: run.to_string(),
        }
    }
}

impl Connect for RedisConnector {
    fn connect(&self) -> Result<Box<dyn Queue>> {
        Ok(Box::new(RedisQueue::connect(&self.url.0, &self.run)?))
    }

    fn describe(&self) -> String {
        redact(&self.url.0)
    }

    fn worker_url(&self) -> Option<&str> {
        Some(&self.url.0)
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
        // The error's text without the URL's password, in case it quotes it.
        let fail = |e: RedisError| {
            let mut text = e.to_string();
            if let Some(p) = password_of(url).filter(|p| !p.is_empty()) {
                text = text.replace(p, "***");
            }
            BrokerError::Broker(format!("cannot connect to {}: {text}", redact(url)))
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let con = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(fail)?;
        // Blocking reads wait at most a second or so; a server that does
        // not answer for much longer is treated as gone.
        let timeout = Some(Duration::from_secs(30));
        con.set_read_timeout(timeout).map_err(fail)?;
        con.set_write_timeout(timeout).map_err(fail)?;
        Ok(RedisQueue {
            con,
            keys: RunKeys::new(run),
            claim_cursor: "0-0".into(),
            lease: Duration::ZERO,
        })
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

    /// Runs `cmd`; if the group is missing (a new run reset the keys, or the
    /// server restarted) or the stream was deleted under a blocked read,
    /// creates it and runs `cmd` again, but only while the run's settings
    /// exist: a worker never recreates the streams of a run that expired or
    /// was never started (`None`: nothing to do).
    fn with_group<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<Option<T>> {
        match cmd.query(&mut self.con) {
            Err(e) if matches!(e.code(), Some("NOGROUP" | "UNBLOCKED")) => {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(&self.keys.state)
                    .query(&mut self.con)?;
                if !exists {
                    return Ok(None);
                }
                self.ensure_group()?;
                Ok(Some(cmd.query(&mut self.con)?))
            }
            other => Ok(Some(other?)),
        }
    }

    /// Adds to `pipe` an entry on `stream`: its `session`, its `job` id
    /// (empty if `None`), `payload` and the `extra` fields (a slice of pairs
    /// is written as field, value, field, value...).
    fn add_entry(
        pipe: &mut redis::Pipeline,
        stream: &str,
        session: &str,
        job: Option<u64>,
        payload: &[u8],
        extra: &[(&str, &[u8])],
    ) {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("s")
            .arg(session)
            .arg("j")
            .arg(job.map(|j| j.to_string()).unwrap_or_default())
            .arg("f")
            .arg(payload)
            .arg(extra)
            .ignore();
    }

    /// Runs `pipe` (outcome entries appended to `stream`, see
    /// [`add_entry`](Self::add_entry)) in one transaction with the
    /// acknowledgement and deletion of the task entries `ids` (an entry
    /// answered is never read again: a long run's task stream holds what is
    /// not answered yet, not every batch of the run) and the stream's lease
    /// (a late write must not leave a key without expiry).
    fn settle(&mut self, mut pipe: redis::Pipeline, stream: &str, ids: &[&str]) -> Result<()> {
        pipe.cmd("XACK")
            .arg(&self.keys.tasks)
            .arg(GROUP)
            .arg(ids)
            .ignore();
        pipe.cmd("XDEL").arg(&self.keys.tasks).arg(ids).ignore();
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
}

fn password_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    Some(userinfo.split_once(':').map_or(userinfo, |(_, p)| p))
}

#[cfg(test)]
mod tests {
    use super::password_of;

    #[test]
    fn finds_the_password_of_a_url() {
        assert_eq!(password_of("redis://:pw@h:1"), Some("pw"));
        assert_eq!(password_of("rediss://u:pw@h"), Some("pw"));
        assert_eq!(password_of("redis://h:1"), None);
        assert_eq!(password_of("redis://:a/b@c@h:1/0"), Some("a/b@c"));
    }
}
