//! What crosses the wire inside frames: a chain's calls, a task's inboxes,
//! its results and their errors, and the bounds put on what a peer sends.

mod bounded;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Item, ItemError};
use crate::value::Value;
use papy_sdk::packed;

/// One function of a chain, by name, with its bound arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Registered name.
    pub function: String,
    /// Positional arguments.
    pub args: Vec<Value>,
}

/// An error as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// [`ErrorKind::code`].
    pub kind: u8,
    /// Message.
    pub message: String,
    /// Failing function.
    pub function: Option<String>,
    /// Node path (as read from a peer: its first [`MAX_PEER_PATH`] nodes).
    #[serde(deserialize_with = "bounded::path")]
    pub path: Vec<String>,
    /// Input index.
    pub index: Option<u64>,
}

impl WireError {
    /// From an item error.
    pub fn from_item(e: &ItemError) -> WireError {
        WireError {
            kind: e.kind().code(),
            message: e.message().to_string(),
            function: e.function().map(str::to_string),
            path: e.path().to_vec(),
            index: e.index(),
        }
    }

    /// The errors of `items`, by position.
    pub fn of_items(items: &[Item]) -> Vec<(u32, WireError)> {
        items
            .iter()
            .enumerate()
            .filter_map(|(k, i)| Some((k as u32, WireError::from_item(i.as_ref().err()?))))
            .collect()
    }

    /// Back to an item error, as the host takes it from a peer: the kind,
    /// the message (at most [`MAX_PEER_MESSAGE`] bytes, cut with the full
    /// length said) and the function's name (at most 256 bytes). The node
    /// path and the index are the worker's claims and are dropped: the
    /// host, which knows which input it sent, sets them when it delivers
    /// ([`Job::own_errors`](crate::pool::Job::own_errors)).
    ///
    /// ```
    /// use papy_core::protocol::WireError;
    /// let e = WireError {
    ///     kind: 0,
    ///     message: "x".repeat(1 << 20),
    ///     function: Some("f".into()),
    ///     path: vec!["elsewhere".into()],
    ///     index: Some(5),
    /// }
    /// .into_item();
    /// assert!(e.message().len() < 5000);
    /// assert!(e.message().ends_with("(1048576 bytes in all)"));
    /// assert_eq!((e.path().len(), e.index()), (0, None));
    /// ```
    pub fn into_item(self) -> ItemError {
        let message = if self.message.len() <= MAX_PEER_MESSAGE {
            self.message
        } else {
            format!(
                "{}... ({} bytes in all)",
                crate::error::clip(&self.message, MAX_PEER_MESSAGE),
                self.message.len()
            )
        };
        let mut e = ItemError::new(
            ErrorKind::from_code(self.kind).unwrap_or(ErrorKind::Function),
            message,
        );
        if let Some(f) = self.function {
            e = e.with_function(crate::error::clip(&f, 256));
        }
        e
    }
}

/// Most nodes of an error's path kept when it is read from a peer (the
/// host sets its own: [`WireError::into_item`]).
pub const MAX_PEER_PATH: usize = 64;

/// Most bytes of an error message from a peer that the host keeps (the
/// rest is cut, saying how long it was): a worker cannot fill the host's
/// memory, terminal or `--errors` file through its messages.
pub const MAX_PEER_MESSAGE: usize = 4096;

/// The results of a task on the wire: one value per item (null where the
/// item failed) and the errors by position. Plain values are encoded
/// directly, without a per-item wrapper.
///
/// Read from a peer, it holds at most one error per value (a frame of
/// errors without results cannot make the host allocate for them), and an
/// error's path at most [`MAX_PEER_PATH`] nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WireResults {
    /// One value per item.
    #[serde(with = "packed::values")]
    pub values: Vec<Value>,
    /// (position, error) for the items that failed.
    pub errors: Vec<(u32, WireError)>,
}

impl WireResults {
    /// From items.
    pub fn from_items(items: &[Item]) -> WireResults {
        WireResults {
            values: items
                .iter()
                .map(|i| i.as_ref().cloned().unwrap_or(Value::Null))
                .collect(),
            errors: WireError::of_items(items),
        }
    }

    /// Back to items.
    pub fn into_items(self) -> Vec<Item> {
        let mut items: Vec<Item> = self.values.into_iter().map(Ok).collect();
        for (k, e) in self.errors {
            if let Some(slot) = items.get_mut(k as usize) {
                *slot = Err(e.into_item());
            }
        }
        items
    }
}

/// The inputs of a task on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireInboxes {
    /// Every inbox has one element: the values themselves.
    Single(#[serde(with = "packed::values")] Vec<Value>),
    /// Inboxes of several elements.
    Many(Vec<Vec<Value>>),
}

impl WireInboxes {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            WireInboxes::Single(v) => v.len(),
            WireInboxes::Many(v) => v.len(),
        }
    }

    /// `true` without items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
