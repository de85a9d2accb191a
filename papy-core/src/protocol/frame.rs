//! The frames: owned ([`Frame`]), borrowing what they send ([`FrameRef`])
//! and borrowing what they read ([`FrameView`]).

use serde::{Deserialize, Serialize};

use super::hello::Hello;
use super::wire::{Call, WireError, WireInboxes, WireResults};
use crate::error::Item;
use crate::value::Value;
use papy_sdk::packed;

/// A protocol frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// The handshake.
    Hello(Hello),
    /// A batch of items of one worker chain.
    Task {
        /// Correlates the result.
        id: u64,
        /// The worker chain.
        chain: Vec<Call>,
        /// The node name, for error paths.
        node: String,
        /// The input index of each item.
        #[serde(with = "packed::indices")]
        indices: Vec<u64>,
        /// The inboxes (values only: errors are handled by the host).
        inboxes: WireInboxes,
    },
    /// The results of a task, in the order of its items.
    Result {
        /// The task's id.
        id: u64,
        /// One result per item, in order.
        results: WireResults,
    },
    /// A fatal error of the peer (e.g. refused handshake), then it closes.
    Fatal {
        /// What went wrong.
        message: String,
    },
    /// Ask the worker to exit.
    Shutdown,
}

impl Frame {
    /// The frame's kind (`"Hello"`, `"Task"`...), for messages that must
    /// not quote a peer's data.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "Hello",
            Frame::Task { .. } => "Task",
            Frame::Result { .. } => "Result",
            Frame::Fatal { .. } => "Fatal",
            Frame::Shutdown => "Shutdown",
        }
    }
}

/// A `Task` or `Result` frame that borrows what it carries: it encodes to
/// exactly the bytes of the [`Frame`] with the same content, without first
/// copying a batch's values into one (the hot path of process pools).
#[derive(Debug, Serialize)]
pub enum FrameRef<'a> {
    /// As [`Frame::Task`].
    Task {
        /// Correlates the result.
        id: u64,
        /// The worker chain.
        chain: &'a [Call],
        /// The node name, for error paths.
        node: &'a str,
        /// The input index of each item, already packed (little-endian
        /// `u64`s, see [`packed::pack_index`]).
        #[serde(serialize_with = "packed::bytes::serialize")]
        indices: &'a [u8],
        /// The inboxes.
        inboxes: InboxesRef<'a>,
    },
    /// As [`Frame::Result`].
    Result {
        /// The task's id.
        id: u64,
        /// One result per item, in order.
        results: ResultsRef<'a>,
    },
}

/// [`WireInboxes`] by reference.
#[derive(Debug, Serialize)]
pub enum InboxesRef<'a> {
    /// Every inbox has one element: the values, already packed (see
    /// [`packed::encode_values`]).
    Single(#[serde(serialize_with = "packed::bytes::serialize")] &'a [u8]),
    /// Inboxes of several elements.
    Many(&'a [Vec<&'a Value>]),
}

/// [`WireResults`] by reference.
#[derive(Debug)]
pub enum ResultsRef<'a> {
    /// From items: values packed when encoding, nil where an item failed,
    /// and the errors by position.
    Items(&'a [Item]),
    /// Values already packed (nil where an item failed) and the errors by
    /// position.
    Packed {
        /// The packed values.
        values: &'a [u8],
        /// (position, error) for the items that failed.
        errors: &'a [(u32, WireError)],
    },
}

impl Serialize for ResultsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("WireResults", 2)?;
        match self {
            ResultsRef::Items(items) => {
                const NULL: Value = Value::Null;
                let mut packed = Vec::new();
                let values = items.iter().map(|i| i.as_ref().unwrap_or(&NULL));
                packed::encode_values(values, &mut packed);
                st.serialize_field("values", &Bin(&packed))?;
                st.serialize_field("errors", &WireError::of_items(items))?;
            }
            ResultsRef::Packed { values, errors } => {
                st.serialize_field("values", &Bin(values))?;
                st.serialize_field("errors", errors)?;
            }
        }
        st.end()
    }
}

/// A frame as a worker reads it: a `Task`'s packed values and indices stay
/// bytes of the frame (borrowed), so the worker can decode, call and encode
/// each item in one pass. Other frames are as in [`Frame`].
#[derive(Debug, Deserialize)]
pub enum FrameView<'a> {
    /// The handshake.
    Hello(Hello),
    /// A batch of items of one worker chain.
    Task {
        /// Correlates the result.
        id: u64,
        /// The worker chain.
        chain: Vec<Call>,
        /// The node name, for error paths.
        node: String,
        /// The input indices, as packed little-endian `u64`s.
        #[serde(borrow)]
        indices: &'a [u8],
        /// The inboxes.
        #[serde(borrow)]
        inboxes: InboxesView<'a>,
    },
    /// The results of a task.
    Result {
        /// The task's id.
        id: u64,
        /// One result per item, in order.
        results: WireResults,
    },
    /// A fatal error of the peer.
    Fatal {
        /// What went wrong.
        message: String,
    },
    /// Ask the worker to exit.
    Shutdown,
}

/// [`WireInboxes`] as a worker reads them.
#[derive(Debug, Deserialize)]
pub enum InboxesView<'a> {
    /// Every inbox has one element: the packed values, still encoded.
    Single(&'a [u8]),
    /// Inboxes of several elements.
    Many(Vec<Vec<Value>>),
}

/// A byte slice that serializes as a MessagePack `bin`.
struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}
