//! The worker side: `papy worker --redis URL --run RUN` (and
//! [`worker_main`] for a program's own binary) reads task entries in the
//! run's consumer group, runs them exactly as a process worker would (or
//! relays them to a local stdio worker: `relay.rs`), appends the results
//! and acknowledges the entries. Its options and the reconnection loop are
//! here; a connection's worth of serving (reading ahead, running, writing
//! results, in three threads) is `session.rs`.
//!
//! Before it runs an entry, a worker records that the entry holds its job
//! ([`Queue::claim_jobs`](crate::Queue::claim_jobs), `admit.rs`): a copy of
//! a sealed entry appended again (by whoever can write to the stream, or by
//! the host after a reconnection) is acknowledged and counted, not run; the
//! entry that holds the job runs again when it is redelivered.
//!
//! Recovery: every check interval a worker takes over one entry that a dead
//! worker left pending longer than `claim_after` (`XAUTOCLAIM ... COUNT
//! 1`), and moves an entry delivered more than `max_attempts` times to the
//! dead-letter stream instead of running it once more. A lost connection
//! is retried with exponential back-off, for ever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use papy_core::WorkerCommand;

use crate::error::{BrokerError, Result};
use crate::queue::{Connect, RunSettings};
use crate::redis_queue::RedisConnector;
use crate::relay::Runner;
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

/// This process's consumer name.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// Serves run `opts.run` on the broker at `url`, reconnecting with
/// back-off whenever the connection fails; returns when the run is done
/// (with `until_done`) and never otherwise.
///
/// # Errors
/// None in practice (connection errors are retried); kept for brokers whose
/// failures are final.
///
/// ```no_run
/// use papy_broker::{serve, ServeOptions};
/// serve("redis://127.0.0.1:6379", &ServeOptions::new("nightly"))?;
/// # Ok::<(), papy_broker::BrokerError>(())
/// ```
pub fn serve(url: &str, opts: &ServeOptions) -> Result<()> {
    serve_on(Arc::new(RedisConnector::new(url, &opts.run)), opts)
}

/// Serves run `opts.run` on the queue `connect` opens (another broker than
/// Redis, or a [`MemoryQueue`](crate::MemoryQueue) in tests), as [`serve`]
/// does: reconnects with back-off whenever a call fails; returns when the
/// run is done (with `until_done`) and never otherwise.
///
/// # Errors
/// No key in `opts`, this worker's key is not the run's, or the relay's
/// process pool cannot start.
pub fn serve_on(connect: Arc<dyn Connect>, opts: &ServeOptions) -> Result<()> {
    let Some(key) = opts.key.as_deref() else {
        return Err(BrokerError::Config(format!(
            "no broker key: give the worker the run's key in {} or with --key-file (entries are authenticated; see docs/security.md)",
            crate::seal::KEY_ENV
        )));
    };
    let sealer = Sealer::new(key, &opts.run)?;
    let consumer = opts.consumer.clone().unwrap_or_else(consumer_name);
    if opts.relay.is_some() {
        // The relayed child runs item data: whoever holds the key can forge
        // entries, and the URL may hold a password. Both were read already.
        std::env::remove_var(crate::seal::KEY_ENV);
        std::env::remove_var(URL_ENV);
    }
    let mut runner = Runner::new(opts.relay.as_ref())?;
    let mut backoff = Duration::from_millis(100);
    loop {
        if host_gone(opts) {
            return Ok(());
        }
        let started = Instant::now();
        match crate::session::session(&connect, opts, &sealer, &consumer, &mut runner) {
            Ok(()) => return Ok(()),
            Err(e @ BrokerError::KeyMismatch(_)) => return Err(e),
            Err(e) => {
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(100);
                }
                tracing::warn!(
                    "papy worker {consumer} on {}: {e}; reconnecting in {backoff:?}",
                    connect.describe()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }
}

/// Fails when this worker's key is not the one the run `s` was started
/// with: serving would dead-letter the run's real entries.
pub(crate) fn check_key(s: &RunSettings, sealer: &Sealer) -> Result<()> {
    if !s.key_check.is_empty() && s.key_check != sealer.check_value() {
        return Err(BrokerError::KeyMismatch(format!(
            "this worker's broker key is not the one run `{}` was started with; stopping (give it the host's {} or key file)",
            sealer.run(),
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
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: kill(2) with signal 0 only checks that the process exists;
        // no signal is sent and no memory is touched.
        let r = unsafe { libc::kill(pid, 0) };
        let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
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

/// This process's parent (Unix), to notice that a host died.
pub fn parent_pid() -> Option<u32> {
    #[cfg(unix)]
    {
        // SAFETY: getppid(2) takes no arguments and cannot fail.
        let p = unsafe { libc::getppid() };
        u32::try_from(p).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How often a worker looks at the run's settings and for stale entries.
pub(crate) fn check_every(s: &RunSettings) -> Duration {
    (s.claim_after / 2).min(Duration::from_millis(250))
}

/// The environment variable naming the broker URL of a local worker.
pub const URL_ENV: &str = "PAPY_REDIS_URL";
/// The environment variable naming the run of a local worker.
pub const RUN_ENV: &str = "PAPY_REDIS_RUN";
/// The process id of the host that started a local worker: the worker
/// leaves when that process no longer exists (the host died, maybe even
/// before the worker started).
pub const HOST_PID_ENV: &str = "PAPY_REDIS_HOST_PID";
/// Set (to `1`) for local workers, which exit when their run is done.
pub const UNTIL_DONE_ENV: &str = "PAPY_REDIS_UNTIL_DONE";

/// For a program's own binary: when started as a broker worker by a
/// [`BrokerPool`](crate::BrokerPool) (`PAPY_WORKER=redis` in the
/// environment), serves and exits; otherwise returns at once. Call it
/// first in `main`, like `papy::worker_main()`.
pub fn worker_main() {
    let is_worker = std::env::var_os(papy_core::pool::WORKER_ENV).is_some_and(|v| v == "redis");
    if !is_worker {
        return;
    }
    let (Ok(url), Ok(run)) = (std::env::var(URL_ENV), std::env::var(RUN_ENV)) else {
        eprintln!("papy broker worker: {URL_ENV} and {RUN_ENV} must be set");
        std::process::exit(2);
    };
    let mut opts = ServeOptions::new(run);
    opts.until_done = std::env::var_os(UNTIL_DONE_ENV).is_some_and(|v| v == "1");
    opts.parent = std::env::var(HOST_PID_ENV)
        .ok()
        .and_then(|p| p.parse().ok());
    opts.key = std::env::var(crate::seal::KEY_ENV).ok();
    let code = match crate::relay::relay_from_env().and_then(|relay| {
        opts.relay = relay;
        serve(&url, &opts)
    }) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("papy broker worker: {e}");
            1
        }
    };
    std::process::exit(code);
}
