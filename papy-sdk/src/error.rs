//! [`ItemError`]: the error that flows through a pipeline as data, in place
//! of the value an item would have had.

use std::fmt;
use std::sync::Arc;

use crate::value::Value;

/// What went wrong with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The worker function returned an error.
    Function,
    /// The worker function panicked; the panic was caught.
    Panic,
    /// The inbox or an argument could not be converted to the function's types.
    Conversion,
    /// The item did not finish within the node's timeout; its late result is discarded.
    Timeout,
    /// A join received an item on some inputs but not on others (inputs of unequal length).
    Unmatched,
    /// A `produce` node got a result it cannot split into the promised number of items.
    Produce,
    /// A worker (thread, process or remote) died while holding the item.
    WorkerDied,
    /// The input iterator or an external source failed.
    Input,
}

impl ErrorKind {
    const ALL: [ErrorKind; 8] = [
        ErrorKind::Function,
        ErrorKind::Panic,
        ErrorKind::Conversion,
        ErrorKind::Timeout,
        ErrorKind::Unmatched,
        ErrorKind::Produce,
        ErrorKind::WorkerDied,
        ErrorKind::Input,
    ];

    /// A stable number for the kind, used on the wire (plugins, processes).
    ///
    /// ```
    /// use papy_sdk::ErrorKind;
    /// assert_eq!(ErrorKind::from_code(ErrorKind::Timeout.code()), Some(ErrorKind::Timeout));
    /// assert_eq!(ErrorKind::from_code(200), None);
    /// ```
    pub fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .map_or(0, |i| i as u8)
    }

    /// The kind with this [`code`](Self::code), if any.
    pub fn from_code(code: u8) -> Option<ErrorKind> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Function => "function error",
            ErrorKind::Panic => "panic",
            ErrorKind::Conversion => "conversion error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unmatched => "unmatched join input",
            ErrorKind::Produce => "produce error",
            ErrorKind::WorkerDied => "worker died",
            ErrorKind::Input => "input error",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ErrorData {
    kind: ErrorKind,
    message: String,
    function: Option<String>,
    path: Vec<String>,
    index: Option<u64>,
    input: Option<Value>,
}

/// An error carried through a pipeline in place of a value.
///
/// It records the kind, the message, the function that failed, the index of
/// the input item in the node where it failed, and the path of nodes it has
/// crossed since (the failing node first). Cloning is cheap.
///
/// ```
/// use papy_sdk::{ErrorKind, ItemError};
/// let e = ItemError::new(ErrorKind::Function, "boom").with_function("f").at("n1", 7);
/// let e = e.via("n2");
/// assert_eq!(e.path(), ["n1", "n2"]);
/// assert_eq!(e.index(), Some(7));
/// assert!(e.to_string().contains("boom"));
/// ```
#[derive(Clone, PartialEq)]
pub struct ItemError(Arc<ErrorData>);

impl ItemError {
    /// A new error of `kind` with a message and no provenance yet.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ItemError {
        ItemError(Arc::new(ErrorData {
            kind,
            message: message.into(),
            function: None,
            path: Vec::new(),
            index: None,
            input: None,
        }))
    }

    /// Records the function that failed.
    pub fn with_function(mut self, name: impl Into<String>) -> ItemError {
        Arc::make_mut(&mut self.0).function = Some(name.into());
        self
    }

    /// Records the node where the error arose and the index of the item in
    /// that node's input (only the first call sets them; later calls are
    /// treated as [`via`](Self::via)).
    pub fn at(mut self, node: impl Into<String>, index: u64) -> ItemError {
        let d = Arc::make_mut(&mut self.0);
        if d.index.is_none() {
            d.index = Some(index);
        }
        d.path.push(node.into());
        self
    }

    /// Appends a node the error passed through.
    pub fn via(mut self, node: impl Into<String>) -> ItemError {
        Arc::make_mut(&mut self.0).path.push(node.into());
        self
    }

    /// Attaches the failing input (kept for debugging; not serialised by default).
    pub fn with_input(mut self, input: Value) -> ItemError {
        Arc::make_mut(&mut self.0).input = Some(input);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The function that failed, if known.
    pub fn function(&self) -> Option<&str> {
        self.0.function.as_deref()
    }

    /// The nodes crossed: the node where the error arose first.
    pub fn path(&self) -> &[String] {
        &self.0.path
    }

    /// The index of the item in the input of the node where it failed.
    pub fn index(&self) -> Option<u64> {
        self.0.index
    }

    /// The failing input, when it was attached.
    pub fn input(&self) -> Option<&Value> {
        self.0.input.as_ref()
    }

    /// The error as a [`Value`] map (kind, message, function, path, index),
    /// for sinks that write errors out.
    pub fn to_value(&self) -> Value {
        Value::map([
            ("kind", Value::from(self.kind().to_string())),
            ("message", Value::from(self.message())),
            ("function", Value::from(self.function())),
            ("path", Value::list(self.path().iter().map(String::as_str))),
            ("index", Value::from(self.index())),
        ])
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        write!(f, "{}", d.kind)?;
        if let Some(func) = &d.function {
            write!(f, " in `{func}`")?;
        }
        if let Some(first) = d.path.first() {
            write!(f, " at node `{first}`")?;
        }
        if let Some(i) = d.index {
            write!(f, " (index {i})")?;
        }
        write!(f, ": {}", d.message)?;
        if d.path.len() > 1 {
            write!(f, " [path: {}]", d.path.join(" > "))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemError({self})")
    }
}

impl std::error::Error for ItemError {}

/// One item of a stream: a value, or the error that replaced it.
pub type Item = Result<Value, ItemError>;

/// The message of a caught panic (`&str` and `String` payloads; a fixed
/// text for others).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary (never panics, whatever `s` holds).
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Text from a peer (a worker's message, a frame, a broker entry) as quoted
/// in errors and logs: at most [`PEER_QUOTE`] bytes, cut at a character
/// boundary, with the full length when cut. Pools that relay what a peer
/// says use it so that no peer can fill the host's memory or terminal
/// through an error message.
///
/// ```
/// use papy_sdk::error::{quote_peer, PEER_QUOTE};
/// assert_eq!(quote_peer("short"), "short");
/// let long = "\u{e9}".repeat(PEER_QUOTE);
/// let q = quote_peer(&long);
/// assert!(q.len() < PEER_QUOTE + 64);
/// assert!(q.ends_with("(2048 bytes in all)"));
/// ```
pub fn quote_peer(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= PEER_QUOTE {
        return s.into();
    }
    format!("{}... ({} bytes in all)", clip(s, PEER_QUOTE), s.len()).into()
}

/// Most bytes of peer data quoted in one message (see [`quote_peer`]).
pub const PEER_QUOTE: usize = 1024;

#[cfg(test)]
mod quote_tests {
    use super::*;

    #[test]
    fn clipping_never_splits_a_character() {
        let s = "abcdefghijk\u{e9}xyz"; // the é spans bytes 11 and 12
        assert_eq!(clip(s, 12), "abcdefghijk");
        assert_eq!(clip(s, 13), "abcdefghijk\u{e9}");
        assert_eq!(clip("", 3), "");
        let long = "\u{1F600}".repeat(1000);
        let q = quote_peer(&long);
        assert!(q.len() < PEER_QUOTE + 40, "{}", q.len());
        assert!(q.ends_with("(4000 bytes in all)"));
    }
}
