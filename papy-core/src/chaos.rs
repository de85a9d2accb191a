//! Schedule fuzzing: random delays and yields at every hand-off of the
//! engine, for tests that look for races.
//!
//! Every place where work passes from one thread to another (the feeder
//! submitting a job, a puller handing items over, a proxy writing or reading
//! a frame, a reader taking results, the Plumber starting and stopping its
//! NuMaps) calls [`point`]. Switched off (the default) a point is one relaxed
//! atomic load. Switched on, with [`enable`] or the `PAPY_CHAOS` environment
//! variable (`SEED` or `SEED:MAX_MICROS`), each point draws from a
//! per-thread generator seeded from the seed: nothing, a yield, or a sleep of
//! up to `max_delay`. A correct engine gives the same output under any
//! schedule; the property test `tests/schedule_fuzz.rs` and the
//! `soak` example check exactly that.
//!
//! ```
//! use std::time::Duration;
//! papy_core::chaos::enable(42, Duration::from_micros(200));
//! assert!(papy_core::chaos::enabled());
//! papy_core::chaos::disable();
//! assert!(!papy_core::chaos::enabled());
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);
static SEED: AtomicU64 = AtomicU64::new(0);
static MAX_MICROS: AtomicU64 = AtomicU64::new(0);
/// Bumped on every `enable`, so threads re-seed their generators.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static FROM_ENV: Once = Once::new();

/// The environment variable that switches schedule fuzzing on in any
/// process (`SEED` or `SEED:MAX_MICROS`, default 200 µs).
pub const CHAOS_ENV: &str = "PAPY_CHAOS";

thread_local! {
    static RNG: Cell<(u64, u64)> = const { Cell::new((u64::MAX, 0)) };
}

/// Switches fuzzing on for the whole process: each hand-off then waits a
/// random time of at most `max_delay` (or yields, or goes on at once).
pub fn enable(seed: u64, max_delay: Duration) {
    SEED.store(seed, Ordering::Relaxed);
    MAX_MICROS.store(
        u64::try_from(max_delay.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    EPOCH.fetch_add(1, Ordering::Relaxed);
    ENABLED.store(true, Ordering::Release);
}

/// Switches fuzzing off.
pub fn disable() {
    ENABLED.store(false, Ordering::Release);
}

/// Whether fuzzing is on.
pub fn enabled() -> bool {
    init_from_env();
    ENABLED.load(Ordering::Acquire)
}

/// Reads `PAPY_CHAOS` once (called when NuMaps and pools are built).
pub(crate) fn init_from_env() {
    FROM_ENV.call_once(|| {
        let Some(v) = std::env::var_os(CHAOS_ENV) else {
            return;
        };
        let v = v.to_string_lossy();
        let mut parts = v.splitn(2, ':');
        let seed = parts.next().and_then(|s| s.trim().parse::<u64>().ok());
        let micros = parts
            .next()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(200);
        match seed {
            Some(seed) => enable(seed, Duration::from_micros(micros)),
            None => tracing::warn!("{CHAOS_ENV}={v}: expected SEED or SEED:MAX_MICROS; ignored"),
        }
    });
}

/// A hand-off: when fuzzing is on, maybe waits a little. `site` names the
/// place (kept for debugging; it also varies the draw between sites).
#[inline]
pub fn point(site: &'static str) {
    if ENABLED.load(Ordering::Relaxed) {
        perturb(site);
    }
}

#[cold]
fn perturb(site: &'static str) {
    let epoch = EPOCH.load(Ordering::Relaxed);
    let r = RNG.with(|cell| {
        let (e, mut x) = cell.get();
        if e != epoch || x == 0 {
            // Seed per thread: the run's seed mixed with the thread's id.
            let id = format!("{:?}", std::thread::current().id());
            x = SEED.load(Ordering::Relaxed) ^ 0x9E37_79B9_7F4A_7C15;
            for b in id.bytes() {
                x = (x ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
            }
            x |= 1;
        }
        for b in site.bytes().take(4) {
            x ^= u64::from(b);
        }
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x |= 1;
        cell.set((epoch, x));
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    });
    match r % 8 {
        0..=2 => {}
        3..=4 => std::thread::yield_now(),
        _ => {
            let max = MAX_MICROS.load(Ordering::Relaxed).max(1);
            std::thread::sleep(Duration::from_micros((r >> 8) % max));
        }
    }
}
