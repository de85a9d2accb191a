//! `kind = "process"`: child processes of this program (`papy worker --stdio`).

use std::sync::Arc;

use papy_core::{NuMapBuilder, ProcessPool};
use serde::{Deserialize, Serialize};

use super::{BuildContext, PoolConfig};

/// The settings of a process pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Worker processes (default: the CPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Functions the workers run that this program may not hold (their
    /// plugins are loaded only there); each worker must list them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// Replace a worker by a fresh one after it was sent this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_after: Option<u64>,
    /// Replace a worker whose resident memory passes this many MiB (checked
    /// between batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_above_mb: Option<u64>,
    /// Run once by each worker process when it starts: its result is the
    /// worker's state; a failure fails the worker's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<toml::Value>,
}

impl PoolConfig for ProcessConfig {
    const KIND: &'static str = "process";
    const KEYS: &'static [&'static str] = &[
        "workers",
        "functions",
        "recycle_after",
        "recycle_above_mb",
        "init",
    ];

    fn check(&self) -> Vec<(&'static str, String)> {
        let mut p = super::thread::workers_check(self.workers);
        p.extend(recycle_check(self.recycle_after, self.recycle_above_mb));
        if let Some(Err(e)) = self.init.as_ref().map(super::init_shape) {
            p.push(("init", e));
        }
        p
    }

    fn check_functions(&self) -> Vec<(&'static str, String)> {
        super::init_functions_problem(self.init.as_ref(), |i| super::init_call(i, &self.functions))
    }

    fn apply(
        &self,
        name: &str,
        numap: NuMapBuilder,
        ctx: &BuildContext<'_>,
    ) -> papy_core::Result<NuMapBuilder> {
        let n = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let mut cmd = (ctx.worker_command)()?;
        if let Some(init) = &self.init {
            let call = super::init_call(init, &self.functions)
                .map_err(|e| papy_core::Error::Config(format!("resource `{name}`: init: {e}")))?;
            cmd = cmd.init(call);
        }
        let cmd = cmd
            .providing(self.functions.clone())
            .sending(ctx.functions.clone())
            .recycle(recycle_of(self.recycle_after, self.recycle_above_mb));
        let pool = ProcessPool::new(name, n, cmd)?;
        Ok(numap.pool(Arc::new(pool)))
    }
}

/// The range checks of `recycle_after` and `recycle_above_mb` (every kind
/// whose workers run a command has them).
pub fn recycle_check(after: Option<u64>, above_mb: Option<u64>) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    if after == Some(0) {
        p.push(("recycle_after", "must be at least 1 item".to_string()));
    }
    if above_mb == Some(0) {
        p.push(("recycle_above_mb", "must be at least 1 MiB".to_string()));
    }
    if above_mb.is_some_and(|m| m > 1 << 30) {
        p.push(("recycle_above_mb", "must be at most 2^30 MiB".to_string()));
    }
    p
}

/// The [`Recycle`](papy_core::pool::Recycle) of `recycle_after` and
/// `recycle_above_mb`.
pub fn recycle_of(after: Option<u64>, above_mb: Option<u64>) -> papy_core::pool::Recycle {
    papy_core::pool::Recycle {
        after_items: after,
        above_rss: above_mb.map(|m| m << 20),
    }
}
