//! What `#[worker]` registers: [`WorkerDescriptor`]s submitted with
//! [`inventory`], read back as [`Function`]s (a name, parameters, imports,
//! documentation and a type-erased body).
//!
//! The table that finds functions by name, and functions registered at run
//! time (plugins), belong to the engine (`papy_core::registry`), which
//! re-exports everything here.

use std::fmt;
use std::sync::Arc;

use crate::error::{ErrorKind, ItemError};
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

/// A whole batch in its packed form (a plugin's batch entry point, called
/// on a frame's own bytes): `n` values packed one after the other (see
/// [`packed`](crate::packed)) and the arguments in; each value's result
/// appended to the buffer, packed (nil where the item failed), and the
/// failures returned by position. `Err`: the batch as a whole could not be
/// run or answered (nothing is appended then): the caller runs its items
/// another way.
pub type PackedFn = dyn Fn(&[u8], usize, &[Value], &mut Vec<u8>) -> Result<Vec<(usize, ItemError)>, ItemError>
    + Send
    + Sync;

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

impl std::fmt::Debug for Callable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Callable::Static(_) => "Callable::Static(..)",
            Callable::Dynamic(_) => "Callable::Dynamic(..)",
        })
    }
}

/// A callable function with its metadata, as held by a worker (a composition of functions).
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
    /// The same batch on packed values, when the function has one: a
    /// process worker hands it a frame's bytes without decoding them.
    pub packed: Option<Arc<PackedFn>>,
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
            packed: None,
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
            packed: None,
        }
    }

    /// The function a descriptor describes.
    pub fn from_descriptor(d: &'static WorkerDescriptor) -> Function {
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
            packed: None,
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

/// Writes `a::b::c` as `a.b.c`.
pub fn normalise(name: &str) -> String {
    name.replace("::", ".")
}

/// Every function registered with `#[worker]` in this binary (this
/// plugin, when called in a plugin), as [`Function`]s, in no set order.
pub fn registered() -> impl Iterator<Item = Function> {
    inventory::iter::<WorkerDescriptor>
        .into_iter()
        .map(Function::from_descriptor)
}

/// Every module declared with [`module!`](crate::module) in this binary.
pub fn declared_modules() -> impl Iterator<Item = &'static str> {
    inventory::iter::<ModuleDescriptor>
        .into_iter()
        .map(|m| m.name)
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
