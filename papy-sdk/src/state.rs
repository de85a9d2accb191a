//! Per-worker state: the value a worker's init function returned, run
//! once when the worker starts (a database connection's settings, a model,
//! a lookup table), which every call on that worker can read.
//!
//! A thread of a thread pool sees its own thread's value; a worker process
//! sees its process's. Functions in a plugin (a `cdylib` with its own copy
//! of this crate) do not see it.

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::Value;

static PROCESS: OnceLock<Value> = OnceLock::new();

thread_local! {
    static THREAD: RefCell<Option<Value>> = const { RefCell::new(None) };
}

/// The state of the worker running this call: what its init function
/// returned, or `None` when it has none.
///
/// ```
/// use papy_sdk::{worker, worker_state, Value};
///
/// /// Looks `key` up in the table the worker's init loaded.
/// #[worker]
/// fn lookup(key: String) -> Value {
///     worker_state()
///         .and_then(|table| table.get(&key).cloned())
///         .unwrap_or(Value::Null)
/// }
/// assert_eq!(worker_state(), None);
/// ```
pub fn worker_state() -> Option<Value> {
    THREAD
        .with(|t| t.borrow().clone())
        .or_else(|| PROCESS.get().cloned())
}

/// Sets this thread's state (thread pools, after the thread's init).
#[doc(hidden)]
pub fn set_thread_state(v: Option<Value>) {
    THREAD.with(|t| *t.borrow_mut() = v);
}

/// Sets this process's state (a worker process, after its init); `Err`
/// when it was already set.
#[doc(hidden)]
pub fn set_process_state(v: Value) -> Result<(), Value> {
    PROCESS.set(v)
}
