//! The one `catch_unwind` helper: a panic in user code (a worker function,
//! an input iterator, an output callback) becomes a message, never an
//! unwinding thread of the engine.
//!
//! A caught panic becomes an error item that carries its message, so
//! printing it as well is noise (thousands of lines when many items fail,
//! a backtrace each under `RUST_BACKTRACE`): after [`quiet_caught_panics`]
//! the panic hook stays silent for panics that [`catch`] catches and
//! prints every other panic as before.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`; a panic becomes `Err` with the panic's message.
///
/// `f` is asserted unwind-safe: every caller either discards the state `f`
/// touched or turns the failure into an error item, so no broken invariant
/// is observed after a panic.
///
/// ```
/// let r: Result<(), String> = papy_sdk::catch(|| panic!("boom"));
/// assert_eq!(r, Err("boom".to_string()));
/// ```
#[inline]
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    CATCHING.with(|c| c.set(c.get().saturating_add(1)));
    let _depth = Depth;
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| crate::error::panic_message(&*p))
}

/// Installs (once) a panic hook that prints nothing for panics [`catch`]
/// catches (they become error items carrying the message) and hands every
/// other panic to the hook that was installed before. The `papy` command
/// line and plugins call it; a library calls it when it wants the same.
pub fn quiet_caught_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}
