//! What runs a broker worker's batches: here ([`TaskRunner`], the
//! registry and plugins of this process), or a local stdio worker of any
//! language that a one-worker [`ProcessPool`] owns (`papy worker --redis
//! URL --run RUN -- python3 my_worker.py`).
//!
//! Relayed batches go through the process pool exactly as a local process
//! pool's do: the child's `Hello` and signatures, its init, recycling, and
//! crash handling (a child that dies is replaced, its batch split and run
//! again until the item that kills a worker is alone, and that item alone
//! becomes a `WorkerDied` error). The pool always answers every item, so a
//! relayed entry is completed like any other; if this broker worker itself
//! dies, its entry is reclaimed by another as usual.

use std::sync::Arc;

use papy_core::pool::{Job, Pool, TaskFn, WORKER_ENV};
use papy_core::protocol::serve::TaskRunner;
use papy_core::protocol::{Call, WireInboxes};
use papy_core::registry::Function;
use papy_core::{Args, Inbox, Item, ProcessPool, Worker, WorkerCommand};

use crate::error::{BrokerError, Result};

/// Runs the batches of task entries.
pub(crate) enum Runner {
    /// In this process.
    Here(TaskRunner),
    /// On a local stdio worker.
    Relay(ProcessPool),
}

impl Runner {
    /// A runner that relays to `command`, or runs here without one.
    ///
    /// # Errors
    /// The process pool cannot start.
    pub(crate) fn new(command: Option<&WorkerCommand>) -> Result<Runner> {
        let Some(cmd) = command else {
            return Ok(Runner::Here(TaskRunner::default()));
        };
        // A broker worker a host started carries PAPY_WORKER=redis, which
        // forbids starting worker processes (a program that forgot its
        // worker hook would re-execute itself for ever); this process starts
        // the explicit command it was given, and tells it `stdio`. (Before
        // any thread of this crate starts; the key and URL leave the
        // environment in `worker.rs`.)
        if std::env::var_os(WORKER_ENV).is_some_and(|v| v == "redis") {
            std::env::remove_var(WORKER_ENV);
        }
        let pool = ProcessPool::remote("relay", vec![(cmd.clone(), 1)])
            .map_err(|e| BrokerError::Config(format!("the relay's worker: {e}")))?;
        Ok(Runner::Relay(pool))
    }

    /// The results of one batch: `inboxes` of the items at `indices` of
    /// node `node`, through `chain` (relayed: as a detached job on the
    /// pool).
    pub(crate) fn run(
        &mut self,
        chain: Vec<Call>,
        node: &str,
        indices: &[u64],
        inboxes: WireInboxes,
    ) -> Vec<Item> {
        let pool = match self {
            Runner::Here(r) => return r.run(chain, node, indices, inboxes),
            Runner::Relay(pool) => pool,
        };
        let n = indices.len().min(inboxes.len());
        let inboxes: Vec<Inbox> = match inboxes {
            WireInboxes::Single(v) => v.into_iter().take(n).map(|v| Inbox::One(Ok(v))).collect(),
            WireInboxes::Many(m) => m
                .into_iter()
                .take(n)
                .map(|v| Inbox::Many(v.into_iter().map(Ok).collect()))
                .collect(),
        };
        let task = match Relayed::new(chain, node, &indices[..n]) {
            Ok(t) => t,
            Err(message) => {
                let e = papy_core::ItemError::new(papy_core::ErrorKind::Function, message);
                return indices[..n]
                    .iter()
                    .map(|i| Err(e.clone().at(node.to_string(), *i)))
                    .collect();
            }
        };
        let (job, results) = Job::detached(Arc::new(task), inboxes);
        pool.submit(job);
        results.wait()
    }
}

/// A relayed batch's function: the entry's chain, run by name on the
/// child, its items named by their indices in the host's node.
struct Relayed {
    worker: Worker,
    node: String,
    indices: Vec<u64>,
}

impl Relayed {
    /// Every call of `chain` as a function the child provides.
    fn new(chain: Vec<Call>, node: &str, indices: &[u64]) -> std::result::Result<Relayed, String> {
        let steps = chain
            .into_iter()
            .map(|c| {
                let f = Function::provided_elsewhere(c.function, "this broker worker's child");
                Worker::from_function(Arc::new(f), Args::Positional(c.args))
                    .map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Relayed {
            worker: Worker::chain(steps).map_err(|e| e.to_string())?,
            node: node.to_string(),
            indices: indices.to_vec(),
        })
    }
}

impl TaskFn for Relayed {
    fn call(&self, index: u64, inbox: &[Item]) -> Item {
        self.worker.eval(inbox, &self.node, self.index_of(index))
    }

    fn index_of(&self, local: u64) -> u64 {
        usize::try_from(local)
            .ok()
            .and_then(|k| self.indices.get(k))
            .copied()
            .unwrap_or(local)
    }

    fn name(&self) -> String {
        self.node.clone()
    }

    fn worker(&self) -> Option<&Worker> {
        Some(&self.worker)
    }
}

/// The shell command line a local broker worker relays its batches to (a
/// `redis` resource's `command`), set by the host that starts it.
pub const COMMAND_ENV: &str = "PAPY_REDIS_COMMAND";
/// The folder that command runs in (the pipeline file's).
pub const COMMAND_DIR_ENV: &str = "PAPY_REDIS_COMMAND_DIR";
/// When that command's worker is recycled: `ITEMS,BYTES` (either empty).
pub const RECYCLE_ENV: &str = "PAPY_REDIS_RECYCLE";

/// The init call that command's worker runs when it starts (a host's
/// `Hello` frame holding it, in hex).
pub const INIT_ENV: &str = "PAPY_REDIS_INIT";

/// The environment that tells a local broker worker to relay to the shell
/// command `line` (a resource's `command`), run in `dir` (the pipeline
/// file's folder), its worker replaced as `recycle` says and running
/// `init` first ([`relay_from_env`] reads it back).
pub fn relay_env(
    line: &str,
    dir: Option<&std::path::Path>,
    recycle: papy_core::pool::Recycle,
    init: Option<&Call>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![(COMMAND_ENV, line.to_string())];
    env.extend(dir.map(|d| (COMMAND_DIR_ENV, d.display().to_string())));
    let show = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let (items, bytes) = (show(recycle.after_items), show(recycle.above_rss));
    env.push((RECYCLE_ENV, format!("{items},{bytes}")));
    if let Some(call) = init {
        let mut hello = papy_core::protocol::Hello::here(Vec::new(), Vec::new());
        hello.init = Some(call.clone());
        // A Hello always encodes (it holds no value a frame cannot).
        if let Ok(bytes) = crate::codec::encode(&papy_core::protocol::Frame::Hello(hello)) {
            env.push((INIT_ENV, crate::seal::hex(&bytes)));
        }
    }
    env
}

/// The relay command [`relay_env`] describes in this process's
/// environment, if any.
///
/// # Errors
/// An init that does not read back.
pub fn relay_from_env() -> Result<Option<WorkerCommand>> {
    relay_from(|k| std::env::var(k).ok())
}

/// As [`relay_from_env`], with the variables `var` gives.
fn relay_from(var: impl Fn(&str) -> Option<String>) -> Result<Option<WorkerCommand>> {
    let Some(line) = var(COMMAND_ENV).filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let mut cmd = WorkerCommand::shell(&line);
    if let Some(dir) = var(COMMAND_DIR_ENV) {
        cmd = cmd.current_dir(dir);
    }
    let recycle = var(RECYCLE_ENV).unwrap_or_default();
    let (items, bytes) = recycle.split_once(',').unwrap_or((&recycle, ""));
    cmd = cmd.recycle(papy_core::pool::Recycle {
        after_items: items.parse().ok(),
        above_rss: bytes.parse().ok(),
    });
    if let Some(text) = var(INIT_ENV) {
        let bad = || BrokerError::Config(format!("{INIT_ENV} does not hold an init"));
        let bytes = crate::seal::unhex(&text).ok_or_else(bad)?;
        match crate::codec::decode("init", &bytes)? {
            papy_core::protocol::Frame::Hello(h) => cmd = cmd.init(h.init.ok_or_else(bad)?),
            _ => return Err(bad()),
        }
    }
    Ok(Some(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_spec_reads_back_from_the_environment() {
        let init = Call {
            function: "py.load".into(),
            args: vec![
                papy_core::Value::from("model.bin"),
                papy_core::Value::Int(3),
            ],
        };
        let recycle = papy_core::pool::Recycle {
            after_items: Some(100),
            above_rss: None,
        };
        let dir = Some(std::path::Path::new("/srv/pipelines"));
        let env = relay_env("python3 w.py", dir, recycle, Some(&init));
        let env: std::collections::HashMap<&str, String> = env.into_iter().collect();
        let cmd = relay_from(|k| env.get(k).cloned()).unwrap().unwrap();
        assert_eq!(cmd.line(), "python3 w.py");
        assert_eq!(cmd.recycling().after_items, Some(100));
        assert_eq!(cmd.recycling().above_rss, None);
        let shown = format!("{cmd:?}");
        assert!(
            shown.contains("py.load") && shown.contains("model.bin"),
            "{shown}"
        );
        assert!(shown.contains("/srv/pipelines"), "{shown}");
        assert!(relay_from(|_| None).unwrap().is_none());
        let bad = |k: &str| (k == COMMAND_ENV || k == INIT_ENV).then(|| "zz".to_string());
        assert!(relay_from(bad).is_err(), "an init that does not read back");
    }
}
