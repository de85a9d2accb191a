//! The buffer: a counting semaphore bounding items submitted to the pool
//! and not yet handed to a reader.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub(crate) struct Credits {
    avail: Mutex<usize>,
    cv: Condvar,
    closed: AtomicBool,
    /// Bumped on every release: "progress" for stall detection.
    releases: AtomicU64,
    size: usize,
}

fn lock(m: &Mutex<usize>) -> MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Credits {
    pub(crate) fn new(size: usize) -> Credits {
        Credits {
            avail: Mutex::new(size),
            cv: Condvar::new(),
            closed: AtomicBool::new(false),
            releases: AtomicU64::new(0),
            size,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Items currently submitted and not handed out.
    pub(crate) fn in_use(&self) -> usize {
        self.size - *lock(&self.avail)
    }

    /// Takes `n` credits (n <= size), blocking. Returns `false` when closed.
    /// After `stall` without any release, calls `on_stall` once per stall.
    pub(crate) fn acquire(&self, n: usize, stall: Duration, on_stall: &dyn Fn()) -> bool {
        let mut avail = lock(&self.avail);
        let mut since = Instant::now();
        let mut seen = self.releases.load(Ordering::Acquire);
        let mut warned = false;
        while *avail < n {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            let (guard, _) = self
                .cv
                .wait_timeout(avail, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner);
            avail = guard;
            let now_seen = self.releases.load(Ordering::Acquire);
            if now_seen != seen {
                seen = now_seen;
                since = Instant::now();
                warned = false;
            } else if !warned && since.elapsed() >= stall {
                warned = true;
                drop(avail);
                on_stall();
                avail = lock(&self.avail);
            }
        }
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        *avail -= n;
        true
    }

    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut avail = lock(&self.avail);
        *avail = (*avail + n).min(self.size);
        self.releases.fetch_add(1, Ordering::Release);
        drop(avail);
        self.cv.notify_all();
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = lock(&self.avail);
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn acquire_blocks_until_release_and_close_wakes() {
        let c = Arc::new(Credits::new(4));
        assert!(c.acquire(4, Duration::from_secs(10), &|| {}));
        assert_eq!(c.in_use(), 4);
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.acquire(2, Duration::from_secs(10), &|| {}));
        std::thread::sleep(Duration::from_millis(20));
        c.release(2);
        assert!(t.join().unwrap());
        let c3 = c.clone();
        let t = std::thread::spawn(move || c3.acquire(1, Duration::from_secs(10), &|| {}));
        c.close();
        assert!(!t.join().unwrap());
    }

    #[test]
    fn stall_callback_fires_without_progress() {
        let c = Credits::new(1);
        assert!(c.acquire(1, Duration::from_secs(1), &|| {}));
        let fired = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                c.acquire(1, Duration::from_millis(50), &|| {
                    fired.store(true, Ordering::SeqCst);
                })
            });
            while !fired.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            c.release(1);
        });
        assert!(fired.load(Ordering::SeqCst));
    }
}
