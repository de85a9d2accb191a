//! How many entries a worker holds at once (read, and not yet
//! acknowledged): enough that the one it runs next is already there when
//! it finishes one, however far Redis is. An entry costs round trips
//! besides its run (its read, the claim of its job, the result's write);
//! while they travel, the worker runs the entries it read ahead. So it
//! holds one entry plus as many as its runs take to cover that overhead,
//! as measured, within [`ServeOptions::read_ahead`] and [`READ_AHEAD_BYTES`].
//!
//! [`ServeOptions::read_ahead`]: crate::ServeOptions::read_ahead

use std::time::{Duration, Instant};

use papy_core::sync::Monitor;

use crate::floor::{average, Floor};

/// No further entry is read ahead while those held hold this many bytes
/// (one entry is always taken, whatever its size, as without read-ahead).
pub(crate) const READ_AHEAD_BYTES: usize = 64 << 20;

/// Entries held before anything is measured, and at least: one run, one
/// read ahead (at most [`ServeOptions::read_ahead`]).
///
/// [`ServeOptions::read_ahead`]: crate::ServeOptions::read_ahead
const FIRST_DEPTH: usize = 2;

#[derive(Debug, Default)]
struct State {
    entries: usize,
    bytes: usize,
    /// The shortest recent overhead of an entry (held minus run), in us.
    overhead_us: Floor,
    /// How long an entry runs, in us (moving average); 0: not measured.
    run_us: u64,
    /// No reading ahead (see [`Window::read_ahead`]).
    one_at_a_time: bool,
}

/// The entries a worker holds, and how many it may.
#[derive(Debug)]
pub(crate) struct Window {
    /// Signalled when entries are let go (or the session ends).
    state: Monitor<State>,
    most: usize,
}

impl Window {
    /// A window of at most `most` entries.
    pub(crate) fn new(most: usize) -> Window {
        Window {
            state: Monitor::default(),
            most: most.max(1),
        }
    }

    /// Entries to hold: one, and as many more as runs cover the overhead
    /// (one at least).
    fn depth(&self, s: &State) -> usize {
        let depth = match (s.one_at_a_time, s.run_us, s.overhead_us.get()) {
            (true, ..) => return 1,
            (_, run @ 1.., Some(overhead)) => {
                1 + usize::try_from(overhead.div_ceil(run)).unwrap_or(usize::MAX)
            }
            _ => FIRST_DEPTH,
        };
        depth.max(FIRST_DEPTH).min(self.most)
    }

    fn free(&self, s: &State) -> usize {
        if s.bytes >= READ_AHEAD_BYTES && s.entries > 0 {
            return 0;
        }
        self.depth(s).saturating_sub(s.entries)
    }

    /// How many more entries may be read now, waiting up to `wait` for
    /// room (0: none).
    pub(crate) fn room(&self, wait: Duration) -> usize {
        let s = self
            .state
            .wait_timeout_while(self.state.lock(), wait, |s| self.free(s) == 0);
        self.free(&s)
    }

    /// Whether to read ahead at all (not in a run of one attempt per
    /// entry): a worker that dies costs every entry it holds a delivery,
    /// those read ahead too (they are reclaimed as the one it ran); with
    /// one attempt, that would dead-letter them.
    pub(crate) fn read_ahead(&self, ahead: bool) {
        self.state.lock().one_at_a_time = !ahead;
        self.wake();
    }

    /// `n` entries of `bytes` bytes taken.
    pub(crate) fn take(&self, n: usize, bytes: usize) {
        let mut s = self.state.lock();
        s.entries += n;
        s.bytes += bytes;
    }

    /// `n` entries of `bytes` bytes let go; `measured`: for those run, how
    /// long they were held and how long they ran.
    pub(crate) fn release(&self, n: usize, bytes: usize, measured: &[(Duration, Duration)]) {
        let (mut s, now) = (self.state.lock(), Instant::now());
        s.entries = s.entries.saturating_sub(n);
        s.bytes = s.bytes.saturating_sub(bytes);
        for (held, ran) in measured {
            let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            s.overhead_us.record(us(held.saturating_sub(*ran)), now);
            s.run_us = average(s.run_us, us(*ran)).max(1);
        }
        self.wake();
    }

    /// Wakes a reader waiting for room (entries let go, or the session ends).
    pub(crate) fn wake(&self) {
        self.state.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::{Window, FIRST_DEPTH, READ_AHEAD_BYTES};
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_window_holds_what_covers_the_overhead_within_its_bounds() {
        let w = Window::new(8);
        assert_eq!(w.room(Duration::ZERO), FIRST_DEPTH, "nothing measured");
        w.take(2, 10);
        assert_eq!(w.room(Duration::ZERO), 0, "full: no room");
        // Entries of 10 ms held 40 ms: 3 more cover their 30 ms overhead.
        w.release(2, 10, &[(40 * MS, 10 * MS), (40 * MS, 10 * MS)]);
        assert_eq!(w.room(Duration::ZERO), 4);
        // Far away (an overhead of 150 ms), short runs: the bound.
        let far = Window::new(8);
        far.release(0, 0, &[(150 * MS, Duration::from_micros(100)); 8]);
        assert_eq!(far.room(Duration::ZERO), 8);
        // Long runs, a short overhead: one run, one read ahead.
        let slow = Window::new(8);
        slow.release(0, 0, &[(21 * MS, 20 * MS)]);
        assert_eq!(slow.room(Duration::ZERO), 2);
        // Bytes: one large entry held fills the window.
        far.take(1, READ_AHEAD_BYTES);
        assert_eq!(far.room(Duration::ZERO), 0);
        far.release(1, READ_AHEAD_BYTES, &[]);
        assert_eq!(far.room(Duration::ZERO), 8);
        // Not reading ahead: one at a time.
        far.read_ahead(false);
        assert_eq!(far.room(Duration::ZERO), 1);
    }
}
