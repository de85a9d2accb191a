//! Moments of a run that code outside the engine acts on, without the
//! engine naming it: the built-in library (`func/`) registers what it
//! must do when a batch of items is done (complete the compressed
//! streams it wrote), when a run ends, and when a worker's host is done
//! with it (remove the named pipes no reader took). The engine calls
//! [`run`] at those moments; every arrow still points down.

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A batch of items has run in a worker, before its results are sent:
    /// what it wrote must be on disk by then.
    BatchDone,
    /// A Plumber's run finished or stopped.
    RunEnd,
    /// A worker's host is done with it (the session ends).
    SessionEnd,
}

/// A registered hook: `run` is called at `when`.
#[derive(Debug)]
pub struct Hook {
    /// The moment.
    pub when: When,
    /// What to do (it reports its own failures: nobody is left to).
    pub run: fn(),
}

inventory::collect!(Hook);

/// Runs every hook registered for `when`.
///
/// ```
/// // With nothing registered for the moment, nothing happens.
/// papy_core::hooks::run(papy_core::hooks::When::RunEnd);
/// ```
pub fn run(when: When) {
    for h in inventory::iter::<Hook> {
        if h.when == when {
            (h.run)();
        }
    }
}
