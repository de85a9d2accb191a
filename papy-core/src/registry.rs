//! The worker registry: every `#[worker]` function, found by name.
//!
//! `#[worker]` submits a [`WorkerDescriptor`] with [`inventory`]; the first
//! lookup collects them, together with functions registered at run time
//! (plugins), into one table keyed by fully-qualified name
//! (`crate.module.function`, with `::` written as `.`). A lookup may use the
//! full name or any dotted suffix of it, down to the short name; an
//! ambiguous suffix is an error listing the candidates.
//!
//! A crate that only defines workers is linked only when something refers to
//! it: write `use my_workers as _;` in the binary that runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, Result};

pub use papy_sdk::registry::{
    declared_modules, normalise, registered, BatchFn, Callable, DynFn, Function, ModuleDescriptor,
    PackedFn, Param, RawFn, WorkerDescriptor,
};

/// Answers whether a module named in `imports` can be made available
/// (e.g. by loading a plugin of that name).
pub trait ImportResolver: Send + Sync {
    /// Makes `module` available; `Ok(true)` if it now is, `Ok(false)` if it was not found.
    ///
    /// # Errors
    /// A message when the module exists but failed to load.
    fn resolve(&self, module: &str) -> std::result::Result<bool, String>;
    /// Where this resolver looks, for error messages.
    fn describe(&self) -> String;
}

#[derive(Default)]
struct Table {
    functions: BTreeMap<String, Arc<Function>>,
    modules: BTreeSet<String>,
    hashes: BTreeMap<String, String>,
    resolvers: Vec<Arc<dyn ImportResolver>>,
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        RwLock::new(Table {
            functions: registered()
                .map(|f| (f.name.clone(), Arc::new(f)))
                .collect(),
            modules: declared_modules().map(str::to_string).collect(),
            ..Table::default()
        })
    })
}

fn read() -> std::sync::RwLockReadGuard<'static, Table> {
    table()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write() -> std::sync::RwLockWriteGuard<'static, Table> {
    table()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Finds a registered function by fully-qualified name or by a dotted suffix of it
/// (the short name being the shortest).
///
/// # Errors
/// [`Error::UnknownWorker`] with close names, or [`Error::AmbiguousWorker`]
/// listing the candidates.
///
/// ```
/// let f = papy_core::registry::lookup("papy.ipasser").unwrap();
/// assert_eq!(f.short_name(), "ipasser");
/// assert!(papy_core::registry::lookup("no_such_fn").is_err());
/// ```
pub fn lookup(name: &str) -> Result<Arc<Function>> {
    let wanted = normalise(name);
    let t = read();
    if let Some(f) = t.functions.get(&wanted) {
        return Ok(f.clone());
    }
    let suffix = format!(".{wanted}");
    let found: Vec<&Arc<Function>> = t
        .functions
        .iter()
        .filter(|(k, _)| k.ends_with(&suffix))
        .map(|(_, f)| f)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let short = wanted.rsplit('.').next().unwrap_or(&wanted);
            let mut close: Vec<(f64, String)> = t
                .functions
                .values()
                .map(|f| (strsim::jaro_winkler(short, f.short_name()), f.name.clone()))
                .filter(|(s, _)| *s > 0.8)
                .collect();
            close.sort_by(|a, b| b.0.total_cmp(&a.0));
            Err(Error::UnknownWorker {
                name: name.to_string(),
                suggestions: close.into_iter().take(3).map(|(_, n)| n).collect(),
            })
        }
        many => Err(Error::AmbiguousWorker {
            name: name.to_string(),
            candidates: many.iter().map(|f| f.name.clone()).collect(),
        }),
    }
}

/// `true` when a function of exactly this (normalised) name is registered.
pub fn contains(name: &str) -> bool {
    read().functions.contains_key(&normalise(name))
}

/// Every registered function, sorted by name.
pub fn functions() -> Vec<Arc<Function>> {
    read().functions.values().cloned().collect()
}

/// Registers a function at run time (used by the plugin loader).
///
/// # Errors
/// [`Error::Graph`] if a function of that name is already registered.
pub fn register(f: Function) -> Result<Arc<Function>> {
    let mut t = write();
    if t.functions.contains_key(&f.name) {
        return Err(Error::Config(format!(
            "a worker function named `{}` is already registered",
            f.name
        )));
    }
    let f = Arc::new(f);
    t.functions.insert(f.name.clone(), f.clone());
    Ok(f)
}

/// Declares a module name as available to `imports` in this process.
pub fn register_module(name: &str) {
    write().modules.insert(name.to_string());
}

/// Records the content hash of a module loaded from a file (a plugin), so
/// process and remote workers can be checked to run the same code.
pub fn record_module_hash(name: &str, sha256: &str) {
    write().hashes.insert(name.to_string(), sha256.to_string());
}

/// The recorded module hashes, by module name.
pub fn module_hashes() -> BTreeMap<String, String> {
    read().hashes.clone()
}

/// Compares a worker's (name, hash) list with this process's: one message per
/// module loaded on both sides with different contents.
pub fn hash_mismatches(worker: &[(String, String)]) -> Vec<String> {
    let here = module_hashes();
    worker
        .iter()
        .filter_map(|(name, theirs)| match here.get(name) {
            Some(ours) if ours != theirs => Some(format!(
                "plugin `{}` differs between host (sha256 {}) and worker (sha256 {})",
                crate::error::clip(name, 128),
                crate::error::clip(ours, 12),
                crate::error::clip(theirs, 12)
            )),
            _ => None,
        })
        .collect()
}

/// Adds a resolver consulted for modules not known to the registry.
pub fn add_import_resolver(r: Arc<dyn ImportResolver>) {
    write().resolvers.push(r);
}

fn module_known(t: &Table, module: &str) -> bool {
    if t.modules.contains(module) {
        return true;
    }
    let m = normalise(module);
    let prefix = format!("{m}.");
    t.functions.keys().any(|k| k.starts_with(&prefix))
}

/// Whether module `alt` is known here, or a resolver makes it available
/// (then it is registered); what resolvers fail with goes to `failures`.
fn available(alt: &str, failures: &mut Vec<String>) -> bool {
    if module_known(&read(), alt) {
        return true;
    }
    let resolvers = read().resolvers.clone();
    for r in &resolvers {
        match r.resolve(alt) {
            Ok(true) => {
                register_module(alt);
                return true;
            }
            Ok(false) => {}
            Err(e) => failures.push(format!("{alt}: {e}")),
        }
    }
    false
}

/// Makes sure every import of `f` is available here: each entry's
/// alternatives are tried in order (a registered module, a module prefix of
/// registered functions, then each resolver). A missing entry is an error, or
/// with `forgive` a warning (returned, and logged).
///
/// # Errors
/// [`Error::Import`] naming the module and where it was looked for.
pub fn resolve_imports(f: &Function) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for entry in &f.imports {
        let mut failures = Vec::new();
        let ok = entry
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .any(|alt| available(alt, &mut failures));
        if !ok {
            let t = read();
            let mut searched = vec!["registered modules and workers of this process".to_string()];
            searched.extend(t.resolvers.iter().map(|r| r.describe()));
            searched.extend(failures);
            let err = Error::Import {
                function: f.name.clone(),
                module: entry.clone(),
                searched: searched.join("; "),
            };
            if f.forgive {
                // Kept once per process (a pipeline is checked, then built,
                // and each builds its workers) for the host to print
                // ([`take_forgiven_imports`]); a worker process says nothing.
                let mut t = forgiven();
                if t.0.insert(err.to_string()) {
                    tracing::debug!("{err} (forgiven)");
                    t.1.push(format!("{err} (forgiven)"));
                }
                warnings.push(err.to_string());
            } else {
                return Err(err);
            }
        }
    }
    Ok(warnings)
}

/// The forgiven missing imports seen so far, and those not yet taken.
type Forgiven = (BTreeSet<String>, Vec<String>);

fn forgiven() -> std::sync::MutexGuard<'static, Forgiven> {
    static FORGIVEN: std::sync::Mutex<Forgiven> =
        std::sync::Mutex::new((BTreeSet::new(), Vec::new()));
    FORGIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The missing imports forgiven (`#[worker(forgive)]`) since the last call,
/// each once per process: a host prints them once (`papy run` as
/// `papy: warning: ...`); a worker process, which resolves the same imports,
/// leaves them untaken and so says nothing.
pub fn take_forgiven_imports() -> Vec<String> {
    std::mem::take(&mut forgiven().1)
}

/// Helpers used by the code `#[worker]` generates. Not a stable API.
#[doc(hidden)]
pub use papy_sdk::registry::__private;

#[cfg(test)]
mod tests;
