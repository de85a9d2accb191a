//! Loading papy worker plugins (cdylib libraries) at run time.
//!
//! This crate is filled in by the plugin work (see the project's issues);
//! today it only re-exports the registry that plugins register into.

#![warn(missing_docs)]

pub use papy_core::registry;
