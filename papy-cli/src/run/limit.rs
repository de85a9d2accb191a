//! `--max-errors` and `--fail-fast`: the failure limit that stops a run.

/// `--max-errors` / `--fail-fast`: stops the inputs at the failure that
/// reaches the limit, and remembers how many items were taken then.
#[derive(Default)]
pub(super) struct Limit {
    handle: std::sync::OnceLock<papy_core::StopHandle>,
    early: std::sync::atomic::AtomicBool,
    in_flight: std::sync::OnceLock<usize>,
}

impl Limit {
    /// The run started: a limit reached before this stops it now.
    pub(super) fn arm(&self, handle: Option<papy_core::StopHandle>) {
        if let Some(h) = handle {
            let _ = self.handle.set(h);
        }
        if self.early.load(std::sync::atomic::Ordering::Acquire) {
            self.reached();
        }
    }

    /// The limit is reached (once is enough).
    pub(super) fn reached(&self) {
        match self.handle.get() {
            Some(h) => {
                let _ = self.in_flight.get_or_init(|| h.request());
            }
            None => self.early.store(true, std::sync::atomic::Ordering::Release),
        }
    }

    /// The items taken when the limit stopped the run, if it did.
    pub(super) fn in_flight(&self) -> Option<usize> {
        self.in_flight.get().copied()
    }
}
