//! `kind = "redis"` in a pipeline file: the resource's typed settings and
//! how they build a [`BrokerPool`]; [`install`](crate::install) registers
//! the kind with `papy-config`.

use std::sync::Arc;
use std::time::Duration;

use papy_config::kinds::{self, BuildContext, PoolConfig};
use papy_core::piper::opt_seconds;
use papy_core::{limits, NuMapBuilder, Value};
use serde::{Deserialize, Serialize};

use crate::pool::BrokerPool;
use crate::url::{redact, Url};

/// The settings of a `kind = "redis"` resource. Its `Debug` hides the
/// URL's password.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The broker: `redis://[:password@]host:port`, `rediss://` for TLS,
    /// `redis+unix:///path/to/socket`.
    pub url: Url,
    /// Names the run's keys; workers serve it with `--run` (default: the
    /// resource's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Deliveries of one batch before it is dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Seconds a silent worker may hold a batch before another takes it over.
    #[serde(default, with = "opt_seconds", skip_serializing_if = "Option::is_none")]
    pub claim_after: Option<Duration>,
    /// Local workers the host starts (and restarts) itself; 0 = only
    /// external ones.
    #[serde(default)]
    pub workers: usize,
    /// A file holding the key that authenticates the run's entries (at
    /// least 16 bytes); workers elsewhere need the same key. Default:
    /// `PAPY_BROKER_KEY`, else a random key only local workers receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
    /// A stdio worker of any language (docs/protocol.md) that each local
    /// worker relays its batches to, as a shell line run in the pipeline
    /// file's folder, e.g. `python3 my_worker.py` (workers elsewhere: `papy
    /// worker --redis URL --run RUN -- python3 my_worker.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Functions the workers run that this program does not hold (those of
    /// `command`), as a `remote` resource's `functions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// Replace `command`'s worker by a fresh one after it was sent this
    /// many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_after: Option<u64>,
    /// Replace `command`'s worker whose resident memory passes this many
    /// MiB (checked between batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_above_mb: Option<u64>,
    /// Run once by `command`'s worker when it starts: its result is the
    /// worker's state; a failure fails the worker's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<toml::Value>,
}

impl PoolConfig for RedisConfig {
    const KIND: &'static str = "redis";
    const KEYS: &'static [&'static str] = &[
        "url",
        "run_id",
        "max_attempts",
        "claim_after",
        "workers",
        "key_file",
        "command",
        "functions",
        "recycle_after",
        "recycle_above_mb",
        "init",
    ];

    fn check(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| self.url.0.starts_with(s))
        {
            p.push((
                "url",
                format!(
                    "`{}` is not a Redis URL (redis://host:port, rediss:// for TLS, redis+unix:///path)",
                    redact(&self.url.0)
                ),
            ));
        }
        if self.max_attempts == Some(0) {
            p.push(("max_attempts", "must be at least 1".to_string()));
        }
        if self.workers > limits::MAX_WORKERS {
            p.push((
                "workers",
                format!("({}) must be at most {}", self.workers, limits::MAX_WORKERS),
            ));
        }
        if self.command.as_ref().is_some_and(|c| c.trim().is_empty()) {
            p.push(("command", "is empty".to_string()));
        }
        let (after, above_mb) = (self.recycle_after, self.recycle_above_mb);
        p.extend(kinds::recycle_check(after, above_mb));
        if let Some(Err(e)) = self.init.as_ref().map(kinds::init_shape) {
            p.push(("init", e));
        }
        if self.init.is_some() && self.command.is_none() {
            p.push((
                "init",
                "needs a `command` (the worker that runs it)".to_string(),
            ));
        }
        if let Some(r) = &self.run_id {
            if r.is_empty() || r.len() > 200 {
                p.push(("run_id", "must be 1 to 200 characters".to_string()));
            }
        }
        p
    }

    fn check_functions(&self) -> Vec<(&'static str, String)> {
        kinds::init_functions_problem(self.init.as_ref(), |i| kinds::init_call(i, &self.functions))
    }

    fn apply(
        &self,
        name: &str,
        numap: NuMapBuilder,
        ctx: &BuildContext<'_>,
    ) -> papy_core::Result<NuMapBuilder> {
        let mut b = BrokerPool::builder(name, &self.url.0);
        b.run_id.clone_from(&self.run_id);
        b.key_file.clone_from(&self.key_file);
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        if let Some(t) = self.claim_after {
            b = b.claim_after(t);
        }
        let init_error =
            |e: String| papy_core::Error::Config(format!("resource `{name}`: init: {e}"));
        // The relay keys, for a saved pipeline.
        let mut saved = Vec::new();
        saved.extend(self.command.as_deref().map(|c| ("command", Value::from(c))));
        if !self.functions.is_empty() {
            let names = self.functions.iter().map(|f| Value::from(f.as_str()));
            saved.push(("functions", Value::list(names)));
        }
        let (after, above_mb) = (self.recycle_after, self.recycle_above_mb);
        saved.extend(after.map(|n| ("recycle_after", Value::from(n))));
        saved.extend(above_mb.map(|m| ("recycle_above_mb", Value::from(m))));
        if let Some(i) = &self.init {
            let init = papy_core::to_value(i).map_err(|e| init_error(e.to_string()))?;
            saved.push(("init", init));
        }
        b.relay = saved;
        if self.workers > 0 {
            let mut cmd = (ctx.worker_command)()?;
            if let Some(line) = &self.command {
                let init = self.init.as_ref();
                let init = init.map(|i| kinds::init_call(i, &self.functions));
                let init = init.transpose().map_err(init_error)?;
                let recycle = kinds::recycle_of(after, above_mb);
                for (k, v) in crate::relay::relay_env(line, ctx.dir, recycle, init.as_ref()) {
                    cmd = cmd.env(k, v);
                }
            }
            b = b.local_workers(self.workers, cmd);
        }
        Ok(numap.pool(Arc::new(b.build()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_hides_the_password() {
        let c = RedisConfig {
            url: Url("rediss://user:s/e?c@ret@db".into()),
            ..Default::default()
        };
        let text = format!("{c:?}");
        assert!(text.contains("rediss://***@db"), "{text}");
        assert!(!text.contains("ret@") && !text.contains("s/e"), "{text}");
    }

    #[test]
    fn the_keys_are_the_fields() {
        let c = RedisConfig {
            url: Url("redis://x".into()),
            run_id: Some("r".into()),
            max_attempts: Some(1),
            claim_after: Some(Duration::from_secs(1)),
            workers: 1,
            key_file: Some("run.key".into()),
            command: Some("python3 w.py".into()),
            functions: vec!["py.f".into()],
            recycle_after: Some(10),
            recycle_above_mb: Some(100),
            init: Some(toml::Value::String("py.load".into())),
        };
        let t = toml::Table::try_from(&c).unwrap_or_default();
        let mut got: Vec<&str> = t.keys().map(String::as_str).collect();
        let mut want = RedisConfig::KEYS.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
