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
}

impl PoolConfig for ProcessConfig {
    const KIND: &'static str = "process";
    const KEYS: &'static [&'static str] = &["workers", "functions"];

    fn check(&self) -> Vec<(&'static str, String)> {
        super::thread::workers_check(self.workers)
    }

    fn apply(
        &self,
        name: &str,
        numap: NuMapBuilder,
        ctx: &BuildContext,
    ) -> papy_core::Result<NuMapBuilder> {
        let n = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let cmd = (ctx.worker_command)()?.providing(self.functions.clone());
        let pool = ProcessPool::new(name, n, cmd)?;
        Ok(numap.pool(Arc::new(pool)))
    }
}
