//! [`ConfigError`]: why a pipeline file could not be loaded, saved or built.

use crate::problem::Problem;

/// Why a pipeline file could not be loaded, saved or built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems (every one, with its position).
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file's name as given (`<text>` for text).
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The engine refused what the file describes (a pool that cannot start...).
    #[error(transparent)]
    Engine(#[from] papy_core::Error),
    /// A pipeline that a file cannot describe (a closure, a custom pool...).
    #[error("cannot save the pipeline: {0}")]
    NotSaveable(String),
}

fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.render(file))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The result type of this crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
