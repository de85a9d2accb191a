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
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, ErrorKind, ItemError, Result};
use crate::value::Value;

/// The type-erased calling convention of every registered function:
/// `(inbox, arguments) -> result`.
pub type RawFn = fn(&[Value], &[Value]) -> Result<Value, ItemError>;

/// A dynamically created function body (closures, plugin shims).
pub type DynFn = dyn Fn(&[Value], &[Value]) -> Result<Value, ItemError> + Send + Sync;

/// Many calls at once: one inbox per call, the same arguments, one result
/// per inbox in order (a plugin's batch entry point: one crossing of the
/// ABI per batch instead of one per item).
pub type BatchFn = dyn Fn(&[&[Value]], &[Value]) -> Vec<Result<Value, ItemError>> + Send + Sync;

/// One argument parameter of a registered function (the parameters after the inbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The parameter's name, for arguments given by name.
    pub name: &'static str,
    /// `true` when the parameter is an `Option` and may be left out (it then receives null).
    pub optional: bool,
    /// The parameter's Rust type as written (`f64`, `Option<Vec<String>>`),
    /// for static checks of fixed arguments before a run; empty when
    /// unknown (functions of plugins, whose ABI does not carry it yet).
    pub ty: &'static str,
}

/// What `#[worker]` submits to the registry. Not written by hand: use the macro.
#[derive(Debug)]
pub struct WorkerDescriptor {
    /// Fully-qualified name, `::` or `.` separated.
    pub name: &'static str,
    /// The argument parameters, or `None` for raw functions (arguments passed as given).
    pub params: Option<&'static [Param]>,
    /// Number of inbox elements the function takes, or `None` for any.
    pub inputs: Option<usize>,
    /// Modules the function needs where it runs; `"a,b"` = a, else b.
    pub imports: &'static [&'static str],
    /// Warn instead of failing when an import is missing.
    pub forgive: bool,
    /// The function's doc comment.
    pub doc: &'static str,
    /// The type-erased shim.
    pub call: RawFn,
}

inventory::collect!(WorkerDescriptor);

/// A module name that `imports` can ask for, declared with [`module!`](crate::module).
#[derive(Debug)]
pub struct ModuleDescriptor {
    /// The module's name.
    pub name: &'static str,
}

inventory::collect!(ModuleDescriptor);

/// How a [`Function`] is called.
#[derive(Clone)]
pub enum Callable {
    /// A registered `#[worker]` shim.
    Static(RawFn),
    /// A run-time function: a plugin's shim (`portable`) or a closure.
    Dynamic(Arc<DynFn>),
}

/// A callable function with its metadata, as held by a [`Worker`](crate::Worker).
#[derive(Clone)]
pub struct Function {
    /// Fully-qualified name, `.` separated.
    pub name: String,
    /// Argument parameters (`None` = raw: arguments are passed through unchecked).
    pub params: Option<Vec<Param>>,
    /// Number of inbox elements taken (`None` = any).
    pub inputs: Option<usize>,
    /// Imports needed where it runs.
    pub imports: Vec<String>,
    /// Missing imports only warn.
    pub forgive: bool,
    /// Documentation.
    pub doc: String,
    /// `true` when the function can be found by name in another process (registered);
    /// `false` for closures, which only thread pools can run.
    pub portable: bool,
    /// The body.
    pub call: Callable,
    /// The same body for a whole batch, when the function has one (plugins
    /// built for ABI 1.2); [`invoke`](Function::invoke) is used otherwise.
    pub batch: Option<Arc<BatchFn>>,
}

impl Function {
    /// The last segment of the name.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// Calls the function on an inbox and arguments.
    #[inline]
    pub fn invoke(&self, inbox: &[Value], args: &[Value]) -> Result<Value, ItemError> {
        match &self.call {
            Callable::Static(f) => f(inbox, args),
            Callable::Dynamic(f) => f(inbox, args),
        }
    }

    /// A function this process does not hold but the workers of a pool do
    /// (declared by a resource's `functions`): found there by name, with its
    /// arguments passed as given. Called here, it is an error naming where
    /// it runs.
    pub fn provided_elsewhere(name: impl Into<String>, pool: &str) -> Function {
        let name = name.into();
        let message = format!(
            "`{name}` runs only on the workers of `{pool}`, which provide it; this process does not hold it"
        );
        Function {
            name,
            params: None,
            inputs: None,
            imports: Vec::new(),
            forgive: false,
            doc: String::new(),
            portable: true,
            call: Callable::Dynamic(Arc::new(move |_: &[Value], _: &[Value]| {
                Err(ItemError::new(ErrorKind::Function, message.clone()))
            })),
            batch: None,
        }
    }

    /// A closure-backed function (not portable).
    pub fn closure(name: impl Into<String>, f: Arc<DynFn>) -> Function {
        Function {
            name: name.into(),
            params: None,
            inputs: None,
            imports: Vec::new(),
            forgive: false,
            doc: String::new(),
            portable: false,
            call: Callable::Dynamic(f),
            batch: None,
        }
    }

    fn from_descriptor(d: &'static WorkerDescriptor) -> Function {
        Function {
            name: normalise(d.name),
            params: d.params.map(<[Param]>::to_vec),
            inputs: d.inputs,
            imports: d.imports.iter().map(|s| s.to_string()).collect(),
            forgive: d.forgive,
            doc: d.doc.trim().to_string(),
            portable: true,
            call: Callable::Static(d.call),
            batch: None,
        }
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("imports", &self.imports)
            .field("forgive", &self.forgive)
            .field("portable", &self.portable)
            .finish()
    }
}

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
        let mut t = Table::default();
        for d in inventory::iter::<WorkerDescriptor> {
            let f = Function::from_descriptor(d);
            t.functions.insert(f.name.clone(), Arc::new(f));
        }
        for m in inventory::iter::<ModuleDescriptor> {
            t.modules.insert(m.name.to_string());
        }
        RwLock::new(t)
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

/// Writes `a::b::c` as `a.b.c`.
pub fn normalise(name: &str) -> String {
    name.replace("::", ".")
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
        let alternatives: Vec<&str> = entry
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut ok = false;
        let mut failures = Vec::new();
        for alt in &alternatives {
            if module_known(&read(), alt) {
                ok = true;
                break;
            }
            let resolvers = read().resolvers.clone();
            for r in &resolvers {
                match r.resolve(alt) {
                    Ok(true) => {
                        ok = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => failures.push(format!("{alt}: {e}")),
                }
            }
            if ok {
                register_module(alt);
                break;
            }
        }
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
                // Logged once per process: a pipeline is checked, then
                // built, and each builds its workers.
                static WARNED: std::sync::Mutex<BTreeSet<String>> =
                    std::sync::Mutex::new(BTreeSet::new());
                let first = WARNED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(err.to_string());
                if first {
                    tracing::warn!("{err} (forgiven)");
                }
                warnings.push(err.to_string());
            } else {
                return Err(err);
            }
        }
    }
    Ok(warnings)
}

/// Helpers used by the code `#[worker]` generates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use std::any::{Any, TypeId};

    pub use inventory;

    fn cast<T: 'static, U: 'static>(v: U) -> Option<T> {
        let mut slot = Some(v);
        (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<T>>()
            .and_then(Option::take)
    }

    /// Converts a value to a parameter type, with fast paths for common types.
    #[inline]
    pub fn convert<T: DeserializeOwned + 'static>(
        v: &Value,
        what: &dyn fmt::Display,
    ) -> Result<T, ItemError> {
        let id = TypeId::of::<T>();
        if id == TypeId::of::<Value>() {
            if let Some(t) = cast::<T, Value>(v.clone()) {
                return Ok(t);
            }
        } else if id == TypeId::of::<i64>() {
            if let Value::Int(i) = v {
                if let Some(t) = cast::<T, i64>(*i) {
                    return Ok(t);
                }
            }
        } else if id == TypeId::of::<f64>() {
            if let Some(x) = v.as_float() {
                if let Some(t) = cast::<T, f64>(x) {
                    return Ok(t);
                }
            }
        } else if id == TypeId::of::<String>() {
            if let Value::Str(s) = v {
                if let Some(t) = cast::<T, String>(s.to_string()) {
                    return Ok(t);
                }
            }
        }
        crate::value::from_value(v)
            .map_err(|e| ItemError::new(ErrorKind::Conversion, format!("{what}: {e}")))
    }

    /// Converts a return value into a [`Value`], with fast paths for common types.
    #[inline]
    pub fn output<T: Serialize + 'static>(v: T) -> Result<Value, ItemError> {
        let id = TypeId::of::<T>();
        if id == TypeId::of::<Value>() {
            if let Some(v) = cast::<Value, T>(v) {
                return Ok(v);
            }
            unreachable!("type id matched")
        } else if id == TypeId::of::<i64>() {
            if let Some(i) = cast::<i64, T>(v) {
                return Ok(Value::Int(i));
            }
            unreachable!("type id matched")
        } else if id == TypeId::of::<f64>() {
            if let Some(x) = cast::<f64, T>(v) {
                return Ok(Value::Float(x));
            }
            unreachable!("type id matched")
        }
        crate::value::to_value(&v)
            .map_err(|e| ItemError::new(ErrorKind::Conversion, format!("result: {e}")))
    }

    /// Converts a `Result` return value.
    #[inline]
    pub fn output_result<T: Serialize + 'static, E: fmt::Display>(
        r: Result<T, E>,
    ) -> Result<Value, ItemError> {
        match r {
            Ok(v) => output(v),
            Err(e) => Err(ItemError::new(ErrorKind::Function, e.to_string())),
        }
    }

    macro_rules! fast {
        ($kind:ident, $t:ty, $get:expr, $put:expr) => {
            pub mod $kind {
                use super::*;
                /// Converts a value, trying the direct representation first.
                #[inline]
                pub fn convert(v: &Value, what: &dyn fmt::Display) -> Result<$t, ItemError> {
                    #[allow(clippy::redundant_closure_call)]
                    match ($get)(v) {
                        Some(x) => Ok(x),
                        None => super::convert::<$t>(v, what),
                    }
                }
                /// Inbox element `i`.
                #[inline]
                pub fn inbox(inbox: &[Value], i: usize) -> Result<$t, ItemError> {
                    convert(inbox_value(inbox, i)?, &format_args!("inbox[{i}]"))
                }
                /// Argument `i`.
                #[inline]
                pub fn arg(args: &[Value], i: usize, name: &str) -> Result<$t, ItemError> {
                    convert(arg_value(args, i), &format_args!("argument `{name}`"))
                }
                /// The return value.
                #[inline]
                pub fn output(x: $t) -> Result<Value, ItemError> {
                    #[allow(clippy::redundant_closure_call)]
                    Ok(($put)(x))
                }
                /// A `Result` return value.
                #[inline]
                pub fn output_result<E: fmt::Display>(
                    r: Result<$t, E>,
                ) -> Result<Value, ItemError> {
                    match r {
                        Ok(x) => output(x),
                        Err(e) => Err(ItemError::new(ErrorKind::Function, e.to_string())),
                    }
                }
            }
        };
    }
    fast!(fast_i64, i64, |v: &Value| v.as_int(), Value::Int);
    fast!(fast_f64, f64, |v: &Value| v.as_float(), Value::Float);
    fast!(fast_bool, bool, |v: &Value| v.as_bool(), Value::Bool);
    fast!(
        fast_string,
        String,
        |v: &Value| v.as_str().map(str::to_string),
        Value::from
    );
    fast!(fast_value, Value, |v: &Value| Some(v.clone()), |v| v);

    /// Checks the inbox length.
    #[inline]
    pub fn check_inbox(inbox: &[Value], n: usize) -> Result<(), ItemError> {
        if inbox.len() == n {
            Ok(())
        } else {
            Err(ItemError::new(
                ErrorKind::Conversion,
                format!("expects {n} input(s) in its inbox, got {}", inbox.len()),
            ))
        }
    }

    /// Parameter `i` of the inbox, converted.
    #[inline]
    pub fn inbox<T: DeserializeOwned + 'static>(inbox: &[Value], i: usize) -> Result<T, ItemError> {
        convert(inbox_value(inbox, i)?, &format_args!("inbox[{i}]"))
    }

    /// Inbox element `i`, or a conversion error naming it.
    #[inline]
    pub fn inbox_value(inbox: &[Value], i: usize) -> Result<&Value, ItemError> {
        inbox.get(i).ok_or_else(|| {
            ItemError::new(ErrorKind::Conversion, format!("inbox has no element {i}"))
        })
    }

    /// Argument `i`; a missing argument is null.
    #[inline]
    pub fn arg_value(args: &[Value], i: usize) -> &Value {
        static NULL: Value = Value::Null;
        args.get(i).unwrap_or(&NULL)
    }

    /// Argument `i` (named `name`), converted; a missing argument is null.
    #[inline]
    pub fn arg<T: DeserializeOwned + 'static>(
        args: &[Value],
        i: usize,
        name: &str,
    ) -> Result<T, ItemError> {
        convert(arg_value(args, i), &format_args!("argument `{name}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_mismatches_are_reported() {
        record_module_hash("hashtest_mod", "aaaaaaaaaaaaaaaa");
        assert!(hash_mismatches(&[("hashtest_mod".into(), "aaaaaaaaaaaaaaaa".into())]).is_empty());
        assert!(hash_mismatches(&[("hashtest_other".into(), "bb".into())]).is_empty());
        let m = hash_mismatches(&[("hashtest_mod".into(), "bbbbbbbbbbbbbbbb".into())]);
        assert_eq!(m.len(), 1);
        assert!(
            m[0].contains("hashtest_mod") && m[0].contains("aaaaaaaaaaaa"),
            "{m:?}"
        );
    }

    #[test]
    fn builtins_are_registered_under_papy() {
        for name in [
            "ipasser", "npasser", "spasser", "nzipper", "szipper", "njoiner", "sjoiner", "plugger",
        ] {
            let f = lookup(name).unwrap();
            assert_eq!(f.name, format!("papy.{name}"));
            assert!(f.portable);
        }
    }

    #[test]
    fn unknown_name_suggests_close_ones() {
        match lookup("ipaser") {
            Err(Error::UnknownWorker { suggestions, .. }) => {
                assert!(
                    suggestions.contains(&"papy.ipasser".to_string()),
                    "{suggestions:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn register_refuses_duplicates_and_ambiguity_is_reported() {
        let mk =
            |n: &str| Function::closure(n, Arc::new(|_: &[Value], _: &[Value]| Ok(Value::Null)));
        let mut a = mk("regtest_a.same");
        a.portable = true;
        register(a).unwrap();
        register(mk("regtest_b.same")).unwrap();
        assert!(register(mk("regtest_b.same")).is_err());
        match lookup("same") {
            Err(Error::AmbiguousWorker { candidates, .. }) => {
                assert_eq!(candidates, ["regtest_a.same", "regtest_b.same"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lookup("regtest_a::same").unwrap().name, "regtest_a.same");
    }

    struct Fake;
    impl ImportResolver for Fake {
        fn resolve(&self, module: &str) -> std::result::Result<bool, String> {
            Ok(module == "fake_second")
        }
        fn describe(&self) -> String {
            "fake resolver".into()
        }
    }

    #[test]
    fn imports_alternatives_and_forgive() {
        add_import_resolver(Arc::new(Fake));
        let mut f = Function::closure(
            "imp.f",
            Arc::new(|_: &[Value], _: &[Value]| Ok(Value::Null)),
        );
        f.imports = vec!["fake_first, fake_second".into(), "papy".into()];
        assert!(resolve_imports(&f).unwrap().is_empty());
        f.imports = vec!["fake_missing".into()];
        let err = resolve_imports(&f).unwrap_err().to_string();
        assert!(
            err.contains("fake_missing") && err.contains("fake resolver"),
            "{err}"
        );
        f.forgive = true;
        let warnings = resolve_imports(&f).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("fake_missing"));
    }
}
