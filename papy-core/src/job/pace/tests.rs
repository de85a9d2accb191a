use super::*;

impl Pace {
    /// The job size chosen last.
    fn current(&self) -> usize {
        self.chunk.load(Ordering::Relaxed).max(1)
    }
}

#[test]
fn starts_at_one_item_then_grows_by_steps_to_the_target() {
    let p = Pace::default();
    let target = Duration::from_micros(100);
    assert_eq!(p.chunk(target, 10_000), 1);
    // 10 ns per item: the ideal is 10 000 items, reached in steps of x4
    // and capped at MAX_CHUNK.
    p.record(1, Duration::from_nanos(10));
    let steps: Vec<usize> = (0..8).map(|_| p.chunk(target, usize::MAX)).collect();
    assert_eq!(steps, [4, 16, 64, 256, 1024, 4096, 4096, 4096]);
    assert_eq!(p.current(), 4096);
}

#[test]
fn slow_items_shrink_jobs_at_once_and_stay_single() {
    let p = Pace::default();
    let target = Duration::from_micros(100);
    p.record(1, Duration::from_nanos(10));
    for _ in 0..6 {
        p.chunk(target, 1 << 20);
    }
    // Items now take 1 ms: the average moves within a few jobs, and the
    // size follows down to one item per job.
    for _ in 0..40 {
        p.record(4, Duration::from_millis(4));
    }
    assert_eq!(p.chunk(target, 1 << 20), 1);
}

#[test]
fn the_cap_given_is_kept() {
    let p = Pace::default();
    p.record(1000, Duration::from_micros(1));
    for _ in 0..10 {
        assert!(p.chunk(Duration::from_millis(1), 50) <= 50);
    }
    assert_eq!(p.chunk(Duration::from_millis(1), 0), 1);
}
