//! Pool kinds: each kind owns its typed configuration (the keys of a
//! `[resources.NAME]` table besides [`NuMapSettings`](crate::NuMapSettings))
//! and how to build it, the way Vector's components own their config and
//! `build()`. Adding a kind touches one place: a type implementing
//! [`PoolConfig`], registered with [`register`]. `thread`, `process` and
//! `remote` are built in; `papy_broker::install()` registers `redis`.
//!
//! ```
//! use std::sync::Arc;
//! use papy_config::kinds::{register, BuildContext, PoolConfig};
//! use papy_core::{NuMapBuilder, ThreadPool};
//! use serde::{Deserialize, Serialize};
//!
//! /// A kind of two thread pools' worth of threads.
//! #[derive(Serialize, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Doubled {
//!     workers: usize,
//! }
//!
//! impl PoolConfig for Doubled {
//!     const KIND: &'static str = "doubled";
//!     const KEYS: &'static [&'static str] = &["workers"];
//!     fn check(&self) -> Vec<(&'static str, String)> {
//!         if self.workers == 0 { vec![("workers", "must be at least 1".into())] } else { vec![] }
//!     }
//!     fn apply(&self, name: &str, b: NuMapBuilder, _: &BuildContext) -> papy_core::Result<NuMapBuilder> {
//!         Ok(b.pool(Arc::new(ThreadPool::new(name, self.workers * 2)?)))
//!     }
//! }
//!
//! register::<Doubled>();
//! assert!(papy_config::kinds::names().contains(&"doubled"));
//! ```

mod process;
mod remote;
mod thread;

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use papy_core::{NuMapBuilder, WorkerCommand};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use process::{recycle_check, recycle_of, ProcessConfig};
pub use remote::{RemoteCommand, RemoteConfig};
pub use thread::ThreadConfig;

use crate::spans::KeyPath;
use crate::typed::typed;

/// What building a pool may need from the program that loads the file.
pub struct BuildContext<'a> {
    /// The command that starts a process worker of this program
    /// (`papy worker --stdio` for the command line, the current executable
    /// for a library that calls `worker_main`).
    pub worker_command: &'a dyn Fn() -> papy_core::Result<WorkerCommand>,
    /// The functions the pipers on the resource being built call (full
    /// names): process and remote pools declare them to their workers,
    /// which refuse any other ([`WorkerCommand::sending`]). Empty: not known.
    pub functions: Vec<String>,
    /// The directory `remote` commands run in: the pipeline file's, so
    /// that their relative paths are relative to the file (`None`: this
    /// process's working directory).
    pub dir: Option<&'a std::path::Path>,
}

impl std::fmt::Debug for BuildContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext").finish_non_exhaustive()
    }
}

impl Default for BuildContext<'_> {
    fn default() -> Self {
        BuildContext {
            worker_command: &WorkerCommand::current_exe,
            functions: Vec::new(),
            dir: None,
        }
    }
}

/// A resource's `init` (`"name"` or `{ function, args, kwargs }`), as the
/// Worker a thread runs: the function must be one this program holds.
///
/// # Errors
/// A malformed entry, an unknown function, arguments that do not bind.
pub fn init_worker(v: &toml::Value) -> Result<papy_core::Worker, String> {
    let call = crate::model::CallSpec::parse(v)?;
    let args = crate::chain::call_args(&call)?;
    papy_core::Worker::build(&call.function, args).map_err(|e| e.to_string())
}

/// The parse-time check of a resource's `init`: its shape only (`"name"`
/// or `{ function, args, kwargs }`); the function is looked up once the
/// plugins are loaded.
///
/// # Errors
/// A malformed entry.
pub fn init_shape(v: &toml::Value) -> Result<(), String> {
    crate::model::CallSpec::parse(v).map(|_| ())
}

/// The [`PoolConfig::check_functions`] problem of an `init`: what
/// `resolve` (looking its function up) says of it; nothing for an init
/// whose shape [`init_shape`] already refused.
pub fn init_functions_problem<T>(
    init: Option<&toml::Value>,
    resolve: impl FnOnce(&toml::Value) -> Result<T, String>,
) -> Vec<(&'static str, String)> {
    match init {
        Some(v) if init_shape(v).is_ok() => {
            resolve(v).err().map(|e| ("init", e)).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// A resource's `init` as the call its workers run: bound here when this
/// program holds the function, else (a function only the workers hold,
/// listed in `functions`) sent by name with its positional arguments.
///
/// # Errors
/// As [`init_worker`]; keyword arguments of a function not held here.
pub fn init_call(
    v: &toml::Value,
    provided: &[String],
) -> Result<papy_core::protocol::Call, String> {
    let call = crate::model::CallSpec::parse(v)?;
    if papy_core::registry::lookup(&call.function).is_err() && provided.contains(&call.function) {
        if !call.kwargs.is_empty() {
            return Err(format!(
                "`{}` is provided by the resource's workers: give its init `args` (positional)",
                call.function
            ));
        }
        let args = call
            .args
            .iter()
            .map(|a| papy_core::to_value(a).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(papy_core::protocol::Call {
            function: call.function,
            args,
        });
    }
    let w = init_worker(v)?;
    papy_core::protocol::serve::chain_of(&w)
        .into_iter()
        .next()
        .ok_or_else(|| "the init is empty".to_string())
}

/// The typed configuration of one pool kind.
pub trait PoolConfig: Serialize + DeserializeOwned + 'static {
    /// The `kind = "..."` that selects it.
    const KIND: &'static str;
    /// The keys it reads (a test checks they match its serde fields).
    const KEYS: &'static [&'static str];

    /// Problems with the settings, as `(key, message)`, found before any
    /// pool starts (`papy check` reports them with their positions). Runs
    /// while the file is read, before its plugins are loaded: a check that
    /// looks functions up belongs in [`check_functions`](Self::check_functions).
    fn check(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Problems that depend on the functions this program holds (an `init`
    /// naming a plugin's function), as `(key, message)`: found by the
    /// validator, once the file's plugins are loaded.
    fn check_functions(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Sets the pool of a NuMap being built for resource `name`.
    ///
    /// # Errors
    /// The pool cannot start.
    fn apply(
        &self,
        name: &str,
        numap: NuMapBuilder,
        ctx: &BuildContext<'_>,
    ) -> papy_core::Result<NuMapBuilder>;
}

type CheckFn = fn(&toml::Table) -> Vec<(KeyPath, String)>;
type ApplyFn =
    fn(&toml::Table, &str, NuMapBuilder, &BuildContext<'_>) -> Result<NuMapBuilder, String>;

#[derive(Clone, Copy)]
struct Entry {
    keys: &'static [&'static str],
    check: CheckFn,
    check_functions: CheckFn,
    apply: ApplyFn,
}

/// Every problem of a kind's settings: each key that does not read (the
/// key is set aside and the rest read again, so that three mistakes are
/// three lines, not one per `papy check`), then the kind's own checks of
/// the keys that read.
fn check_of<C: PoolConfig>(settings: &toml::Table) -> Vec<(KeyPath, String)> {
    let mut settings = settings.clone();
    let mut problems = Vec::new();
    let mut aside = Vec::new();
    loop {
        match typed::<C>(toml::Value::Table(settings.clone())) {
            Err((path, e)) => {
                let key = path
                    .first()
                    .filter(|k| settings.remove(*k).is_some())
                    .cloned();
                problems.push((path, e));
                match key {
                    Some(k) => aside.push(k),
                    None => return problems,
                }
            }
            Ok(c) => {
                problems.extend(
                    c.check()
                        .into_iter()
                        .filter(|(k, _)| !aside.iter().any(|a| a == k))
                        .map(|(k, e)| (vec![k.to_string()], format!("{k}: {e}"))),
                );
                return problems;
            }
        }
    }
}

fn check_functions_of<C: PoolConfig>(settings: &toml::Table) -> Vec<(KeyPath, String)> {
    // Settings that do not read were reported by `check_of`.
    typed::<C>(toml::Value::Table(settings.clone()))
        .map(|c| {
            c.check_functions()
                .into_iter()
                .map(|(k, e)| (vec![k.to_string()], format!("{k}: {e}")))
                .collect()
        })
        .unwrap_or_default()
}

fn apply_of<C: PoolConfig>(
    settings: &toml::Table,
    name: &str,
    b: NuMapBuilder,
    ctx: &BuildContext<'_>,
) -> Result<NuMapBuilder, String> {
    let c = typed::<C>(toml::Value::Table(settings.clone())).map_err(|(_, e)| e)?;
    c.apply(name, b, ctx).map_err(|e| e.to_string())
}

static KINDS: RwLock<BTreeMap<&'static str, Entry>> = RwLock::new(BTreeMap::new());

fn entry_of<C: PoolConfig>() -> Entry {
    Entry {
        keys: C::KEYS,
        check: check_of::<C>,
        check_functions: check_functions_of::<C>,
        apply: apply_of::<C>,
    }
}

fn with_builtins<T>(f: impl FnOnce(&BTreeMap<&'static str, Entry>) -> T) -> T {
    {
        let kinds = KINDS.read().unwrap_or_else(PoisonError::into_inner);
        if kinds.contains_key(ThreadConfig::KIND) {
            return f(&kinds);
        }
    }
    let mut kinds = KINDS.write().unwrap_or_else(PoisonError::into_inner);
    kinds
        .entry(ThreadConfig::KIND)
        .or_insert_with(entry_of::<ThreadConfig>);
    kinds
        .entry(ProcessConfig::KIND)
        .or_insert_with(entry_of::<ProcessConfig>);
    kinds
        .entry(RemoteConfig::KIND)
        .or_insert_with(entry_of::<RemoteConfig>);
    f(&kinds)
}

/// Registers (or replaces) a pool kind.
pub fn register<C: PoolConfig>() {
    with_builtins(|_| ());
    KINDS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(C::KIND, entry_of::<C>());
}

/// The names of the registered kinds.
pub fn names() -> Vec<&'static str> {
    with_builtins(|k| k.keys().copied().collect())
}

/// The keys of kind `kind`, `None` for a kind nobody registered.
pub fn keys(kind: &str) -> Option<&'static [&'static str]> {
    with_builtins(|k| k.get(kind).map(|e| e.keys))
}

/// Problems of a resource's kind settings: `(key path within the
/// resource, message)`.
pub(crate) fn check(kind: &str, settings: &toml::Table) -> Vec<(KeyPath, String)> {
    match with_builtins(|k| k.get(kind).copied()) {
        Some(e) => (e.check)(settings),
        None => vec![(vec!["kind".into()], unknown_kind(kind))],
    }
}

/// Problems of a resource's kind settings that depend on the functions
/// this program holds (see [`PoolConfig::check_functions`]); an unknown
/// kind has none (`check` reported it).
pub(crate) fn check_functions(kind: &str, settings: &toml::Table) -> Vec<(KeyPath, String)> {
    match with_builtins(|k| k.get(kind).copied()) {
        Some(e) => (e.check_functions)(settings),
        None => Vec::new(),
    }
}

/// Sets the pool of `numap` from a resource's kind settings.
pub(crate) fn apply(
    kind: &str,
    settings: &toml::Table,
    name: &str,
    numap: NuMapBuilder,
    ctx: &BuildContext<'_>,
) -> Result<NuMapBuilder, String> {
    match with_builtins(|k| k.get(kind).copied()) {
        Some(e) => (e.apply)(settings, name, numap, ctx),
        None => Err(unknown_kind(kind)),
    }
}

fn unknown_kind(kind: &str) -> String {
    let names = names();
    let hint = crate::problem::did_you_mean(kind, names.iter().copied())
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    let extra = if kind == "redis" {
        " (the `papy` command line has it; a library calls `papy_broker::install()` first)"
    } else {
        ""
    };
    format!(
        "unknown pool kind `{kind}`{extra}; {hint}known kinds: {}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each built-in kind's KEYS are exactly its serde fields.
    #[test]
    fn the_keys_of_each_builtin_kind_match_its_fields() {
        fn keys_of<C: Serialize>(c: &C) -> Vec<String> {
            let mut k: Vec<String> = toml::Table::try_from(c)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        }
        fn sorted(k: &[&str]) -> Vec<String> {
            let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        }
        assert_eq!(
            keys_of(&ThreadConfig {
                workers: Some(1),
                init: Some(toml::Value::from("f")),
            }),
            sorted(ThreadConfig::KEYS)
        );
        let p = ProcessConfig {
            workers: Some(1),
            functions: vec!["f".into()],
            recycle_after: Some(10),
            recycle_above_mb: Some(100),
            init: Some(toml::Value::from("f")),
        };
        assert_eq!(keys_of(&p), sorted(ProcessConfig::KEYS));
        let r = RemoteConfig {
            remote: vec![RemoteCommand {
                command: "x".into(),
                workers: 1,
            }],
            functions: vec!["f".into()],
            recycle_after: Some(10),
            recycle_above_mb: Some(100),
            init: Some(toml::Value::from("f")),
        };
        assert_eq!(keys_of(&r), sorted(RemoteConfig::KEYS));
    }

    #[test]
    fn an_unknown_kind_is_named_with_a_suggestion() {
        let e = check("proces", &toml::Table::new());
        assert_eq!(e.len(), 1);
        assert!(e[0].1.contains("did you mean `process`"), "{}", e[0].1);
    }
}
