//! The inputs of a run, as `--resume` and `--retry-failed` narrow them.

use papy_core::Source;

use super::failures::Failures;

/// The inputs of a run as `--resume` and `--retry-failed` narrow them.
pub(super) struct Inputs<'a> {
    /// The sources, by input piper.
    pub(super) sources: &'a mut Vec<(String, Source)>,
    /// The input (of the file) an input piper reads.
    pub(super) input_of: &'a dyn Fn(&str) -> String,
    /// Where a failed item's position in its input is told.
    pub(super) failures: &'a mut Failures,
}
