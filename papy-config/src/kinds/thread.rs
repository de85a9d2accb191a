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
    /// Run once by each thread when it starts (`"name"` or `{ function,
    /// args }`): its result is the thread's worker state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<toml::Value>,
}

impl PoolConfig for ThreadConfig {
    const KIND: &'static str = "thread";
    const KEYS: &'static [&'static str] = &["workers", "init"];

    fn check(&self) -> Vec<(&'static str, String)> {
        let mut p = workers_check(self.workers);
        if let Some(Err(e)) = self.init.as_ref().map(super::init_shape) {
            p.push(("init", e));
        }
        p
    }

    fn check_functions(&self) -> Vec<(&'static str, String)> {
        super::init_functions_problem(self.init.as_ref(), super::init_worker)
    }

    fn apply(
        &self,
        name: &str,
        numap: NuMapBuilder,
        _: &BuildContext<'_>,
    ) -> papy_core::Result<NuMapBuilder> {
        if let Some(init) = &self.init {
            let w = super::init_worker(init)
                .map_err(|e| papy_core::Error::Config(format!("resource `{name}`: init: {e}")))?;
            let n = self
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let pool = papy_core::ThreadPool::with_init(name, n, w)?;
            return Ok(numap.pool(std::sync::Arc::new(pool)));
        }
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
