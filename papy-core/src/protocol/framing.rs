//! Frames on a stream: a 4-byte big-endian length, then the MessagePack
//! payload; reading (into reused buffers, telling text from frames) and
//! writing.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::error::ProtocolError;
use super::frame::Frame;

/// Default largest frame accepted (256 MiB).
pub const MAX_FRAME: usize = 256 << 20;

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

/// Reads one frame.
///
/// # Errors
/// [`ProtocolError`] for a closed stream, a truncated, oversized or malformed frame.
pub fn read_frame(r: &mut impl Read, limit: usize) -> Result<Frame, ProtocolError> {
    read_frame_with(r, &mut Vec::new(), limit)
}

/// Reads one frame into `buf` (cleared first, its allocation reused: a
/// loop that reads many frames allocates once instead of once per frame),
/// decoded as a [`Frame`], or as a [`FrameView`](super::FrameView) borrowing from `buf`
/// (what workers read tasks with).
///
/// # Errors
/// As [`read_frame`].
pub fn read_frame_with<'b, F: Deserialize<'b>>(
    r: &mut impl Read,
    buf: &'b mut Vec<u8>,
    limit: usize,
) -> Result<F, ProtocolError> {
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
        let located = serde_path_to_error::deserialize::<_, T>(&mut de).err();
        let at = located.map(|l| l.path().to_string()).unwrap_or_default();
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
pub(super) const KEEP_BUFFER: usize = 4 << 20;

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

/// Writes one frame and flushes.
///
/// # Errors
/// I/O errors, or a frame too large for the 4-byte length.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<(), ProtocolError> {
    write_frame_with(w, &mut Vec::new(), frame)
}

/// Writes anything that encodes as a frame ([`Frame`], or the borrowing
/// [`FrameRef`](super::FrameRef)) in one write, building it in `buf` (its allocation reused
/// from frame to frame), and flushes.
///
/// # Errors
/// I/O errors, or a frame too large for the 4-byte length.
pub fn write_frame_with<F: Serialize + ?Sized>(
    w: &mut impl Write,
    buf: &mut Vec<u8>,
    frame: &F,
) -> Result<(), ProtocolError> {
    encode_frame(buf, frame)?;
    set_length(buf, 0)?;
    w.write_all(buf)?;
    w.flush()?;
    Ok(())
}

/// As [`write_frame_with`], for a frame whose encoding ends with an empty
/// `bin` standing for `tail` (a `Task` of packed values, built with none):
/// the frame is encoded in `buf` up to that `bin`, whose header is set for
/// `tail`, then `tail` is written as it is instead of being copied into
/// `buf` (a batch's values are most of its frame). The bytes written are
/// those of the frame built with `tail` in place.
///
/// # Errors
/// I/O errors, a frame too large for the 4-byte length, or a frame that
/// does not end with an empty `bin`.
pub fn write_frame_tail<F: Serialize + ?Sized>(
    w: &mut impl Write,
    buf: &mut Vec<u8>,
    frame: &F,
    tail: &[u8],
) -> Result<(), ProtocolError> {
    encode_frame(buf, frame)?;
    if !buf.ends_with(&[0xc4, 0x00]) {
        return Err(ProtocolError::Malformed(
            "internal: a frame written with a tail must end with an empty bin".into(),
        ));
    }
    buf.truncate(buf.len() - 2);
    let n = u32::try_from(tail.len()).map_err(|_| ProtocolError::TooLarge {
        size: tail.len(),
        limit: u32::MAX as usize,
    })?;
    rmp::encode::write_bin_len(buf, n).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    set_length(buf, tail.len())?;
    w.write_all(buf)?;
    w.write_all(tail)?;
    w.flush()?;
    Ok(())
}

/// Encodes `frame` into `buf` after 4 bytes kept for its length.
fn encode_frame<F: Serialize + ?Sized>(buf: &mut Vec<u8>, frame: &F) -> Result<(), ProtocolError> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(buf, frame).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Sets the length of the frame in `buf`, followed by `more` bytes.
fn set_length(buf: &mut [u8], more: usize) -> Result<(), ProtocolError> {
    let body = (buf.len() - 4).saturating_add(more);
    let len = u32::try_from(body).map_err(|_| ProtocolError::TooLarge {
        size: body,
        limit: u32::MAX as usize,
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
