//! papy plugins: worker functions in `cdylib` libraries, loaded at run time
//! through a checked C ABI.
//!
//! Why an ABI at all: `inventory` registrations do not cross a `dlopen`
//! boundary (a cdylib has its own registry), Rust has no stable ABI, and a
//! panic unwinding out of an `extern "C"` function aborts the process. So a
//! plugin exports one symbol returning a `#[repr(C)]` [`Manifest`](abi::Manifest)
//! (magic, ABI version, size, names, a worker table); calls cross the
//! boundary as MessagePack bytes; every shim catches panics and returns a
//! status code; and libraries are never unloaded.
//!
//! - Plugin authors: `crate-type = ["cdylib"]`, `#[worker]` functions as
//!   usual, and one [`export_plugin!`] call.
//! - Hosts: [`load`] / [`load_by_name`], then use the functions by name as
//!   `plugin_name.function`; [`install_resolver`] makes `imports` load
//!   plugins on demand.
//!
//! See `docs/plugins.md` for the rules.

#![warn(missing_docs)]

pub mod abi;
mod error;
mod export;
mod load;
mod search;

pub use error::PluginError;
pub use load::{install_resolver, load, load_by_name, plugin, plugins, Plugin, PluginResolver};
pub use search::{SearchPath, ENV_VAR};

/// Used by [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call, free, manifest};
}
