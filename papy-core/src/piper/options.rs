//! [`PiperOptions`]: a node's options, one type for the [`Piper`](crate::Piper)
//! builder and the pipeline file's `[[pipers]]` table, so a saved pipeline
//! loads back with the same options by construction.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits;
use crate::numap::TaskOptions;

/// The options of a node (everything but its name, worker, NuMap and
/// inputs). In a pipeline file they are keys of a `[[pipers]]` table;
/// durations are written in seconds.
///
/// ```
/// use papy_core::piper::PiperOptions;
/// let o = PiperOptions { consume: 10, ..PiperOptions::default() };
/// assert_eq!(o.produce, 1);
/// assert_eq!(o.validate(true), Ok(()));
/// assert!(PiperOptions { consume: 0, ..o }.validate(true).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PiperOptions {
    /// Items emitted per result (the result must be a list of that many).
    #[serde(skip_serializing_if = "is_one")]
    pub produce: usize,
    /// With `produce = m`: emit each whole result `m` times instead of
    /// splitting a list of `m` (PaPy's `repeat`).
    #[serde(skip_serializing_if = "is_default")]
    pub repeat: bool,
    /// Tasks the worker runs as on the NuMap.
    #[serde(skip_serializing_if = "is_one")]
    pub spawn: usize,
    /// Items per call (each inbox element becomes a list of up to that many).
    #[serde(skip_serializing_if = "is_one")]
    pub consume: usize,
    /// Per-item timeout (parallel nodes only).
    #[serde(with = "opt_seconds", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Topological tie-breaker (lower first).
    #[serde(skip_serializing_if = "is_default")]
    pub branch: i64,
    /// Stop the run on the first error item reaching this node's output.
    #[serde(skip_serializing_if = "is_default")]
    pub debug: bool,
    /// Keep every output item by index in the statistics.
    #[serde(skip_serializing_if = "is_default")]
    pub track: bool,
    /// Override the NuMap's ordering for this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
    /// Retries of items whose worker died or timed out.
    #[serde(skip_serializing_if = "is_default")]
    pub retries: u32,
    /// Pause before each retry.
    #[serde(with = "seconds", skip_serializing_if = "is_default_backoff")]
    pub retry_backoff: Duration,
    /// Run each item at most once (see [`TaskOptions::once`]).
    #[serde(skip_serializing_if = "is_default")]
    pub once: bool,
}

/// The default pause between retries.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);

impl Default for PiperOptions {
    fn default() -> Self {
        PiperOptions {
            produce: 1,
            repeat: false,
            spawn: 1,
            consume: 1,
            timeout: None,
            branch: 0,
            debug: false,
            track: false,
            ordered: None,
            retries: 0,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            once: false,
        }
    }
}

impl PiperOptions {
    /// The keys of these options in a `[[pipers]]` table.
    pub const KEYS: &'static [&'static str] = &[
        "produce",
        "repeat",
        "spawn",
        "consume",
        "timeout",
        "branch",
        "debug",
        "track",
        "ordered",
        "retries",
        "retry_backoff",
        "once",
    ];

    /// The options of the node's tasks on its NuMap; `dependent` when its
    /// input waits on another node's results (see [`TaskOptions::dependent`]).
    /// A node's `track` is the Plumber's (statistics), not the NuMap's.
    pub fn task_options(&self, dependent: bool) -> TaskOptions {
        TaskOptions {
            timeout: self.timeout,
            track: false,
            ordered: self.ordered,
            dependent,
            retries: self.retries,
            retry_backoff: self.retry_backoff,
            once: self.once,
        }
    }

    /// Checks every option; `parallel` says whether the node has a NuMap.
    ///
    /// # Errors
    /// `(key, message)` for the first bad option.
    pub fn validate(&self, parallel: bool) -> Result<(), (&'static str, String)> {
        limits::check_count("produce", self.produce, limits::MAX_FANOUT)
            .map_err(|e| ("produce", e))?;
        limits::check_count("spawn", self.spawn, limits::MAX_SPAWN).map_err(|e| ("spawn", e))?;
        limits::check_count("consume", self.consume, limits::MAX_FANOUT)
            .map_err(|e| ("consume", e))?;
        self.task_options(false).validate()?;
        if self.timeout.is_some() && !parallel {
            return Err((
                "timeout",
                "a timeout needs a resource (a linear node runs in the caller's thread and cannot be interrupted)".into(),
            ));
        }
        Ok(())
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_default_backoff(d: &Duration) -> bool {
    *d == DEFAULT_RETRY_BACKOFF
}

/// A [`Duration`] as a number of seconds, checked against
/// [`limits::MAX_SECONDS`] when read (zero allowed, for pauses).
pub mod seconds {
    use super::*;

    /// Writes seconds.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads seconds.
    ///
    /// # Errors
    /// A negative, non-finite or too large number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        if (0.0..=limits::MAX_SECONDS).contains(&s) {
            Ok(Duration::from_secs_f64(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s} is not a number of seconds from 0 to {} (a year)",
                limits::MAX_SECONDS
            )))
        }
    }
}

/// An optional positive [`Duration`] as a number of seconds, checked
/// against [`limits::check_seconds`] when read.
pub mod opt_seconds {
    use super::*;

    /// Writes seconds.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    /// Reads seconds.
    ///
    /// # Errors
    /// A number that is not positive, finite and at most a year.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(s) => limits::check_seconds("the duration", s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
