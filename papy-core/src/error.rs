//! Errors: [`ItemError`], the error that flows through a pipeline as data,
//! and [`Error`], returned when a pipeline is built or driven incorrectly.

pub use papy_sdk::error::{
    clip, panic_message, quote_peer, ErrorKind, Item, ItemError, PEER_QUOTE,
};

/// Errors from building or driving pipelines (never from the data itself:
/// those are [`ItemError`] values).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No registered worker function has this name.
    #[error("no worker function named `{name}`{}", did_you_mean(.suggestions))]
    UnknownWorker {
        /// The name asked for.
        name: String,
        /// Close registered names.
        suggestions: Vec<String>,
    },
    /// A short name matches several registered functions.
    #[error("worker name `{name}` is ambiguous; use one of: {}", .candidates.join(", "))]
    AmbiguousWorker {
        /// The short name asked for.
        name: String,
        /// The fully-qualified candidates.
        candidates: Vec<String>,
    },
    /// The arguments given for a function do not fit its parameters.
    #[error("bad arguments for `{function}`: {message}")]
    Arguments {
        /// The function.
        function: String,
        /// What is wrong.
        message: String,
    },
    /// A module named in `imports` could not be found.
    #[error("`{function}` imports `{module}`, which was not found (looked in: {searched})")]
    Import {
        /// The function whose imports failed.
        function: String,
        /// The import entry (with its alternatives).
        module: String,
        /// Where the resolver looked.
        searched: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An operation is not allowed in the current state.
    #[error("cannot {op} {what}: it is {state}")]
    State {
        /// The operation attempted.
        op: &'static str,
        /// The object (`NuMap`, `Plumber`...).
        what: String,
        /// Its current state.
        state: String,
    },
    /// The graph operation would create a cycle; the graph was left unchanged.
    #[error("adding pipe {from} -> {to} would create a cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// Upstream end of the refused pipe.
        from: String,
        /// Downstream end of the refused pipe.
        to: String,
        /// The cycle that would have formed.
        cycle: Vec<String>,
    },
    /// A graph operation named a piper that is not in the graph, or a name used twice.
    #[error("{0}")]
    Graph(String),
    /// Inputs given to a pipeline do not match its input nodes.
    #[error("inputs: {0}")]
    Inputs(String),
    /// A node in `debug` mode received or produced an error.
    #[error("debug node `{node}` stopped the run: {error}")]
    Debug {
        /// The node in debug mode.
        node: String,
        /// The error it saw.
        error: ItemError,
    },
    /// Draining an output failed (its sink or an input iterator in the drain thread panicked).
    #[error("output `{node}` failed: {message}; the run was stopped")]
    Output {
        /// The output node.
        node: String,
        /// The panic message.
        message: String,
    },
    /// A closure cannot be sent to a process or remote worker.
    #[error("`{function}` is a closure and cannot run in a {pool} pool; register it with #[worker] to use it there")]
    NotPortable {
        /// The function.
        function: String,
        /// The pool kind.
        pool: String,
    },
    /// An internal thread could not be started.
    #[error("could not start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

/// Result alias for [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
