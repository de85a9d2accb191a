//! The papy engine.
//!
//! papy turns functions into nodes of a DAG evaluated lazily and in
//! parallel. The pieces, from the bottom up:
//!
//! - [`Value`]: the dynamic data that flows between nodes;
//! - [`ItemError`]: an error that flows as data in place of a value;
//! - the [`registry`] of `#[worker]` functions, found by name;
//! - [`Worker`]: a composition of functions with arguments;
//! - [`NuMap`]: a lazy, buffered, multi-task parallel map over a [`pool`];
//! - [`Piper`]: a node (a Worker, an optional NuMap, node options);
//! - [`Dagger`]: the DAG of pipers;
//! - [`Plumber`]: runs a Dagger (start, run, pause, stop, statistics).
//!
//! [`Value`], [`ItemError`] and the registry's descriptor types live in
//! `papy-sdk` (what plugins build against) and are re-exported here.
//! Most users depend on the `papy` facade crate, which re-exports this one.
//!
//! Every import points down, in this order (checked by
//! `tests/layers.rs`, which fails on any import against it):
//!
//! ```text
//! plumber -> dagger -> piper -> numap -> pool -> job -> protocol -> permissions
//!         -> worker -> registry -> (sync, limits, error, run_key, stats, chaos, hooks)
//! ```
//!
//! [`func`] (the built-in library) sits beside the engine: it may use any
//! of it, and the engine never names it; what the engine needs of it (the
//! end of a batch, of a run, of a worker's session) is registered as
//! [`hooks`].

// `#[worker]` inside this crate writes paths through `::papy_core`.
extern crate self as papy_core;

/// Builder methods that each set one field and return `self`:
/// `name(arg: T) => field.path = value;`, each with its docs.
#[doc(hidden)]
#[macro_export]
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $t:ty) => $($field:ident).+ = $value:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $arg: $t) -> Self {
            self.$($field).+ = $value;
            self
        }
    )*};
}

/// `impl Debug` showing only the type's name (`Name { .. }`), for types
/// whose fields cannot or need not be shown.
#[doc(hidden)]
#[macro_export]
macro_rules! opaque_debug {
    ($t:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    };
}

pub mod chaos;
pub mod dagger;
pub mod error;
pub mod func;
pub mod hooks;
mod job;
#[doc(hidden)]
pub use job::batch;
pub mod limits;
pub mod numap;
#[doc(hidden)]
pub mod os;
pub mod permissions;
pub mod piper;
pub mod plumber;
pub mod pool;
pub mod protocol;
pub mod registry;
pub mod run_key;
pub mod stats;
pub mod sync;
pub use papy_sdk::{catch, module, quiet_caught_panics, value, worker_state};
pub mod worker;

pub use dagger::Dagger;
pub use error::{Error, ErrorKind, Item, ItemError, Result};
pub use numap::{NuMap, NuMapBuilder, TaskId, TaskOptions, TaskResults};
pub use piper::Piper;
pub use plumber::{Collector, Plumber, PlumberState, Source, StopHandle};
pub use pool::{Inbox, IntoInbox, Pool, ProcessPool, TaskFn, ThreadPool, WorkerCommand};
pub use protocol::worker_main;
pub use stats::{NodeStats, Stats};
pub use value::{from_value, to_value, Map, Value, ValueError};
pub use worker::{Args, Worker};
