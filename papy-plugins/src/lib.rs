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
//! - Plugin authors depend on `papy-sdk` alone: `crate-type = ["cdylib"]`,
//!   `#[worker]` functions as usual, and one `papy_sdk::export_plugin!` call.
//! - Hosts: [`load`] / [`load_by_name`], then use the functions by name as
//!   `plugin_name.function`; [`install_resolver`] makes `imports` load
//!   plugins on demand.
//!
//! See `docs/plugins.md` for the rules.

/// The C ABI between host and plugin (defined in `papy-sdk`, which plugins build on).
pub use papy_sdk::abi;
/// Declares a crate a plugin (defined in `papy-sdk`; plugins can call
/// `papy_sdk::export_plugin!` and depend on nothing else).
pub use papy_sdk::export_plugin;
mod error;
mod inspect;
mod load;
mod search;

pub use error::PluginError;
pub use inspect::{set_inspector, Inspector};
pub use load::{install_resolver, load, load_by_name, plugin, plugins, Plugin, PluginResolver};
pub use search::{SearchPath, ENV_VAR};
