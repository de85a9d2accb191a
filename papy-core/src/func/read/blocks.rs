//! Blocks of whole lines: a text file read in pieces of about a chosen size,
//! each cut just after a newline, so that a worker counts or scans a
//! megabyte of lines per item instead of paying per line for the hand-off.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use super::{codec, input_error};
use crate::error::Item;
use crate::value::Value;

/// The block size `papy run` uses when a `blocks` input names none: large
/// enough that the hand-off of an item is noise beside scanning its text,
/// small enough that two workers get many blocks from a small file.
pub const DEFAULT_BLOCK_BYTES: usize = 1 << 20;

/// The text of a file in blocks of whole lines, made by [`blocks`].
///
/// Each item is a string of whole lines, each with its `"\n"` (a last line
/// without one stays as it is): as many lines as fit in the block size, or
/// one line alone when it is longer than that. Concatenated, the items are
/// the file's text. A line that is not UTF-8 becomes an error item naming
/// the file and the byte where the bad sequence starts, between the blocks
/// of the text around it: only that line is lost.
pub struct Blocks {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    size: usize,
    /// The bytes read past the last cut (the start of the next block).
    carry: Vec<u8>,
    /// The offset in the file of the next block's first byte.
    offset: u64,
    /// The error item for a line that is not UTF-8, due after the valid
    /// text before it.
    pending: Option<Item>,
    done: bool,
}

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocks")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// Reads `path` (`-` = stdin; `.gz`/`.zst` decompressed) in blocks of whole
/// lines of about `size` bytes (at least 1).
///
/// ```
/// use papy_core::func::read;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
/// let blocks: Vec<_> = read::blocks(&path, 8).unwrap().map(|i| i.unwrap()).collect();
/// assert_eq!(blocks, ["one\ntwo\n".into(), "three\n".into()]);
/// ```
///
/// # Errors
/// The file cannot be opened.
pub fn blocks(path: impl AsRef<Path>, size: usize) -> io::Result<Blocks> {
    let path = path.as_ref();
    Ok(Blocks {
        path: path.to_path_buf(),
        reader: codec::open(path)?,
        size: size.max(1),
        carry: Vec::new(),
        offset: 0,
        pending: None,
        done: false,
    })
}

impl Blocks {
    /// Reads until `buf` holds `want` bytes or the file ends; `Ok(false)`
    /// at the end of the file. The bytes go into `buf`'s spare room as
    /// they come (nothing zeroed first, however short each read).
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        let missing = want.saturating_sub(buf.len()) as u64;
        (&mut self.reader).take(missing).read_to_end(buf)?;
        Ok(buf.len() >= want)
    }

    /// The next block's bytes: up to the last newline of the next `size`
    /// bytes (further when there is none), or what is left at the end of
    /// the file.
    fn next_bytes(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.reserve(self.size + self.size / 8);
        let mut searched = 0;
        let mut want = self.size;
        loop {
            let more = self.fill(&mut buf, want)?;
            if !more && searched == 0 {
                // What is left fits in one block.
                self.done = true;
                return Ok(buf);
            }
            // The cut goes after the last newline within the size; a line
            // longer than that is a block of its own, never cut in two.
            let mut new = buf[searched..].iter();
            let nl = |&b: &u8| b == b'\n';
            let cut = if searched == 0 {
                new.rposition(nl)
            } else {
                new.position(nl)
            };
            match cut {
                Some(i) if more || searched + i + 1 < buf.len() => {
                    self.carry = buf.split_off(searched + i + 1);
                    return Ok(buf);
                }
                _ if !more => {
                    self.done = true;
                    return Ok(buf);
                }
                _ => {
                    searched = buf.len();
                    want = buf.len() + self.size;
                }
            }
        }
    }
}

impl Blocks {
    /// `bytes` (read from `start`) as items: the whole block when it is
    /// UTF-8; else the text before the first bad line now, that line's
    /// error next, and the text after it back in front of the next block.
    fn text(&mut self, start: u64, bytes: Vec<u8>) -> Item {
        let e = match String::from_utf8(bytes) {
            Ok(s) => return Ok(Value::from(s)),
            Err(e) => e,
        };
        let bad = e.utf8_error().valid_up_to();
        let mut bytes = e.into_bytes();
        let nl = |&b: &u8| b == b'\n';
        let line = bytes[..bad].iter().rposition(nl).map_or(0, |i| i + 1);
        let end = bytes[bad..]
            .iter()
            .position(nl)
            .map_or(bytes.len(), |i| bad + i + 1);
        let mut rest = bytes.split_off(end);
        rest.append(&mut self.carry);
        self.carry = rest;
        self.done = self.done && self.carry.is_empty();
        self.offset = start + end as u64;
        let error = input_error(
            &self.path,
            format_args!(
                "byte {}: not UTF-8 (the line of bytes {}..{} is skipped)",
                start + bad as u64,
                start + line as u64,
                self.offset
            ),
        );
        bytes.truncate(line);
        match String::from_utf8(bytes) {
            Ok(before) if !before.is_empty() => {
                self.pending = Some(error);
                Ok(Value::from(before))
            }
            _ => error,
        }
    }
}

impl Iterator for Blocks {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(error) = self.pending.take() {
            return Some(error);
        }
        if self.done {
            return None;
        }
        let start = self.offset;
        match self.next_bytes() {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => {
                self.offset += bytes.len() as u64;
                Some(self.text(start, bytes))
            }
            Err(e) => {
                self.done = true;
                Some(input_error(
                    &self.path,
                    format_args!("reading byte {start}: {e}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
