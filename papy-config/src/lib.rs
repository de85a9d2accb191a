//! # papy-config: the pipeline file
//!
//! One model of a papy pipeline file (TOML; docs/pipeline-format.md), one
//! loader that reports every problem with its line and column in the
//! user's file, and one validator that `papy check`, `papy run` and
//! [`PlumberFile::load`] share, so a file that passes the check does not
//! fail at start-up or on every item for a reason the check could see.
//!
//! - [`load`]: syntax, `${VAR}` expansion ([`env`](mod@env)), `--set` overrides
//!   ([`overrides`]), every unknown key with a suggestion ([`schema`]), each
//!   table read into the [`model`] with the position of any error;
//! - [`validate`]: references, ranges, worker chains against the registry
//!   ([`chain`]), produce/consume shapes, cycles;
//! - [`kinds`]: each pool kind owns its typed configuration and builder;
//! - [`build`], [`inputs`]: the Dagger, the input sources and outputs;
//! - [`save`], [`PlumberFile`], [`Pipeline`]: save, load, run in one call.
//!
//! ```
//! use papy_config::{load::parse, validate::validate, LoadOptions};
//! let text = "[[pipers]]\nname = \"a\"\ninputs = [\"nums\"]\nworker = [\"papy.ipasser\"]\nconsume = 0\n\n[inputs.nums]\nkind = \"range\"\nstart = 0\nend = 3\n";
//! let l = parse(text, "p.toml", std::path::Path::new("."), &LoadOptions::default()).unwrap();
//! let problems = validate(&l);
//! assert_eq!(problems[0].render("p.toml"), "p.toml:5:11: piper `a`: consume must be at least 1");
//! ```

pub mod build;
pub mod chain;
pub mod env;
mod error;
pub mod inputs;
pub mod kinds;
pub mod load;
pub mod model;
pub mod overrides;
pub mod plugins;
mod plumber;
mod problem;
pub mod save;
pub mod schema;
mod spans;
mod typed;
pub mod types;
pub mod validate;

pub use error::{ConfigError, Result};
pub use load::{LoadOptions, Loaded};
pub use model::{
    CallSpec, Format, InputSpec, NuMapSettings, OutputSpec, PipelineFile, PiperSpec, Plugins,
    Resource,
};
pub use plumber::{Pipeline, PlumberFile};
pub use problem::{Origin, Problem};
pub use spans::{key_path, KeyPath, Spans};
