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
    const KEYS: &'static [&'static str] = &["remote", "functions"];

    fn check(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
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

    fn apply(
        &self,
        name: &str,
        numap: NuMapBuilder,
        ctx: &BuildContext,
    ) -> papy_core::Result<NuMapBuilder> {
        let cmds = self
            .remote
            .iter()
            .map(|c| {
                (
                    WorkerCommand::shell(&c.command)
                        .providing(self.functions.clone())
                        .sending(ctx.functions.clone()),
                    c.workers,
                )
            })
            .collect();
        Ok(numap.pool(Arc::new(ProcessPool::remote(name, cmds)?)))
    }
}
