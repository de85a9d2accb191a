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

use crate::error::{BrokerError, Result};
use crate::options::{host_gone, ServeOptions};
use crate::queue::Connect;
use crate::redis_queue::RedisConnector;
use crate::relay::Runner;
use crate::seal::Sealer;

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
    let served = crate::relay::relay_from_env().and_then(|relay| {
        opts.relay = relay;
        serve(&url, &opts)
    });
    if let Err(e) = served {
        eprintln!("papy broker worker: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}
