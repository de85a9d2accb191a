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
//! `#[worker]` attribute in `papy-macros`.

#![warn(missing_docs)]

pub use papy_core::*;
/// Registers a function as a papy worker (see `papy-macros`).
pub use papy_macros::worker;

/// The names most programs need.
pub mod prelude {
    pub use papy_core::{
        Args, Collector, Dagger, Error, ErrorKind, Item, ItemError, NuMap, Piper, Plumber, Source,
        TaskOptions, Value, Worker,
    };
    pub use papy_macros::worker;
}
