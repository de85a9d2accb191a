//! `kind = "remote"`: commands (e.g. `ssh host papy worker --stdio`)
//! speaking the worker protocol.

use std::sync::Arc;

use papy_core::{limits, NuMapBuilder, ProcessPool, WorkerCommand};
use serde::{Deserialize, Serialize};

use super::{BuildContext, PoolConfig};

/// The settings of a pool of remote commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The commands, each with its number of workers.
    #[serde(default)]
    pub remote: Vec<RemoteCommand>,
    /// Functions the remote workers run that this program may not hold (a
    /// worker in another language, plugins installed only there); each
    /// worker's `Hello` must list them, and `papy check` accepts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// Replace a worker by a fresh one (its command run again) after it was
    /// sent this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_after: Option<u64>,
    /// Replace a worker whose resident memory passes this many MiB (checked
    /// between batches): the memory of the process the command runs on this
    /// host (for `ssh`, the ssh client's, not the far worker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle_above_mb: Option<u64>,
    /// Run once by each worker when it starts: its result is the worker's
    /// state; a failure fails the worker's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<toml::Value>,
}

/// One remote worker command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteCommand {
    /// A shell command line, e.g. `ssh host papy worker --stdio`.
    pub command: String,
    /// Workers started with it.
    #[serde(default = "one")]
    pub workers: usize,
}

fn one() -> usize {
    1
}

impl PoolConfig for RemoteConfig {
    const KIND: &'static str = "remote";
    const KEYS: &'static [&'static str] = &[
        "remote",
        "functions",
        "recycle_after",
        "recycle_above_mb",
        "init",
    ];

    fn check(&self) -> Vec<(&'static str, String)> {
        let mut p = super::process::recycle_check(self.recycle_after, self.recycle_above_mb);
        if let Some(Err(e)) = self.init.as_ref().map(super::init_shape) {
            p.push(("init", e));
        }
        if self.remote.is_empty() {
            p.push((
                "remote",
                "kind = \"remote\" needs `remote` commands, e.g. [{ command = \"ssh host papy worker --stdio\", workers = 2 }]".to_string(),
            ));
        }
        let total = self
            .remote
            .iter()
            .fold(0usize, |a, c| a.saturating_add(c.workers));
        for c in &self.remote {
            if c.command.trim().is_empty() {
                p.push(("remote", "a remote command is empty".to_string()));
            }
            if let Err(e) = limits::check_count("workers", c.workers, limits::MAX_WORKERS) {
                p.push(("remote", format!("`{}`: {e}", c.command)));
            }
        }
        if total > limits::MAX_WORKERS {
            p.push((
                "remote",
                format!("{total} workers in all; at most {}", limits::MAX_WORKERS),
            ));
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
        let init =
            match &self.init {
                Some(i) => Some(super::init_call(i, &self.functions).map_err(|e| {
                    papy_core::Error::Config(format!("resource `{name}`: init: {e}"))
                })?),
                None => None,
            };
        let cmds = self
            .remote
            .iter()
            .map(|c| {
                (
                    {
                        let mut cmd = WorkerCommand::shell(&c.command)
                            .providing(self.functions.clone())
                            .sending(ctx.functions.clone())
                            .recycle(super::process::recycle_of(
                                self.recycle_after,
                                self.recycle_above_mb,
                            ));
                        if let Some(dir) = ctx.dir {
                            cmd = cmd.current_dir(dir);
                        }
                        match &init {
                            Some(call) => cmd.init(call.clone()),
                            None => cmd,
                        }
                    },
                    c.workers,
                )
            })
            .collect();
        Ok(numap.pool(Arc::new(ProcessPool::remote(name, cmds)?)))
    }
}
