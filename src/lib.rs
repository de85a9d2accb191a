//! # papy: parallel pipelines
//!
//! papy turns plain functions into nodes of a DAG that is evaluated lazily
//! and in parallel, with errors flowing downstream as data. It is a Rust
//! re-creation of PaPy ("Parallel Pipelines in Python"): the same model
//! (`Worker`, `NuMap`, `Piper`, `Dagger`, `Plumber`), without its traps.
//!
//! ```
//! use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Value, Worker};
//!
//! /// Squares a number.
//! #[worker]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! /// Adds a constant, given when the Worker is built.
//! #[worker]
//! fn add(x: i64, n: i64) -> i64 {
//!     x + n
//! }
//!
//! # fn main() -> Result<(), papy::Error> {
//! let pool = NuMap::builder().workers(2).stride(8).build()?;
//! let mut dag = Dagger::new();
//! dag.add_piper(Piper::new("square", Worker::new("square")?).parallel(&pool))?;
//! dag.add_piper(Piper::new("add", Worker::with_args("add", [100])?))?;
//! dag.connect("square", "add")?;
//!
//! let mut plumber = Plumber::new(dag);
//! let out = plumber.collect("add")?;
//! plumber.start([("square", Source::values(0..5i64))])?;
//! plumber.run()?;
//! plumber.wait(None)?;
//! let got: Vec<Value> = out.take().into_iter().map(|r| r.unwrap()).collect();
//! assert_eq!(got, [100, 101, 104, 109, 116].map(Value::Int));
//! # Ok(())
//! # }
//! ```
//!
//! This crate is a thin facade: the engine lives in `papy-core`, the
//! pipeline file in `papy-config`, the `#[worker]` attribute in `papy-macros`,
//! and what plugins build against (`Value`, `ItemError`, the registry's
//! descriptors, `export_plugin!`) in `papy-sdk`.

/// The pipeline file: model, validation, building (`papy-config`).
pub use papy_config as config;
/// `Plumber::load`, `Plumber::save` and friends.
pub use papy_config::{Pipeline, PlumberFile};
/// The engine's modules a program reaches into (the rest of `papy-core`
/// stays behind its types).
pub use papy_core::{chaos, error, func, numap, pool, protocol, registry, worker_state};
/// The engine's types and entry points (see `papy-core`).
pub use papy_core::{
    from_value, module, to_value, worker_main, Args, Collector, Dagger, Error, ErrorKind, Inbox,
    IntoInbox, Item, ItemError, Map, NodeStats, NuMap, NuMapBuilder, Piper, Plumber, PlumberState,
    Pool, ProcessPool, Result, Source, Stats, StopHandle, TaskFn, TaskId, TaskOptions, TaskResults,
    ThreadPool, Value, ValueError, Worker, WorkerCommand,
};
/// Registers a function as a papy worker (see `papy-macros`); the code it
/// writes refers to this crate, `::papy`.
pub use papy_macros::worker_in_papy as worker;

/// Makes a test binary usable as its own process worker under `cargo test`,
/// where the test harness owns `main` so [`worker_main`] cannot be called
/// first. It adds a constructor that only marks the binary, and a hook test
/// named `__papy_worker_entry` that serves tasks when the process was started
/// as a worker (`WorkerCommand::current_exe()` then runs just that test, after
/// every constructor, the registry's included, has run); in a normal test run
/// the hook returns at once. Put it once at the root of a test file.
///
/// ```text
/// papy::enable_test_support!();
/// ```
#[macro_export]
macro_rules! enable_test_support {
    () => {
        #[$crate::__private::ctor::ctor]
        fn __papy_test_support_mark() {
            $crate::pool::mark_test_support();
        }

        #[test]
        fn __papy_worker_entry() {
            $crate::worker_main();
        }
    };
}

/// Used by the macros of this crate; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use ctor;
}

/// The names most programs need.
pub mod prelude {
    pub use papy_core::{
        Args, Collector, Dagger, Error, ErrorKind, Item, ItemError, NuMap, Piper, Plumber, Source,
        TaskOptions, Value, Worker,
    };
    pub use papy_macros::worker_in_papy as worker;
}
