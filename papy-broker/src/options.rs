//! How a broker worker serves ([`ServeOptions`]), and what it checks of
//! its run and its host while it serves: its key, whether the host that
//! started it is alive, how often it looks.

use std::time::Duration;

use papy_core::WorkerCommand;

use crate::error::{BrokerError, Result};
use crate::queue::RunSettings;
use crate::seal::Sealer;

/// How a broker worker serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The run whose tasks it takes.
    pub run: String,
    /// Its consumer name in the group (default: host name and process id).
    pub consumer: Option<String>,
    /// Exit once the host has marked the run done (local workers started by
    /// a pool); otherwise serve for ever, across runs with the same id.
    pub until_done: bool,
    /// Longest pause between two reconnection attempts.
    pub max_backoff: Duration,
    /// Exit when process `Some(pid)` no longer exists (a local worker whose
    /// host died must not serve for ever).
    pub parent: Option<u32>,
    /// The run's key (the host's: [`KEY_ENV`](crate::seal::KEY_ENV) or its
    /// `key_file`); required: entries without its tag are dead-lettered,
    /// never run.
    pub key: Option<String>,
    /// Relay each batch to a local stdio worker started with this command
    /// (any language: docs/protocol.md) instead of running it here: one
    /// child, owned by a process pool (its `Hello`, init, recycling and
    /// crash handling as in a local process pool). Serving with one takes
    /// the run's key and URL (`PAPY_BROKER_KEY`, `PAPY_REDIS_URL`) out of
    /// this process's environment, so that the child does not inherit them.
    pub relay: Option<WorkerCommand>,
    /// Most task entries held at once: the one being run and those read
    /// ahead of it (default [`READ_AHEAD`]). A worker reads the next
    /// entries, and claims their jobs, while it runs one: as many as cover
    /// the round trips an entry costs besides its run (measured), so that
    /// a worker far from its broker does not wait between entries, within
    /// this bound. An entry held is heartbeaten, and reclaimed by others
    /// if the worker dies, as the one it runs. 1: one entry at a time.
    pub read_ahead: usize,
}

/// The most entries a worker holds at once by default
/// ([`ServeOptions::read_ahead`]).
pub const READ_AHEAD: usize = 64;

impl ServeOptions {
    /// Serves run `run` for ever.
    pub fn new(run: impl Into<String>) -> ServeOptions {
        ServeOptions {
            run: run.into(),
            consumer: None,
            until_done: false,
            max_backoff: Duration::from_secs(5),
            parent: None,
            key: None,
            relay: None,
            read_ahead: READ_AHEAD,
        }
    }
}

/// Settings a worker uses before the host has written the run's.
pub(crate) fn default_settings() -> RunSettings {
    RunSettings {
        session: String::new(),
        max_attempts: crate::DEFAULT_MAX_ATTEMPTS,
        claim_after: crate::DEFAULT_CLAIM_AFTER,
        done: false,
        lease: Duration::ZERO,
        key_check: String::new(),
    }
}

/// Fails when this worker's key is not the one the run `s` was started
/// with: serving would dead-letter the run's real entries.
pub(crate) fn check_key(s: &RunSettings, sealer: &Sealer) -> Result<()> {
    if !s.key_check.is_empty() && s.key_check != sealer.check_value() {
        return Err(BrokerError::KeyMismatch(format!(
            "this worker's broker key is not the one run `{}` was started with; stopping (give it the host's {} or key file)",
            sealer.run,
            crate::seal::KEY_ENV
        )));
    }
    Ok(())
}

/// The host that started this local worker has died.
pub(crate) fn host_gone(opts: &ServeOptions) -> bool {
    opts.parent.is_some_and(|p| !alive(p))
}

/// Whether process `pid` exists (Unix: `kill(pid, 0)`; ESRCH means gone).
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        use rustix::process::{test_kill_process, Pid};
        // Not a pid kill(2) can ask about (0 and negatives name groups).
        let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return false;
        };
        let exists = test_kill_process(p) != Err(rustix::io::Errno::SRCH);
        // A killed host nobody has reaped yet is a zombie: gone too.
        exists
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, t)| t.starts_with(" Z")))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// How often a worker looks at the run's settings and for stale entries.
pub(crate) fn check_every(s: &RunSettings) -> Duration {
    (s.claim_after / 2).min(Duration::from_millis(250))
}
