//! `kind = "thread"`: threads of this process (the default).

use papy_core::{limits, NuMapBuilder};
use serde::{Deserialize, Serialize};

use super::{BuildContext, PoolConfig};

/// The settings of a thread pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadConfig {
    /// Worker threads (default: the stride when one is given, else the CPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

impl PoolConfig for ThreadConfig {
    const KIND: &'static str = "thread";
    const KEYS: &'static [&'static str] = &["workers"];

    fn check(&self) -> Vec<(&'static str, String)> {
        workers_check(self.workers)
    }

    fn apply(
        &self,
        _: &str,
        numap: NuMapBuilder,
        _: &BuildContext,
    ) -> papy_core::Result<NuMapBuilder> {
        Ok(match self.workers {
            Some(w) => numap.workers(w),
            None => numap,
        })
    }
}

/// The range check of a `workers` key.
pub(crate) fn workers_check(workers: Option<usize>) -> Vec<(&'static str, String)> {
    workers
        .and_then(|w| limits::check_count("workers", w, limits::MAX_WORKERS).err())
        .map(|e| ("workers", e))
        .into_iter()
        .collect()
}
