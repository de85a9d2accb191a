//! How a [`BrokerPool`] is built: its settings, its key, its local workers.

use std::sync::Arc;
use std::time::Duration;

use papy_core::pool::WorkerCommand;
use papy_core::Error;

use super::BrokerPool;
use crate::queue::Connect;
use crate::redis_queue::RedisConnector;
use crate::seal::{Sealer, Secret, KEY_ENV};
use crate::url::Url;

/// How to build a [`BrokerPool`].
///
/// ```no_run
/// use std::time::Duration;
/// use papy_broker::BrokerPool;
/// let pool = BrokerPool::builder("shards", "redis://127.0.0.1:6379")
///     .run_id("nightly")
///     .max_attempts(3)
///     .claim_after(Duration::from_secs(60))
///     .build()?;
/// # Ok::<(), papy_core::Error>(())
/// ```
///
/// Its `Debug` hides the URL's password and the key.
#[derive(Debug, Clone)]
pub struct BrokerPoolBuilder {
    pub(super) name: String,
    pub(super) url: Url,
    pub(crate) run_id: Option<String>,
    pub(super) max_attempts: u32,
    pub(super) claim_after: Duration,
    pub(super) keep_for: Duration,
    pub(super) unreachable_after: Duration,
    pub(super) local: usize,
    pub(super) command: Option<WorkerCommand>,
    pub(super) size: Option<usize>,
    pub(super) key: Option<Secret>,
    pub(crate) key_file: Option<std::path::PathBuf>,
    /// The resource's relay keys, as saved with the pipeline.
    pub(crate) relay: Vec<(&'static str, papy_core::Value)>,
}

impl BrokerPoolBuilder {
    /// A builder for pool `name` on the broker at `url`, with the defaults.
    pub(super) fn new(name: &str, url: &str) -> BrokerPoolBuilder {
        BrokerPoolBuilder {
            name: name.to_string(),
            url: Url(url.to_string()),
            run_id: None,
            max_attempts: crate::DEFAULT_MAX_ATTEMPTS,
            claim_after: crate::DEFAULT_CLAIM_AFTER,
            keep_for: Duration::from_secs(3600),
            unreachable_after: Duration::from_secs(7),
            local: 0,
            command: None,
            size: None,
            key: None,
            key_file: None,
            relay: Vec::new(),
        }
    }

    /// The run's id: the one set, else the pool's name.
    pub(super) fn run(&self) -> &str {
        self.run_id.as_deref().unwrap_or(&self.name)
    }

    /// The workers the NuMap plans for.
    pub(super) fn planned_workers(&self) -> usize {
        self.size.unwrap_or(self.local.max(1))
    }

    /// What seals the entries of run `run`: the key given, else the one in
    /// the key file, else [`KEY_ENV`], else a random key for this run.
    pub(super) fn sealer(&self, run: &str) -> papy_core::Result<Sealer> {
        let key = match &self.key {
            Some(k) => k.0.clone(),
            None => Sealer::key_from(self.key_file.as_deref())?.unwrap_or_else(|| {
                tracing::info!(
                    "broker pool `{}`: no key ({KEY_ENV} or key_file); a random one for this run: only the workers this host starts can serve it",
                    self.name
                );
                papy_core::run_key::run_key_hex()
            }),
        };
        Ok(Sealer::new(&key, run)?)
    }

    /// The local workers asked for, as (command, how many, the URL they
    /// reach the queue at).
    ///
    /// # Errors
    /// Local workers on a queue other processes cannot reach.
    pub(super) fn local_command(
        &self,
        connector: &dyn Connect,
    ) -> papy_core::Result<Option<(WorkerCommand, usize, String)>> {
        match (&self.command, self.local) {
            (Some(cmd), n) if n > 0 => match connector.worker_url() {
                Some(url) => Ok(Some((cmd.clone(), n, url.to_string()))),
                None => Err(Error::Config(format!(
                    "broker pool `{}`: local workers need a queue other processes can reach, not {}",
                    self.name,
                    connector.describe()
                ))),
            },
            _ => Ok(None),
        }
    }

    papy_core::setters! {
        /// The run's id (default: the pool's name); workers serve it with
        /// `papy worker --redis URL --run ID`. One host per run id at a time.
        run_id(id: impl Into<String>) => run_id = Some(id.into());
        /// Deliveries of one batch before it goes to the dead-letter stream
        /// and its items become errors (default 3).
        max_attempts(n: u32) => max_attempts = n.max(1);
        /// A batch held this long by a worker that sends no heartbeat is taken
        /// over by another worker (default 30 s).
        claim_after(t: Duration) => claim_after = t.max(Duration::from_millis(10));
        /// How long the run's keys stay after the run, for inspection (default
        /// 1 h). While the host runs, the keys carry a lease of `keep_for` plus
        /// a minute, renewed every second, so a dead host's keys expire too.
        keep_for(t: Duration) => keep_for = t.max(Duration::from_secs(1));
        /// When the broker has not answered for this long, the jobs in flight
        /// fail with `WorkerDied` errors instead of waiting (default 7 s).
        unreachable_after(t: Duration) => unreachable_after = t.max(Duration::from_millis(100));
        /// The number of workers the NuMap plans for (how a stride is split
        /// into entries); default: the local workers, at least 1.
        size(n: usize) => size = Some(n.max(1));
        /// The key that authenticates the run's entries (at least 16 bytes;
        /// see [`seal`](crate::seal)); workers on other machines need the same
        /// one. Default: [`KEY_ENV`](crate::seal::KEY_ENV) if set, else a random
        /// key for this run, which only the local workers receive.
        key(key: impl Into<String>) => key = Some(Secret(key.into()));
        /// Reads the key from this file when the pool starts (see [`key`](Self::key)).
        key_file(path: impl Into<std::path::PathBuf>) => key_file = Some(path.into());
    }

    /// Starts `n` local workers with `command` (restarted when they die;
    /// stopped with the pool). The command must serve as a broker worker
    /// when `PAPY_WORKER=redis` is in its environment: `papy worker`, or a
    /// binary whose `main` calls [`worker_main`](crate::worker_main).
    pub fn local_workers(mut self, n: usize, command: WorkerCommand) -> Self {
        self.local = n;
        self.command = Some(command);
        self
    }

    /// Connects, starts the run (its keys are reset) and the local workers.
    ///
    /// # Errors
    /// This process is itself a worker, or the broker is unreachable.
    pub fn build(self) -> papy_core::Result<BrokerPool> {
        let connector = Arc::new(RedisConnector::new(&self.url.0, self.run()));
        BrokerPool::start(self, connector)
    }

    /// Starts the run on the queue `connector` opens instead of the URL's
    /// Redis (another broker, or a [`MemoryQueue`](crate::MemoryQueue) with
    /// workers in this process, [`serve_on`](crate::serve_on)); the URL is
    /// then only shown in the pool's settings. Local workers need a queue
    /// other processes can reach ([`Connect::worker_url`]).
    ///
    /// # Errors
    /// This process is itself a worker, the broker is unreachable, or local
    /// workers were asked for on a queue other processes cannot reach.
    pub fn build_on(self, connector: Arc<dyn Connect>) -> papy_core::Result<BrokerPool> {
        BrokerPool::start(self, connector)
    }

    /// The settings a pool was built with, as a pipeline file's
    /// `kind = "redis"` resource holds them ([`papy_core::Pool::settings`]).
    pub(super) fn settings(&self) -> papy_core::Value {
        use papy_core::Value;
        let mut pairs = vec![
            ("url", Value::from(self.url.0.as_str())),
            ("workers", Value::from(self.local)),
        ];
        pairs.extend(self.run_id.as_deref().map(|r| ("run_id", Value::from(r))));
        pairs.push(("max_attempts", Value::from(u64::from(self.max_attempts))));
        pairs.push(("claim_after", Value::from(self.claim_after.as_secs_f64())));
        pairs.extend(
            (self.key_file.as_ref()).map(|k| ("key_file", Value::from(k.display().to_string()))),
        );
        pairs.extend(self.relay.iter().cloned());
        papy_core::pool::settings_map(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::BrokerPool;

    #[test]
    fn the_builders_debug_hides_the_password() {
        let b = BrokerPool::builder("farm", "redis://:pa/ss@word@db:6379/0").run_id("r");
        let text = format!("{b:?}");
        assert!(text.contains("redis://***@db:6379/0"), "{text}");
        assert!(!text.contains("pa/ss") && !text.contains("word"), "{text}");
    }
}
