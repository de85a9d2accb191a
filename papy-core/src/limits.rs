//! The ranges every setting of the engine accepts, shared by the builders
//! ([`NuMapBuilder::build`](crate::NuMapBuilder::build),
//! [`Piper::validate`](crate::Piper::validate)) and the pipeline file's
//! validator, so a number the file accepts never panics or exhausts memory
//! at run time, and a number the engine refuses is refused by `papy check`.
//!
//! ```
//! use papy_core::limits;
//! assert!(limits::check_count("stride", 1000, limits::MAX_STRIDE).is_ok());
//! assert!(limits::check_count("stride", 0, limits::MAX_STRIDE).is_err());
//! assert!(limits::check_seconds("timeout", 1e20).is_err());
//! ```

use std::time::Duration;

/// Most worker threads or processes of one pool.
pub const MAX_WORKERS: usize = 4096;
/// Largest fixed stride (items pulled from a task per visit).
pub const MAX_STRIDE: usize = 1 << 20;
/// Largest buffer (items in flight).
pub const MAX_BUFFER: usize = 1 << 26;
/// Largest `produce`, `spawn` or `consume` of a node.
pub const MAX_FANOUT: usize = 1 << 20;
/// Most tasks a node spawns.
pub const MAX_SPAWN: usize = 4096;
/// Most items in one adaptive job (adaptive batching grows jobs up to
/// this): bounds memory and the time a reader of an ordered task waits
/// behind one job. A pool sizing its room in jobs (the broker's) reads it.
pub const MAX_JOB_ITEMS: usize = 4096;
/// Largest block of a `blocks` input, in bytes (a block is one item held
/// whole in memory).
pub const MAX_BLOCK_BYTES: usize = 1 << 30;
/// Most retries of one item.
pub const MAX_RETRIES: u32 = 1000;
/// Longest duration a setting takes, in seconds (a year).
pub const MAX_SECONDS: f64 = 366.0 * 24.0 * 3600.0;

/// Checks a count: at least 1 and at most `max`.
///
/// # Errors
/// A message naming `what` and the range.
pub fn check_count(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n == 0 {
        Err(format!("{what} must be at least 1"))
    } else if n > max {
        Err(format!("{what} ({n}) must be at most {max}"))
    } else {
        Ok(())
    }
}

/// Checks a duration in seconds: positive, finite, at most [`MAX_SECONDS`].
///
/// # Errors
/// A message naming `what` and the range.
pub fn check_seconds(what: &str, s: f64) -> Result<Duration, String> {
    if s > 0.0 && s <= MAX_SECONDS {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "{what} ({s}) must be a positive number of seconds, at most {MAX_SECONDS} (a year)"
        ))
    }
}

/// Checks a [`Duration`] against the same range as [`check_seconds`].
///
/// # Errors
/// A message naming `what` and the range.
pub fn check_duration(what: &str, d: Duration) -> Result<(), String> {
    if d.is_zero() || d.as_secs_f64() > MAX_SECONDS {
        Err(format!(
            "{what} ({d:?}) must be positive and at most {MAX_SECONDS} seconds (a year)"
        ))
    } else {
        Ok(())
    }
}
