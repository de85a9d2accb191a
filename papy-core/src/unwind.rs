//! The one `catch_unwind` helper: a panic in user code (a worker function,
//! an input iterator, an output callback) becomes a message, never an
//! unwinding thread of the engine.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; a panic becomes `Err` with the panic's message.
///
/// `f` is asserted unwind-safe: every caller either discards the state `f`
/// touched or turns the failure into an error item, so no broken invariant
/// is observed after a panic.
#[inline]
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| crate::error::panic_message(&*p))
}
