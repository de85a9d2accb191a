//! [`Worker`]: a composition of functions, each with its own arguments.
//!
//! `Worker` is PaPy's `Worker((f, g), ((a,), (b,)))`: calling it on an inbox
//! computes `g(f(inbox, a), b)`. The first function receives the inbox (one
//! element per input pipe); every later function receives a one-element
//! inbox holding the previous result.
//!
//! Errors are values: an error in the inbox skips every call and is passed
//! on with the current node appended to its path; an error returned by a
//! function, a failed conversion, or a panic becomes an [`ItemError`] naming
//! the function, the node and the index of the input.
//!
//! ```
//! use papy_core::{Value, Worker};
//! let double = Worker::from_fn("double", |inbox: &[Value]| -> Result<Value, String> {
//!     Ok(Value::Int(inbox[0].as_int().ok_or("not an int")? * 2))
//! });
//! let pick = Worker::with_args("papy.ipasser", [0]).unwrap();
//! let w = pick.then(double);
//! assert_eq!(w.name(), "papy.ipasser>double");
//! assert_eq!(w.call(&[Value::Int(21)]).unwrap(), Value::Int(42));
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::catch;
use crate::error::{Error, ErrorKind, Item, ItemError, Result};
use crate::registry::{self, Function};
use crate::value::Value;

/// Arguments for one function of a Worker: by position or by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Args {
    /// No arguments.
    #[default]
    None,
    /// Positional arguments, in parameter order.
    Positional(Vec<Value>),
    /// Arguments by parameter name.
    Named(Vec<(String, Value)>),
}

impl Args {
    /// Positional arguments.
    pub fn positional<T: Into<Value>>(args: impl IntoIterator<Item = T>) -> Args {
        Args::Positional(args.into_iter().map(Into::into).collect())
    }

    /// Named arguments.
    pub fn named<K: Into<String>, T: Into<Value>>(args: impl IntoIterator<Item = (K, T)>) -> Args {
        let args = args.into_iter().map(|(k, v)| (k.into(), v.into()));
        Args::Named(args.collect())
    }
}

/// One function of a Worker chain, with its bound (positional) arguments.
#[derive(Clone)]
pub struct Step {
    function: Arc<Function>,
    args: Vec<Value>,
}

impl Step {
    /// The function.
    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }

    /// The arguments, in parameter order.
    pub fn args(&self) -> &[Value] {
        &self.args
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?})", self.function.name, self.args)
    }
}

/// A chain of functions with arguments, evaluated left to right.
#[derive(Clone)]
pub struct Worker {
    steps: Arc<[Step]>,
}

fn bind(function: &Function, args: Args) -> Result<Vec<Value>> {
    let bad = |message: String| Error::Arguments {
        function: function.name.clone(),
        message,
    };
    let Some(params) = &function.params else {
        return match args {
            Args::None => Ok(Vec::new()),
            Args::Positional(v) => Ok(v),
            Args::Named(_) => Err(bad(
                "this function takes raw positional arguments, not named ones".into(),
            )),
        };
    };
    let mut bound: Vec<Option<Value>> = vec![None; params.len()];
    match args {
        Args::None => {}
        Args::Positional(v) => {
            if v.len() > params.len() {
                return Err(bad(format!(
                    "takes {} argument(s), got {}",
                    params.len(),
                    v.len()
                )));
            }
            for (slot, x) in bound.iter_mut().zip(v) {
                *slot = Some(x);
            }
        }
        Args::Named(v) => {
            for (k, x) in v {
                let Some(i) = params.iter().position(|p| p.name == k) else {
                    let names: Vec<&str> = params.iter().map(|p| p.name).collect();
                    return Err(bad(format!(
                        "no parameter named `{k}` (parameters: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )));
                };
                if bound[i].is_some() {
                    return Err(bad(format!("argument `{k}` given twice")));
                }
                bound[i] = Some(x);
            }
        }
    }
    let mut out = Vec::with_capacity(params.len());
    for (p, v) in params.iter().zip(bound) {
        match v {
            Some(v) => out.push(v),
            None if p.optional => out.push(Value::Null),
            None => return Err(bad(format!("missing argument `{}`", p.name))),
        }
    }
    Ok(out)
}

/// An error from the inbox, with `node` appended to its path, unless it
/// arose in this node's own input stage (a join's unmatched item).
fn passed_on(e: &ItemError, node: &str) -> ItemError {
    if e.path().last().is_some_and(|n| n == node) {
        e.clone()
    } else {
        e.clone().via(node)
    }
}

impl Worker {
    /// A Worker of one registered function without arguments.
    ///
    /// # Errors
    /// Unknown or ambiguous name, missing required arguments, or a missing import.
    pub fn new(name: &str) -> Result<Worker> {
        Worker::build(name, Args::None)
    }

    /// A Worker of one registered function with positional arguments.
    ///
    /// # Errors
    /// As [`Worker::new`], plus too many arguments.
    pub fn with_args<T: Into<Value>>(
        name: &str,
        args: impl IntoIterator<Item = T>,
    ) -> Result<Worker> {
        Worker::build(name, Args::positional(args))
    }

    /// A Worker of one registered function with arguments by name.
    ///
    /// # Errors
    /// As [`Worker::new`], plus unknown parameter names.
    pub fn with_named<K: Into<String>, T: Into<Value>>(
        name: &str,
        args: impl IntoIterator<Item = (K, T)>,
    ) -> Result<Worker> {
        Worker::build(name, Args::named(args))
    }

    /// A Worker of one registered function with [`Args`].
    ///
    /// # Errors
    /// As [`Worker::new`].
    pub fn build(name: &str, args: Args) -> Result<Worker> {
        Worker::from_function(registry::lookup(name)?, args)
    }

    /// A Worker of a [`Function`] (registered or not) with [`Args`]; the
    /// function's imports are resolved in this process.
    ///
    /// # Errors
    /// Argument mismatch or a missing import.
    pub fn from_function(function: Arc<Function>, args: Args) -> Result<Worker> {
        let args = bind(&function, args)?;
        registry::resolve_imports(&function)?;
        Ok(Worker::of_step(function, args))
    }

    /// A Worker of a closure over the inbox. Closures run on thread pools
    /// and linear nodes only; process and remote pools refuse them.
    pub fn from_fn<F, E>(name: impl Into<String>, f: F) -> Worker
    where
        F: Fn(&[Value]) -> std::result::Result<Value, E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        let body = move |inbox: &[Value], _: &[Value]| {
            f(inbox).map_err(|e| ItemError::new(ErrorKind::Function, e.to_string()))
        };
        Worker::from_closure(Function::closure(name, Arc::new(body)))
    }

    /// A Worker of a typed closure over a single input.
    ///
    /// ```
    /// use papy_core::{Value, Worker};
    /// let w = Worker::typed("len", |s: String| s.len());
    /// assert_eq!(w.call(&[Value::from("abc")]).unwrap(), Value::Int(3));
    /// assert!(w.call(&[Value::Int(1)]).is_err());
    /// ```
    pub fn typed<A, R, F>(name: impl Into<String>, f: F) -> Worker
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        use registry::__private as p;
        let body = move |inbox: &[Value], _: &[Value]| {
            p::check_inbox(inbox, 1)?;
            p::output(f(p::inbox::<A>(inbox, 0)?))
        };
        Worker::from_closure(Function::closure(name, Arc::new(body)))
    }

    fn from_closure(function: Function) -> Worker {
        Worker::of_step(Arc::new(function), Vec::new())
    }

    fn of_step(function: Arc<Function>, args: Vec<Value>) -> Worker {
        Worker {
            steps: Arc::new([Step { function, args }]),
        }
    }

    /// Composes: `self.then(g)` computes `g(self(inbox))`.
    pub fn then(self, next: Worker) -> Worker {
        let steps = self.steps.iter().chain(next.steps.iter()).cloned();
        Worker {
            steps: steps.collect(),
        }
    }

    /// Composes several Workers left to right.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list.
    pub fn chain(workers: impl IntoIterator<Item = Worker>) -> Result<Worker> {
        let steps: Arc<[Step]> = workers.into_iter().flat_map(|w| w.steps.to_vec()).collect();
        if steps.is_empty() {
            return Err(Error::Config("a Worker needs at least one function".into()));
        }
        Ok(Worker { steps })
    }

    /// The function names joined by `>` (PaPy's `__name__`).
    pub fn name(&self) -> String {
        let names: Vec<&str> = self
            .steps
            .iter()
            .map(|s| s.function.name.as_str())
            .collect();
        names.join(">")
    }

    /// The chain.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// `true` when every function is registered by name, so the Worker can
    /// run in another process.
    pub fn is_portable(&self) -> bool {
        self.first_closure().is_none()
    }

    /// The first non-portable function, if any.
    pub fn first_closure(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| !s.function.portable)
            .map(|s| s.function.name.as_str())
    }

    /// Calls the chain on plain values (outside any node).
    ///
    /// # Errors
    /// The [`ItemError`] of the failing function.
    pub fn call(&self, inbox: &[Value]) -> Item {
        let current = Cell::new(0);
        catch(|| self.run_chain(inbox, None, 0, &current))
            .unwrap_or_else(|p| Err(self.panic_error(p, current.get(), None, 0)))
    }

    /// Evaluates the chain on an inbox of items inside node `node`, for the
    /// item at `index`. An error in the inbox skips every call and comes back
    /// with `node` appended to its path.
    pub fn eval(&self, inbox: &[Item], node: &str, index: u64) -> Item {
        let current = Cell::new(0);
        catch(|| self.eval_unguarded(inbox, node, index, &current))
            .unwrap_or_else(|p| Err(self.panic_error(p, current.get(), Some(node), index)))
    }

    /// Evaluates `n` items, appending their results to `out`: item `i` has
    /// inbox `inbox(i)` and index `index(i)`. Panics are caught per segment
    /// rather than per item (a panic costs a restart of the segment after
    /// the failing item), which keeps the per-item cost of cheap functions low.
    pub fn eval_batch<'a>(
        &self,
        n: usize,
        inbox: impl Fn(usize) -> &'a [Item],
        index: impl Fn(usize) -> u64,
        node: &str,
        out: &mut Vec<Item>,
    ) {
        // Spans: what the functions log is attributed to its node and batch
        // (`node{name=..}:batch{first=.. items=..}`), in threads and worker processes.
        let _node = tracing::info_span!("node", name = node).entered();
        let _batch =
            (n > 0).then(|| tracing::debug_span!("batch", first = index(0), items = n).entered());
        tracing::trace!("evaluating");
        let start = out.len();
        out.reserve(n);
        if self.eval_batch_whole(n, &inbox, &index, node, out) {
            return;
        }
        let current = Cell::new(0);
        loop {
            let done = out.len() - start;
            if done >= n {
                return;
            }
            let r = catch(|| {
                for i in done..n {
                    out.push(self.eval_unguarded(inbox(i), node, index(i), &current));
                }
            });
            if let Err(p) = r {
                let i = out.len() - start;
                out.push(Err(self.panic_error(
                    p,
                    current.get(),
                    Some(node),
                    index(i),
                )));
            }
        }
    }

    /// One call for the whole batch, when the Worker is a single function
    /// with a batch entry point (a plugin function, ABI 1.2) and every inbox
    /// holds one item: errors pass on, values go in one call. `false` when
    /// the batch does not qualify (nothing was pushed then).
    fn eval_batch_whole<'a>(
        &self,
        n: usize,
        inbox: &impl Fn(usize) -> &'a [Item],
        index: &impl Fn(usize) -> u64,
        node: &str,
        out: &mut Vec<Item>,
    ) -> bool {
        let [step] = &self.steps[..] else {
            return false;
        };
        let Some(batch) = &step.function.batch else {
            return false;
        };
        if n < 2 || (0..n).any(|i| inbox(i).len() != 1) {
            return false;
        }
        let values: Vec<&[Value]> = (0..n)
            .filter_map(|i| match &inbox(i)[0] {
                Ok(v) => Some(std::slice::from_ref(v)),
                Err(_) => None,
            })
            .collect();
        let Ok(results) = catch(|| batch(&values, &step.args)) else {
            // The host side of the call panicked: evaluate item by item.
            return false;
        };
        if results.len() != values.len() {
            return false;
        }
        let mut results = results.into_iter();
        for i in 0..n {
            let item = match &inbox(i)[0] {
                Err(e) => Err(passed_on(e, node)),
                Ok(_) => match results.next() {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(e)) => Err(e
                        .with_function(step.function.name.clone())
                        .at(node, index(i))),
                    None => Err(ItemError::new(
                        ErrorKind::WorkerDied,
                        "the batch returned too few results",
                    )
                    .at(node, index(i))),
                },
            };
            out.push(item);
        }
        true
    }

    /// Evaluates `n` single-input items one at a time: item `i` is
    /// `input(i)` (a value, or an error passed on without a call) with index
    /// `index(i)`, and its result goes to `output(i, result)` as soon as it
    /// is known, so a batch never has to be held in memory (process workers
    /// decode, call and encode each item in one pass). Panics of the chain
    /// are caught per segment, as in [`eval_batch`](Self::eval_batch);
    /// `input` and `output` must not panic themselves.
    ///
    /// ```
    /// use papy_core::{Value, Worker};
    /// let w = Worker::typed("inc", |x: i64| x + 1);
    /// let mut out = Vec::new();
    /// w.eval_each(3, |i| Ok(Value::Int(i as i64)), |i| i as u64, "node", |_, r| out.push(r));
    /// assert_eq!(out, [Ok(Value::Int(1)), Ok(Value::Int(2)), Ok(Value::Int(3))]);
    /// ```
    pub fn eval_each(
        &self,
        n: usize,
        mut input: impl FnMut(usize) -> Item,
        index: impl Fn(usize) -> u64,
        node: &str,
        mut output: impl FnMut(usize, Item),
    ) {
        let _node = tracing::info_span!("node", name = node).entered();
        let _batch =
            (n > 0).then(|| tracing::debug_span!("batch", first = index(0), items = n).entered());
        tracing::trace!("evaluating");
        let current = Cell::new(0);
        let next = Cell::new(0usize);
        while next.get() < n {
            let r = catch(|| {
                while next.get() < n {
                    let i = next.get();
                    let item = input(i);
                    let result =
                        self.eval_unguarded(std::slice::from_ref(&item), node, index(i), &current);
                    next.set(i + 1);
                    output(i, result);
                }
            });
            if let Err(p) = r {
                let i = next.get();
                next.set(i + 1);
                let e = self.panic_error(p, current.get(), Some(node), index(i));
                output(i, Err(e));
            }
        }
    }

    fn panic_error(
        &self,
        message: String,
        step: usize,
        node: Option<&str>,
        index: u64,
    ) -> ItemError {
        let mut e = ItemError::new(ErrorKind::Panic, message);
        if let Some(s) = self.steps.get(step) {
            e = e.with_function(s.function.name.clone());
        }
        match node {
            Some(n) => e.at(n, index),
            None => e,
        }
    }

    fn eval_unguarded(
        &self,
        inbox: &[Item],
        node: &str,
        index: u64,
        current: &Cell<usize>,
    ) -> Item {
        if let [one] = inbox {
            return match one {
                Ok(v) => self.run_chain(std::slice::from_ref(v), Some(node), index, current),
                Err(e) => Err(passed_on(e, node)),
            };
        }
        let values: Result<Vec<Value>, _> = inbox.iter().map(|i| i.as_ref().cloned()).collect();
        let values = values.map_err(|e| passed_on(e, node))?;
        self.run_chain(&values, Some(node), index, current)
    }

    fn run_chain(
        &self,
        inbox: &[Value],
        node: Option<&str>,
        index: u64,
        current: &Cell<usize>,
    ) -> Item {
        let fail = |s: &Step, e: ItemError| {
            let e = e.with_function(s.function.name.clone());
            Err(match node {
                Some(n) => e.at(n, index),
                None => e,
            })
        };
        let [first, rest @ ..] = &self.steps[..] else {
            return Ok(Value::Null);
        };
        current.set(0);
        let mut acc = match first.function.invoke(inbox, &first.args) {
            Ok(v) => v,
            Err(e) => return fail(first, e),
        };
        for (k, s) in rest.iter().enumerate() {
            current.set(k + 1);
            acc = match s.function.invoke(std::slice::from_ref(&acc), &s.args) {
                Ok(v) => v,
                Err(e) => return fail(s, e),
            };
        }
        Ok(acc)
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.steps.iter()).finish()
    }
}

impl PartialEq for Worker {
    fn eq(&self, other: &Self) -> bool {
        self.steps.len() == other.steps.len()
            && self
                .steps
                .iter()
                .zip(other.steps.iter())
                .all(|(a, b)| Arc::ptr_eq(&a.function, &b.function) && a.args == b.args)
    }
}

#[cfg(test)]
mod tests;
