//! [`Piper`]: a node of a pipeline.
//!
//! A Piper holds a [`Worker`], an optional [`NuMap`] (none = evaluated
//! lazily in the thread that pulls its output) and the node options:
//!
//! - `consume(n)`: the worker receives batches of `n` consecutive items; each
//!   inbox element is then a list of up to `n` values of that input pipe
//!   (the last batch may be shorter). An error in a batch replaces the batch.
//! - `produce(m)`: each result must be a list of exactly `m` values, emitted
//!   in order as `m` items (anything else becomes `m` error items, so counts
//!   stay aligned).
//! - `repeat(true)`: with `produce(m)`, each whole result is emitted `m`
//!   times instead (PaPy's `repeat`).
//! - `spawn(k)`: the worker runs as `k` tasks on the NuMap, each taking
//!   stride-sized chunks in turn; results are merged back into input order.
//! - `timeout`: per-item timeout on the NuMap (parallel pipers only).
//! - `branch`: breaks ties in the topological order (lower first).
//! - `debug`: an error item reaching this node's output stops the run with
//!   [`Error::Debug`] instead of flowing on.
//! - `track`: keep every output item by index in the statistics.
//! - `ordered`: override the NuMap's ordering for this node.
//!
//! Whatever the stride, buffer, worker count or worker kind, an ordered
//! pipeline gives the same output, item for item.
//!
//! ```
//! use papy_core::{NuMap, Piper, Worker};
//! let numap = NuMap::threads(2).unwrap();
//! let p = Piper::new("square", Worker::typed("sq", |x: i64| x * x)).parallel(&numap).branch(1);
//! assert_eq!(p.name(), "square");
//! assert!(p.numap().is_some());
//! ```

pub(crate) mod adapters;
mod options;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::numap::NuMap;
use crate::worker::Worker;

pub use options::{opt_seconds, seconds, PiperOptions, DEFAULT_RETRY_BACKOFF};

/// A pipeline node: a Worker, an optional NuMap, and node options.
#[derive(Clone, Debug)]
pub struct Piper {
    name: String,
    worker: Worker,
    numap: Option<NuMap>,
    options: PiperOptions,
}

impl Piper {
    /// A linear node named `name` (names are unique within a Dagger).
    pub fn new(name: impl Into<String>, worker: Worker) -> Piper {
        Piper {
            name: name.into(),
            worker,
            numap: None,
            options: PiperOptions::default(),
        }
    }

    /// The options.
    pub fn options(&self) -> &PiperOptions {
        &self.options
    }

    /// Retries items whose worker process died or timed out (not items whose
    /// function returned an error), `n` times with `backoff` between tries.
    pub fn retries(mut self, n: u32, backoff: Duration) -> Piper {
        self.options.retries = n;
        self.options.retry_backoff = backoff;
        self
    }

    /// Runs each item at most once on a process or remote pool (see
    /// [`TaskOptions::once`](crate::TaskOptions::once)): for functions with
    /// effects outside the item.
    pub fn at_most_once(mut self) -> Piper {
        self.options.once = true;
        self
    }

    setters! {
        /// Sets every option at once (what a pipeline file gives).
        with_options(options: PiperOptions) => options = options;
        /// Evaluates on `numap` (shared with other pipers if they use the same handle).
        parallel(numap: &NuMap) => numap = Some(numap.clone());
        /// Emits `m` items per result (the result must be a list of `m` values).
        produce(m: usize) => options.produce = m;
        /// With [`produce`](Self::produce)`(m)`: emits each whole result `m`
        /// times instead of splitting a list of `m` values (PaPy's `repeat`).
        repeat(on: bool) => options.repeat = on;
        /// Runs the worker as `k` tasks on the NuMap.
        spawn(k: usize) => options.spawn = k;
        /// Batches `n` consecutive items per call.
        consume(n: usize) => options.consume = n;
        /// Per-item timeout (parallel pipers).
        timeout(t: Duration) => options.timeout = Some(t);
        /// Topological tie-breaker (lower first; default 0).
        branch(b: i64) => options.branch = b;
        /// Stop the run on the first error item instead of passing it on.
        debug(on: bool) => options.debug = on;
        /// Keep every output item in the statistics.
        track(on: bool) => options.track = on;
        /// Results in input order (`true`) or completion order (`false`).
        ordered(on: bool) => options.ordered = Some(on);
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Worker.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The NuMap, for parallel pipers.
    pub fn numap(&self) -> Option<&NuMap> {
        self.numap.as_ref()
    }

    /// The stride this node's plumbing uses: its NuMap's, or 1 when linear.
    pub fn stride(&self) -> usize {
        self.numap.as_ref().map_or(1, NuMap::stride)
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::Config`] naming the node and the bad option.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::Config("a piper needs a non-empty name".into()));
        }
        let checked = self.options.validate(self.numap.is_some());
        checked.map_err(|(_, e)| Error::Config(format!("piper `{}`: {e}", self.name)))
    }
}
