//! The wire protocol between a host and its process or remote workers.
//!
//! Frames are a 4-byte big-endian length followed by a MessagePack map (see
//! `docs/protocol.md`). Maps are encoded with field names, so a newer minor
//! version may add fields that an older peer ignores; a different major
//! version is refused in the handshake by both sides.

pub use papy_sdk::packed;
pub mod serve;

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Item, ItemError};
use crate::value::Value;

/// Incompatible protocol changes bump this.
pub const MAJOR: u16 = 2;
/// Compatible protocol changes (new optional fields) bump this.
pub const MINOR: u16 = 1;
/// What a worker writes before its first frame. The host skips anything
/// before it (a test harness banner, a login message over ssh) and refuses a
/// peer that never sends it.
pub const GREETING: &[u8] = b"\0papy-worker\0";

/// Reads and discards bytes up to and including [`GREETING`], looking at
/// most `limit` bytes.
///
/// # Errors
/// [`ProtocolError::Closed`] if the stream ends first, `Malformed` past the limit.
pub fn skip_to_greeting(r: &mut impl Read, limit: usize) -> Result<(), ProtocolError> {
    let mut matched = 0;
    let mut seen = 0usize;
    let mut byte = [0u8; 1];
    while matched < GREETING.len() {
        if r.read(&mut byte)? == 0 {
            return Err(if seen == 0 {
                ProtocolError::Closed
            } else {
                ProtocolError::Malformed(format!(
                    "the peer wrote {seen} bytes but no papy worker greeting"
                ))
            });
        }
        seen += 1;
        if seen > limit {
            return Err(ProtocolError::Malformed(format!(
                "no papy worker greeting in the first {limit} bytes"
            )));
        }
        matched = if byte[0] == GREETING[matched] {
            matched + 1
        } else if byte[0] == GREETING[0] {
            1
        } else {
            0
        };
    }
    Ok(())
}

/// Default largest frame accepted (256 MiB).
pub const MAX_FRAME: usize = 256 << 20;

/// The handshake, sent by both sides first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol major version.
    pub major: u16,
    /// Protocol minor version.
    pub minor: u16,
    /// Codec of the following frames (`"msgpack"`).
    pub codec: String,
    /// papy version of the sender.
    pub papy_version: String,
    /// Worker side: the functions it can run. Host side (since 2.1): the
    /// functions its pipeline will send; when the list is not empty, the
    /// worker refuses tasks naming any other.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Worker side: loaded plugins as (name, sha256).
    #[serde(default)]
    pub plugins: Vec<(String, String)>,
    /// Worker side (since 2.1): the parameters of its functions, so a host
    /// can check the arguments of functions it does not hold itself
    /// (`papy check --probe`). Optional: may be empty or partial.
    #[serde(default)]
    pub signatures: Vec<Signature>,
    /// Host side (since 2.1): a function the worker runs once, on a null
    /// input, before any task; its result is the worker's state
    /// ([`worker_state`](crate::worker_state)). The worker answers with a
    /// `Result` of id [`INIT_ID`]: one value, or one error (the worker
    /// then exits, and its start fails with that error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Call>,
}

/// The id of the `Result` that answers a host `Hello`'s `init`.
pub const INIT_ID: u64 = u64::MAX;

/// A function's parameters as a worker announces them (protocol 2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The function's registered name.
    pub name: String,
    /// The parameters after the inbox, in order; `None` when the function
    /// takes any arguments as given.
    #[serde(default)]
    pub params: Option<Vec<SignatureParam>>,
    /// The inbox elements it takes, when fixed.
    #[serde(default)]
    pub inputs: Option<u32>,
    /// Its documentation.
    #[serde(default)]
    pub doc: String,
}

/// One parameter of a [`Signature`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureParam {
    /// Its name (for keyword arguments).
    pub name: String,
    /// It may be left out.
    #[serde(default)]
    pub optional: bool,
    /// Its type as the worker's language writes it (informational).
    #[serde(default)]
    pub ty: String,
}

impl Signature {
    /// The signatures of this process's registered functions.
    pub fn of_registry() -> Vec<Signature> {
        crate::registry::functions()
            .iter()
            .map(|f| Signature {
                name: f.name.clone(),
                params: f.params.as_ref().map(|ps| {
                    ps.iter()
                        .map(|p| SignatureParam {
                            name: p.name.to_string(),
                            optional: p.optional,
                            ty: p.ty.to_string(),
                        })
                        .collect()
                }),
                inputs: f.inputs.and_then(|n| u32::try_from(n).ok()),
                doc: f.doc.clone(),
            })
            .collect()
    }
}

impl Hello {
    /// This process's hello.
    pub fn here(functions: Vec<String>, plugins: Vec<(String, String)>) -> Hello {
        Hello {
            major: MAJOR,
            minor: MINOR,
            codec: "msgpack".into(),
            papy_version: env!("CARGO_PKG_VERSION").into(),
            functions,
            plugins,
            signatures: Vec::new(),
            init: None,
        }
    }

    /// Checks that the peer speaks this protocol.
    ///
    /// # Errors
    /// A message naming both versions.
    pub fn check(&self) -> Result<(), String> {
        if self.major != MAJOR {
            return Err(format!(
                "protocol version mismatch: peer speaks {}.{} (papy {}), this side speaks {MAJOR}.{MINOR} (papy {})",
                self.major,
                self.minor,
                self.papy_version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        if self.codec != "msgpack" {
            return Err(format!("unsupported codec `{}`", self.codec));
        }
        Ok(())
    }
}

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

/// Set in the environment of worker children (`stdio` for process and
/// remote pools, `redis` for a broker pool's local workers): the worker
/// side of the protocol reads it; a process that has it refuses to start
/// pools of its own (no fork bombs).
pub const WORKER_ENV: &str = "PAPY_WORKER";

/// Most nodes of an error's path kept when it is read from a peer (the
/// host sets its own: [`WireError::into_item`]).
pub const MAX_PEER_PATH: usize = 64;

/// Deserializing what a peer sends without letting its counts choose
/// what the host allocates.
mod bounded {
    use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::{WireError, WireResults, MAX_PEER_PATH};
    use crate::value::Value;

    /// At most [`MAX_PEER_PATH`] entries of a list of names; the rest is read and dropped.
    pub(super) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of node names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                let mut out = Vec::new();
                while out.len() < MAX_PEER_PATH {
                    match seq.next_element::<String>()? {
                        Some(s) => out.push(s),
                        None => return Ok(out),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }

    struct Packed(Vec<Value>);

    impl<'de> Deserialize<'de> for Packed {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Packed, D::Error> {
            crate::protocol::packed::values::deserialize(d).map(Packed)
        }
    }

    /// The errors of a result: at most `most` of them.
    struct Errors {
        most: usize,
    }

    impl<'de> DeserializeSeed<'de> for Errors {
        type Value = Vec<(u32, WireError)>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Errors {
        type Value = Vec<(u32, WireError)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "at most {} errors", self.most)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.most).min(4096));
            while let Some(e) = seq.next_element::<(u32, WireError)>()? {
                if out.len() == self.most {
                    return Err(A::Error::custom(format!(
                        "more errors than the {} results they belong to",
                        self.most
                    )));
                }
                out.push(e);
            }
            Ok(out)
        }
    }

    /// Errors read before the values (a map with `errors` first) are bounded by this.
    const ERRORS_BEFORE_VALUES: usize = 1 << 16;

    struct Results;

    impl<'de> Visitor<'de> for Results {
        type Value = WireResults;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("results: values and errors")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireResults, A::Error> {
            let values = seq
                .next_element::<Packed>()?
                .ok_or_else(|| A::Error::invalid_length(0, &self))?
                .0;
            let errors = seq
                .next_element_seed(Errors { most: values.len() })?
                .ok_or_else(|| A::Error::invalid_length(1, &self))?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(WireResults { values, errors })
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireResults, A::Error> {
            let (mut values, mut errors) = (None, None);
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                match &*key {
                    "values" => values = Some(map.next_value::<Packed>()?.0),
                    "errors" => {
                        let most = values.as_ref().map_or(ERRORS_BEFORE_VALUES, Vec::len);
                        errors = Some(map.next_value_seed(Errors { most })?);
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let values: Vec<Value> = values.ok_or_else(|| A::Error::missing_field("values"))?;
            let errors: Vec<(u32, WireError)> = errors.unwrap_or_default();
            if errors.len() > values.len() {
                return Err(A::Error::custom(format!(
                    "{} errors for {} results",
                    errors.len(),
                    values.len()
                )));
            }
            Ok(WireResults { values, errors })
        }
    }

    impl<'de> Deserialize<'de> for WireResults {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireResults, D::Error> {
            d.deserialize_struct("WireResults", &["values", "errors"], Results)
        }
    }
}

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

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The peer closed the stream between frames.
    #[error("the peer closed the connection")]
    Closed,
    /// The stream ended inside a frame.
    #[error("truncated frame: expected {expected} bytes, the stream ended after {got}")]
    Truncated {
        /// Bytes announced.
        expected: usize,
        /// Bytes read.
        got: usize,
    },
    /// A frame larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Text where a frame's length belongs: the peer printed to the
    /// protocol's channel (a worker writing to its stdout). Holds the
    /// first bytes, quoted.
    #[error("the worker wrote text to its stdout (the protocol's channel): {0}")]
    Text(String),
    /// The payload is not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// An I/O error. Its message holds the cause's, so the cause is not
    /// also its `source` (an error chain would print it twice).
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ProtocolError {
    fn from(e: io::Error) -> Self {
        ProtocolError::Io(e)
    }
}

impl ProtocolError {
    /// Whether the error means the peer went away: the stream closed
    /// (between or inside frames), or a write found no reader (broken pipe,
    /// connection reset).
    pub fn is_peer_gone(&self) -> bool {
        match self {
            ProtocolError::Closed | ProtocolError::Truncated { .. } => true,
            ProtocolError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, io::Error> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The worker hook: when this process was started as a papy worker
/// (`PAPY_WORKER=stdio` in its environment, set by process pools), serve
/// tasks on stdin/stdout and exit; otherwise return at once.
///
/// Call it first in `main`, like PaPy's `if __name__ == '__main__':` guard:
/// the pool re-executes the current binary, and without the hook the child
/// would run the whole program again (papy refuses to let such a child start
/// pools of its own, so a forgotten hook is an error, never a fork bomb).
pub fn worker_main() {
    if std::env::var_os(WORKER_ENV).is_some_and(|v| v == "stdio") {
        let code = match serve::serve_stdio(Vec::new()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("papy worker: {e}");
                1
            }
        };
        std::process::exit(code);
    }
}

/// Reads one frame.
///
/// # Errors
/// [`ProtocolError`] for a closed stream, a truncated, oversized or malformed frame.
pub fn read_frame(r: &mut impl Read, limit: usize) -> Result<Frame, ProtocolError> {
    read_frame_with(r, &mut Vec::new(), limit)
}

/// Reads one frame into `buf` (cleared first, its allocation reused: a
/// loop that reads many frames allocates once instead of once per frame).
///
/// # Errors
/// As [`read_frame`].
pub fn read_frame_with(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<Frame, ProtocolError> {
    read_frame_bytes(r, buf, limit)?;
    decode_payload(buf)
}

/// Decodes a frame's payload. A payload that does not decode is read a
/// second time, slowly, only to say where it went wrong: the frame and the
/// field (`Result.results.errors[0][1].kind`), with the decoder's reason.
///
/// # Errors
/// [`ProtocolError::Malformed`] naming the frame and field.
pub fn decode_payload<'de, T: Deserialize<'de>>(buf: &'de [u8]) -> Result<T, ProtocolError> {
    rmp_serde::from_slice(buf).map_err(|e| {
        let mut de = rmp_serde::Deserializer::from_read_ref(buf);
        let at = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(located) => located.path().to_string(),
            Ok(_) => String::new(),
        };
        let at = crate::error::quote_peer(&at);
        let frame = at.split(['.', '[']).next().unwrap_or_default();
        if frame.is_empty() || at == "?" {
            ProtocolError::Malformed(e.to_string())
        } else {
            ProtocolError::Malformed(format!("{frame} frame, field `{at}`: {e}"))
        }
    })
}

/// Frame buffers larger than this are given back after use.
const KEEP_BUFFER: usize = 4 << 20;

/// Gives back a reused frame buffer's allocation when a rare large frame
/// grew it past 4 MiB, so a long-lived connection does not hold the
/// largest frame it ever saw.
pub fn release_large(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_BUFFER {
        *buf = Vec::new();
    }
}

/// Printable ASCII, or a tab, line feed or carriage return.
fn is_text(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e)
}

/// Reads one frame's payload (the MessagePack bytes after its length) into
/// `buf` (cleared first), without decoding it: a reader that wants to
/// look at a frame that does not decode as a [`Frame`] (`papy
/// worker-test`) decodes it with [`decode_payload`].
///
/// # Errors
/// [`ProtocolError`] for a closed stream, a truncated or oversized frame,
/// or text where a frame's length belongs.
pub fn read_frame_bytes(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), ProtocolError> {
    let mut len = [0u8; 4];
    match read_full(r, &mut len)? {
        0 => return Err(ProtocolError::Closed),
        4 => {}
        got => return Err(ProtocolError::Truncated { expected: 4, got }),
    }
    let size = u32::from_be_bytes(len) as usize;
    buf.clear();
    if len.iter().all(|&b| is_text(b)) {
        // A length of four characters is text, not a frame, when what
        // follows is text too (a payload starts with a map or a string
        // marker, never with a character). One read says more of it.
        let mut next = [0u8; 1];
        if read_full(r, &mut next)? == 0 {
            return Err(if size > limit {
                ProtocolError::TooLarge { size, limit }
            } else {
                ProtocolError::Truncated {
                    expected: size,
                    got: 0,
                }
            });
        }
        if is_text(next[0]) {
            let mut more = [0u8; 75];
            let got = loop {
                match r.read(&mut more) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other.unwrap_or(0),
                }
            };
            let mut text = len.to_vec();
            text.push(next[0]);
            text.extend(more[..got].iter().take_while(|&&b| is_text(b)));
            return Err(ProtocolError::Text(format!(
                "{:?}",
                String::from_utf8_lossy(&text)
            )));
        }
        buf.push(next[0]);
    }
    if size > limit {
        return Err(ProtocolError::TooLarge { size, limit });
    }
    // Grown as the bytes arrive: a length header alone reserves little.
    buf.reserve(size.min(1 << 20));
    // read_to_end retries interrupted reads itself.
    let had = buf.len();
    let got = had
        + r.by_ref()
            .take((size - had.min(size)) as u64)
            .read_to_end(buf)?;
    if got < size {
        return Err(ProtocolError::Truncated {
            expected: size,
            got,
        });
    }
    Ok(())
}

/// Reads one frame's bytes into `buf` and decodes it as a [`FrameView`]
/// borrowing from `buf` (what workers read tasks with).
///
/// # Errors
/// As [`read_frame`].
pub fn read_frame_view<'b>(
    r: &mut impl Read,
    buf: &'b mut Vec<u8>,
    limit: usize,
) -> Result<FrameView<'b>, ProtocolError> {
    read_frame_bytes(r, buf, limit)?;
    decode_payload(buf)
}

/// Writes one frame and flushes.
///
/// # Errors
/// I/O errors, or a frame too large for the 4-byte length.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<(), ProtocolError> {
    write_frame_with(w, &mut Vec::new(), frame)
}

/// Writes anything that encodes as a frame ([`Frame`], or the borrowing
/// [`FrameRef`]) in one write, building it in `buf` (its allocation reused
/// from frame to frame), and flushes.
///
/// # Errors
/// I/O errors, or a frame too large for the 4-byte length.
pub fn write_frame_with<F: Serialize + ?Sized>(
    w: &mut impl Write,
    buf: &mut Vec<u8>,
    frame: &F,
) -> Result<(), ProtocolError> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(buf, frame)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let body = buf.len() - 4;
    let len = u32::try_from(body).map_err(|_| ProtocolError::TooLarge {
        size: body,
        limit: u32::MAX as usize,
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    w.write_all(buf)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: &Frame) -> Frame {
        let mut buf = Vec::new();
        write_frame(&mut buf, f).unwrap();
        read_frame(&mut buf.as_slice(), MAX_FRAME).unwrap()
    }

    #[test]
    fn a_result_holds_no_more_errors_than_values_and_short_paths() {
        let e = WireError {
            kind: 0,
            message: "m".into(),
            function: None,
            path: vec!["n".into(); 1000],
            index: None,
        };
        let frame = |values: usize, errors: usize| Frame::Result {
            id: 1,
            results: WireResults {
                values: vec![Value::Null; values],
                errors: (0..errors as u32).map(|k| (k, e.clone())).collect(),
            },
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &frame(2, 3)).unwrap();
        let err = read_frame(&mut buf.as_slice(), MAX_FRAME).unwrap_err();
        assert!(
            err.to_string().contains("more errors than the 2 results"),
            "{err}"
        );
        let Frame::Result { results, .. } = round_trip(&frame(2, 2)) else {
            unreachable!()
        };
        assert_eq!(results.errors.len(), 2);
        assert_eq!(results.errors[0].1.path.len(), MAX_PEER_PATH);
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Hello(Hello::here(
                vec!["a.b".into()],
                vec![("p".into(), "00".into())],
            )),
            Frame::Task {
                id: 7,
                chain: vec![Call {
                    function: "f".into(),
                    args: vec![Value::Int(1)],
                }],
                node: "n".into(),
                indices: vec![3],
                inboxes: WireInboxes::Many(vec![vec![
                    Value::from("x"),
                    Value::Bytes(vec![0u8, 1].into()),
                ]]),
            },
            Frame::Result {
                id: 7,
                results: WireResults::from_items(&[
                    Ok(Value::Float(1.5)),
                    Err(ItemError::new(ErrorKind::Panic, "p")
                        .with_function("f")
                        .at("n", 3)
                        .via("m")),
                ]),
            },
            Frame::Shutdown,
        ];
        for f in &frames {
            assert_eq!(&round_trip(f), f);
        }
        let Frame::Result { results, .. } = &frames[2] else {
            unreachable!()
        };
        let items = results.clone().into_items();
        assert_eq!(items[0], Ok(Value::Float(1.5)));
        let e = items[1].clone().unwrap_err();
        // The path and index crossed the wire, but are the worker's claims:
        // the host drops them and sets its own when it delivers.
        assert_eq!(
            (e.kind(), e.function(), e.path(), e.index()),
            (ErrorKind::Panic, Some("f"), &[][..], None)
        );
    }

    #[test]
    fn borrowed_frames_encode_exactly_as_owned_ones() {
        let chain = vec![Call {
            function: "f".into(),
            args: vec![Value::Int(1)],
        }];
        let values = [Value::Int(300), Value::from("x"), Value::Null];
        let mut refs = Vec::new();
        packed::encode_values(values.iter(), &mut refs);
        let mut idx = Vec::new();
        for i in [4, 5, 6] {
            packed::pack_index(i, &mut idx);
        }
        let bytes = |f: &dyn erased::Frameish| {
            let mut out = Vec::new();
            f.write(&mut out);
            out
        };
        let owned = Frame::Task {
            id: 9,
            chain: chain.clone(),
            node: "n".into(),
            indices: vec![4, 5, 6],
            inboxes: WireInboxes::Single(values.to_vec()),
        };
        let borrowed = FrameRef::Task {
            id: 9,
            chain: &chain,
            node: "n",
            indices: &idx,
            inboxes: InboxesRef::Single(&refs),
        };
        assert_eq!(bytes(&owned), bytes(&borrowed));
        let many = [vec![&values[0], &values[1]], vec![&values[2]]];
        let owned = Frame::Task {
            id: 9,
            chain: chain.clone(),
            node: "n".into(),
            indices: vec![4, 5],
            inboxes: WireInboxes::Many(vec![
                vec![values[0].clone(), values[1].clone()],
                vec![Value::Null],
            ]),
        };
        let borrowed = FrameRef::Task {
            id: 9,
            chain: &chain,
            node: "n",
            indices: &idx[..16],
            inboxes: InboxesRef::Many(&many),
        };
        assert_eq!(bytes(&owned), bytes(&borrowed));
        let items = [
            Ok(Value::Float(1.5)),
            Err(ItemError::new(ErrorKind::Panic, "p").at("n", 3)),
            Ok(Value::from("y")),
        ];
        let owned = Frame::Result {
            id: 2,
            results: WireResults::from_items(&items),
        };
        let borrowed = FrameRef::Result {
            id: 2,
            results: ResultsRef::Items(&items),
        };
        assert_eq!(bytes(&owned), bytes(&borrowed));
        let Frame::Result { results, .. } = &owned else {
            unreachable!()
        };
        let mut packed = Vec::new();
        packed::encode_values(results.values.iter(), &mut packed);
        let borrowed = FrameRef::Result {
            id: 2,
            results: ResultsRef::Packed {
                values: &packed,
                errors: &results.errors,
            },
        };
        assert_eq!(bytes(&owned), bytes(&borrowed));
        // And a reused buffer reads them back.
        let mut stream = bytes(&borrowed);
        stream.extend(bytes(&owned));
        let mut r = stream.as_slice();
        let mut buf = Vec::new();
        for _ in 0..2 {
            assert_eq!(read_frame_with(&mut r, &mut buf, MAX_FRAME).unwrap(), owned);
        }
    }

    /// Frames of both kinds behind one trait object, for the test above.
    mod erased {
        pub trait Frameish {
            fn write(&self, out: &mut Vec<u8>);
        }
        impl<F: serde::Serialize> Frameish for F {
            fn write(&self, out: &mut Vec<u8>) {
                super::write_frame_with(out, &mut Vec::new(), self).unwrap();
            }
        }
    }

    #[test]
    fn a_buffer_grown_by_a_large_frame_is_given_back() {
        let mut big = Vec::with_capacity(KEEP_BUFFER + 1);
        release_large(&mut big);
        assert_eq!(big.capacity(), 0);
        let mut small: Vec<u8> = Vec::with_capacity(1 << 16);
        release_large(&mut small);
        assert_eq!(small.capacity(), 1 << 16);
    }

    #[test]
    fn greeting_is_found_after_noise_and_required() {
        let mut stream = b"running 1 test\nWelcome to host\n".to_vec();
        stream.extend_from_slice(GREETING);
        stream.extend_from_slice(b"rest");
        let mut r = stream.as_slice();
        skip_to_greeting(&mut r, 1 << 20).unwrap();
        assert_eq!(r, b"rest");
        let err = skip_to_greeting(&mut &b"no greeting here"[..], 1 << 20).unwrap_err();
        assert!(err.to_string().contains("no papy worker greeting"), "{err}");
        assert!(matches!(
            skip_to_greeting(&mut &b""[..], 10),
            Err(ProtocolError::Closed)
        ));
    }

    #[test]
    fn truncated_oversized_and_malformed_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Frame::Shutdown).unwrap();
        let cut = &buf[..buf.len() - 1];
        assert!(matches!(
            read_frame(&mut &cut[..], MAX_FRAME),
            Err(ProtocolError::Truncated { .. })
        ));
        assert!(matches!(
            read_frame(&mut &buf[..2], MAX_FRAME),
            Err(ProtocolError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(
            read_frame(&mut &b""[..], MAX_FRAME),
            Err(ProtocolError::Closed)
        ));
        let huge = (1u32 << 30).to_be_bytes();
        let err = read_frame(&mut &huge[..], MAX_FRAME).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        let junk = [0, 0, 0, 2, 0xc1, 0xc1];
        assert!(matches!(
            read_frame(&mut &junk[..], MAX_FRAME),
            Err(ProtocolError::Malformed(_))
        ));
    }

    /// A worker that prints to its stdout: the host says so, quoting the
    /// text, instead of reading a "frame" of 1.7 GB.
    #[test]
    fn text_where_a_frame_belongs_is_named_as_text() {
        let printed = b"Hello from my worker\nand more\n".to_vec();
        let err = read_frame(&mut &printed[..], MAX_FRAME).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the worker wrote text to its stdout (the protocol's channel): \"Hello from my worker\\nand more\\n\""
        );
        // Frames, whatever their length bytes, are still frames: a payload
        // starts with a map or string marker, never with a character.
        let mut frame = Vec::new();
        write_frame(&mut frame, &Frame::Shutdown).unwrap();
        assert_eq!(
            read_frame(&mut &frame[..], MAX_FRAME).unwrap(),
            Frame::Shutdown
        );
        let mut big = b"AAAA".to_vec();
        big.push(0x81);
        let err = read_frame(&mut &big[..], MAX_FRAME).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        let err = read_frame(&mut &big[..], usize::MAX).unwrap_err();
        assert!(matches!(err, ProtocolError::Truncated { .. }), "{err}");
    }

    /// A frame that does not decode says which field of which frame.
    #[test]
    fn a_malformed_frame_names_its_frame_and_field() {
        use crate::protocol::packed::encode_value;
        let error = Value::map([
            ("kind", Value::from("function")),
            ("message", Value::from("m")),
            ("function", Value::Null),
            ("path", Value::list(Vec::<Value>::new())),
            ("index", Value::Null),
        ]);
        let frame = Value::map([(
            "Result",
            Value::map([
                ("id", Value::Int(3)),
                (
                    "results",
                    Value::map([
                        ("values", Value::Bytes(vec![0xc0].into())),
                        ("errors", Value::list([Value::list([Value::Int(0), error])])),
                    ]),
                ),
            ]),
        )]);
        let mut body = Vec::new();
        encode_value(&frame, &mut body);
        let mut buf = (body.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&body);
        let err = read_frame(&mut &buf[..], MAX_FRAME)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Result frame, field `Result.results.errors[0][1].kind`")
                && err.starts_with(
                    "malformed frame: Result frame, field `Result.results.errors[0][1].kind`: "
                ),
            "{err}"
        );
    }

    #[test]
    fn major_mismatch_is_refused_and_unknown_fields_ignored() {
        let mut h = Hello::here(vec![], vec![]);
        h.major = MAJOR + 1;
        let err = h.check().unwrap_err();
        assert!(
            err.contains("protocol version mismatch") && err.contains(&format!("{}.", MAJOR + 1)),
            "{err}"
        );
        // A newer peer's extra field is ignored.
        #[derive(Serialize)]
        struct Newer {
            major: u16,
            minor: u16,
            codec: String,
            papy_version: String,
            shiny_new_field: u32,
        }
        let body = rmp_serde::to_vec_named(&Newer {
            major: MAJOR,
            minor: MINOR + 3,
            codec: "msgpack".into(),
            papy_version: "9.9.9".into(),
            shiny_new_field: 1,
        })
        .unwrap();
        let h: Hello = rmp_serde::from_slice(&body).unwrap();
        assert!(h.check().is_ok());
        assert_eq!(h.minor, MINOR + 3);
    }
}
