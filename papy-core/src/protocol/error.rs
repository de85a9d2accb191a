//! What goes wrong reading or writing frames.

use std::io;

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
