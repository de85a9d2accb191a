//! The rules a NuMap's sizes follow, written once: [`NuMapBuilder::build`]
//! and the pipeline file's validator (`papy check`) both ask
//! [`NuMapSizes::validate`], so a file `papy check` accepts builds.
//!
//! ```
//! use papy_core::numap::settings::NuMapSizes;
//! let sizes = NuMapSizes { stride: Some(8), buffer: Some(4), threads_from_stride: false };
//! assert_eq!(sizes.validate()[0].0, "buffer");
//! ```
//!
//! [`NuMapBuilder::build`]: crate::NuMapBuilder::build

use crate::limits;

/// A NuMap's sizes as given, before any default is filled in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NuMapSizes {
    /// Items per visit (`None`: adaptive batching).
    pub stride: Option<usize>,
    /// Items in flight at most.
    pub buffer: Option<usize>,
    /// The NuMap starts one thread per item of its stride (as in PaPy: no
    /// pool and no worker count given).
    pub threads_from_stride: bool,
}

impl NuMapSizes {
    /// Every rule these sizes break, as (key, message), empty when none.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut bad = Vec::new();
        if let Some(s) = self.stride {
            if let Err(e) = limits::check_count("stride", s, limits::MAX_STRIDE) {
                bad.push(("stride", e));
            }
            if self.threads_from_stride && s > limits::MAX_WORKERS {
                bad.push((
                    "stride",
                    format!(
                        "without `workers`, a thread resource runs one thread per item of its stride ({s}), at most {}; set `workers`",
                        limits::MAX_WORKERS
                    ),
                ));
            }
        }
        if let Some(b) = self.buffer {
            if let Err(e) = limits::check_count("buffer", b, limits::MAX_BUFFER) {
                bad.push(("buffer", e));
            }
        }
        // Without a stride the engine sizes its batches within the buffer
        // (adaptive batching): only a fixed stride must fit in it.
        if let (Some(b), Some(s)) = (self.buffer, self.stride) {
            if b < s {
                bad.push((
                    "buffer",
                    format!("buffer ({b}) is smaller than stride ({s}); a buffer must hold at least one stride (PaPy deadlocks here)"),
                ));
            }
        }
        bad
    }
}

#[cfg(test)]
mod tests;
