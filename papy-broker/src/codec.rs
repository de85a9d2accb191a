//! Stream entries hold protocol frames: a `Task` frame in a task entry, a
//! `Result` frame in a result entry, encoded exactly as on a process
//! worker's pipe (docs/protocol.md), so a worker in another language reads
//! them with the same code.

use papy_core::error::quote_peer;
use papy_core::protocol::{read_frame, write_frame, Frame, MAX_FRAME};

use crate::error::{BrokerError, Result};

/// The bytes of a frame (length prefix included).
///
/// # Errors
/// The frame cannot be encoded.
///
/// ```
/// use papy_broker::codec::{decode, encode};
/// use papy_core::protocol::Frame;
/// let bytes = encode(&Frame::Shutdown)?;
/// assert!(matches!(decode("1-0", &bytes)?, Frame::Shutdown));
/// # Ok::<(), papy_broker::BrokerError>(())
/// ```
pub fn encode(frame: &Frame) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_frame(&mut out, frame).map_err(|e| BrokerError::Malformed {
        id: "(new)".into(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// The frame held by entry `id`.
///
/// # Errors
/// The bytes are not a frame.
pub fn decode(id: &str, bytes: &[u8]) -> Result<Frame> {
    let mut r = bytes;
    read_frame(&mut r, MAX_FRAME).map_err(|e| BrokerError::Malformed {
        id: quote_peer(id).into_owned(),
        reason: quote_peer(&e.to_string()).into_owned(),
    })
}
