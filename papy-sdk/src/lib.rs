//! What a papy plugin builds against, and nothing more.
//!
//! A plugin is a `cdylib` crate of `#[worker]` functions with one
//! [`export_plugin!`] call; the `papy` host loads it at run time and runs
//! its functions by name on threads, in worker processes or on other
//! machines. This crate holds exactly what such a crate needs:
//!
//! - [`Value`], the dynamic data that flows between nodes, and its serde glue
//!   ([`to_value`], [`from_value`]);
//! - [`ItemError`] and [`ErrorKind`], the error a function returns for one item;
//! - [`#[worker]`](macro@worker), which registers a function by name, and the
//!   [`registry`] descriptors it submits;
//! - [`export_plugin!`] and the C ABI it exports ([`abi`]).
//!
//! The engine (`papy-core`) depends on this crate and re-exports all of it,
//! so functions written against the SDK run unchanged in a program that uses
//! the whole engine.
//!
//! ```
//! use papy_sdk::{worker, Value};
//!
//! /// Multiplies the input by a factor.
//! #[worker]
//! fn scale(x: f64, factor: f64) -> f64 {
//!     x * factor
//! }
//!
//! let f = papy_sdk::registry::registered()
//!     .find(|f| f.short_name() == "scale")
//!     .unwrap();
//! assert_eq!(f.invoke(&[Value::Float(2.0)], &[Value::Float(3.0)]), Ok(Value::Float(6.0)));
//! ```
//!
//! In a plugin crate (`crate-type = ["cdylib"]`), after the functions:
//!
//! ```text
//! papy_sdk::export_plugin!(name = "text", version = "0.1.0");
//! ```

pub mod abi;
pub mod error;
mod export;
pub mod packed;
pub mod registry;
mod state;
mod unwind;
pub mod value;

pub use error::{ErrorKind, Item, ItemError};
pub use state::worker_state;
#[doc(hidden)]
pub use state::{set_process_state, set_thread_state};
pub use unwind::{catch, quiet_caught_panics};
pub use value::{from_value, to_value, Map, Value, ValueError};

/// Registers a function as a papy worker, found by name wherever it runs
/// (see `papy-macros` for the signature rules).
pub use papy_macros::worker;

/// Declares a module name that `#[worker(imports = [...])]` entries can require.
///
/// ```
/// papy_sdk::module!("my_text_tools");
/// assert!(papy_sdk::registry::declared_modules().any(|m| m == "my_text_tools"));
/// ```
#[macro_export]
macro_rules! module {
    ($name:expr) => {
        $crate::registry::__private::inventory::submit! {
            $crate::registry::ModuleDescriptor { name: $name }
        }
    };
}

/// Used by [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call, call_batch, free, manifest};
}
