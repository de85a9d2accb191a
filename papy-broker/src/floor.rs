//! The shortest recent sample of a time (a windowed minimum): how far a
//! broker is, as opposed to how long entries queue. Holding more in flight
//! builds queues, which would raise an average and ask for still more; the
//! minimum of the last second or two follows only the distance. Also the
//! moving [`average`] that the measures of item times use.

use std::time::{Duration, Instant};

/// How long one window lasts: the floor is the shortest sample of the
/// current window and the one before.
const WINDOW: Duration = Duration::from_secs(1);

/// A windowed minimum of samples in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Floor {
    current: Option<u64>,
    previous: Option<u64>,
    since: Option<Instant>,
}

impl Floor {
    /// Records `sample`, taken at `now`.
    pub(crate) fn record(&mut self, sample: u64, now: Instant) {
        match self.since {
            Some(t) if now.saturating_duration_since(t) < WINDOW => {
                self.current = Some(self.current.map_or(sample, |c| c.min(sample)));
            }
            _ => {
                self.previous = self.current;
                self.current = Some(sample);
                self.since = Some(now);
            }
        }
    }

    /// The shortest sample of this window and the one before (`None`:
    /// none yet).
    pub(crate) fn get(&self) -> Option<u64> {
        self.current.into_iter().chain(self.previous).min()
    }
}

/// A moving average with a weight of 1/4 for `sample` (`old` 0: none
/// yet, `sample` is the average).
pub(crate) fn average(old: u64, sample: u64) -> u64 {
    if old == 0 {
        sample
    } else {
        old - old / 4 + sample / 4
    }
}

#[cfg(test)]
mod tests {
    use super::{Floor, WINDOW};
    use std::time::Instant;

    #[test]
    fn the_floor_is_the_shortest_sample_of_two_windows() {
        let t0 = Instant::now();
        let mut f = Floor::default();
        assert_eq!(f.get(), None);
        f.record(100, t0);
        f.record(900, t0);
        assert_eq!(f.get(), Some(100), "a queue does not raise it");
        // A window later, the 100 still counts; two windows later it does not.
        f.record(500, t0 + WINDOW);
        assert_eq!(f.get(), Some(100));
        f.record(700, t0 + 2 * WINDOW);
        assert_eq!(f.get(), Some(500));
        f.record(50, t0 + 2 * WINDOW);
        assert_eq!(f.get(), Some(50), "a shorter one lowers it at once");
    }
}
