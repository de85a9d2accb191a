//! Stream readers: the inputs of a pipeline (PaPy's `make_lines`,
//! `load_stream` and `load_pickle_stream`).
//!
//! Every reader is an iterator of [`Item`]s, ready for
//! [`Source::items`](crate::Source::items). A read or decode failure
//! becomes an error item naming the file and the line or record (nothing is
//! skipped silently); files are decompressed by extension
//! ([`codec`]).
//!
//! ```
//! use papy_core::func::read;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("in.txt");
//! std::fs::write(&path, "one\ntwo\n").unwrap();
//! let items: Vec<_> = read::lines(&path).unwrap().map(|i| i.unwrap()).collect();
//! assert_eq!(items, ["one".into(), "two".into()]);
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::codec;
use crate::error::{ErrorKind, Item, ItemError};
use crate::value::Value;

fn input_error(path: &Path, what: impl std::fmt::Display) -> Item {
    Err(ItemError::new(
        ErrorKind::Input,
        format!("{}: {what}", path.display()),
    ))
}

pub use crate::sync::StopSignal;

mod blocks;
pub use blocks::{blocks, Blocks, DEFAULT_BLOCK_BYTES};

/// Reads raw lines (with their terminators) from a reader, and follows a
/// growing file when told to.
struct LineReader {
    path: PathBuf,
    source: Source,
    line: u64,
    /// The last line read, with its terminator (reused: no allocation per
    /// line but the item's own string).
    buf: Vec<u8>,
    /// The end was reached, or a read failed.
    done: bool,
}

enum Source {
    Stream(Box<dyn BufRead + Send>),
    Follow {
        file: BufReader<File>,
        pos: u64,
        partial: Vec<u8>,
        poll: Duration,
        stop: StopSignal,
    },
}

impl LineReader {
    fn new(path: &Path, source: Source) -> LineReader {
        LineReader {
            path: path.to_path_buf(),
            source,
            line: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next line into `buf`: `Some(Ok(()))`, `None` at the end, or once
    /// an error item for a failed read (the end follows).
    fn next_line(&mut self) -> Option<Result<(), Item>> {
        if self.done {
            return None;
        }
        let read = self.read_line();
        self.done = !matches!(read, Ok(true));
        match read {
            Ok(more) => more.then_some(Ok(())),
            Err(e) => {
                let e = input_error(&self.path, format_args!("reading line {}: {e}", self.line));
                Some(Err(e))
            }
        }
    }

    /// A reader of `path`'s lines, decompressed by extension.
    fn open(path: &Path) -> io::Result<LineReader> {
        Ok(LineReader::new(path, Source::Stream(codec::open(path)?)))
    }

    /// Reads the next line, with its terminator, into `buf`; `Ok(false)`
    /// at the end.
    fn read_line(&mut self) -> io::Result<bool> {
        self.line += 1;
        let buf = &mut self.buf;
        buf.clear();
        match &mut self.source {
            Source::Stream(r) => Ok(r.read_until(b'\n', buf)? > 0),
            Source::Follow {
                file,
                pos,
                partial,
                poll,
                stop,
            } => loop {
                let n = file.read_until(b'\n', partial)?;
                *pos += n as u64;
                if partial.ends_with(b"\n") {
                    std::mem::swap(partial, buf);
                    return Ok(true);
                }
                if stop.is_raised() {
                    // A last line without its newline is still a line.
                    std::mem::swap(partial, buf);
                    return Ok(!buf.is_empty());
                }
                if n == 0 {
                    // Truncated (log rotation by copytruncate): start over.
                    if file.get_ref().metadata()?.len() < *pos {
                        file.seek(SeekFrom::Start(0))?;
                        *pos = 0;
                        partial.clear();
                    }
                    std::thread::sleep(*poll);
                }
            },
        }
    }
}

fn strip_newline(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n")
        .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// The lines of a text file, without their terminators (`\n` or `\r\n`).
/// Made by [`lines`] or [`follow`].
pub struct Lines {
    r: LineReader,
}

opaque_debug!(Lines);

/// Reads the lines of `path` (`-` = stdin; `.gz`/`.zst` decompressed).
///
/// # Errors
/// The file cannot be opened.
pub fn lines(path: impl AsRef<Path>) -> io::Result<Lines> {
    Ok(Lines {
        r: LineReader::open(path.as_ref())?,
    })
}

/// Reads the lines of `path` like `tail -f`: at the end of the file it
/// waits `poll` and reads again, until `stop` is raised (then the lines
/// already written are read, a last line without newline included, and the
/// iterator ends). A truncated file is read again from its start. Plain
/// files only: a compressed stream cannot be followed.
///
/// Under a [`Plumber`](crate::Plumber), inputs end at the next stride
/// boundary once stopped, so lines still unread then are not fed.
///
/// # Errors
/// The file cannot be opened, is compressed, or is not a regular file.
pub fn follow(path: impl AsRef<Path>, poll: Duration, stop: StopSignal) -> io::Result<Lines> {
    let path = path.as_ref();
    if codec::Compression::of(path) != codec::Compression::None {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: a compressed file cannot be followed", path.display()),
        ));
    }
    let f = File::open(path).map_err(|e| codec::named(path, "cannot open", e))?;
    // A pipe or device would block inside a read, where `stop` cannot end it.
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: only regular files can be followed", path.display()),
        ));
    }
    let source = Source::Follow {
        file: BufReader::new(f),
        pos: 0,
        partial: Vec::new(),
        poll,
        stop,
    };
    Ok(Lines {
        r: LineReader::new(path, source),
    })
}

impl Iterator for Lines {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Err(e) = self.r.next_line()? {
            return Some(e);
        }
        Some(match std::str::from_utf8(strip_newline(&self.r.buf)) {
            Ok(s) => Ok(Value::from(s)),
            Err(e) => input_error(&self.r.path, format_args!("line {}: {e}", self.r.line)),
        })
    }
}

/// Reads a JSON Lines file: one JSON value per line; blank lines are
/// skipped, a line that is not JSON becomes an error item naming it.
///
/// # Errors
/// The file cannot be opened.
pub fn jsonl(path: impl AsRef<Path>) -> io::Result<impl Iterator<Item = Item> + Send> {
    let path = path.as_ref().to_path_buf();
    let mut n = 0u64;
    Ok(lines(&path)?.filter_map(move |item| {
        n += 1;
        match item {
            Ok(Value::Str(s)) if s.trim().is_empty() => None,
            Ok(Value::Str(s)) => Some(
                serde_json::from_str::<Value>(&s)
                    .or_else(|e| input_error(&path, format_args!("line {n}: not JSON: {e}"))),
            ),
            other => Some(other),
        }
    }))
}

/// What a record reader does with a last record that no delimiter line ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unterminated {
    /// Yield an error item naming the file and the record's size (the
    /// default: a writer that died mid-record is not mistaken for data).
    #[default]
    Report,
    /// Yield the text as a record.
    Emit,
}

/// Records separated by delimiter lines (PaPy's `load_stream`), made by
/// [`records`].
///
/// The format is PaPy's `dump_stream` output: each record, then `"\n"`,
/// then the delimiter, then `"\n"`.
/// - With a delimiter `D`, a line equal to `D` ends a record, and the
///   record is the text before it minus the one `"\n"` the writer added:
///   any text that has no line equal to `D` reads back exactly.
/// - With the default (empty) delimiter, a blank line ends a record, and
///   the record keeps its last newline: line-terminated text without blank
///   lines reads back exactly (an item without a final newline reads back
///   with one; [`dump_stream`](super::write) refuses items with blank lines).
/// - A last record without its delimiter line is reported or emitted as
///   [`Unterminated`] says; it is never dropped silently.
pub struct Records {
    r: LineReader,
    delimiter: Option<Vec<u8>>,
    unterminated: Unterminated,
}

opaque_debug!(Records);

/// Reads the records of `path` separated by `delimiter` lines (`None` or
/// `""` = blank lines), PaPy's `load_stream`.
///
/// ```
/// use papy_core::func::read;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("records.txt");
/// std::fs::write(&path, "a1\na2\n\nXYZ\nb\n\nXYZ\n").unwrap();
/// let items: Vec<_> = read::records(&path, Some("XYZ")).unwrap().map(|i| i.unwrap()).collect();
/// assert_eq!(items, ["a1\na2\n".into(), "b\n".into()]);
/// ```
///
/// # Errors
/// The file cannot be opened, or the delimiter has a newline.
pub fn records(path: impl AsRef<Path>, delimiter: Option<&str>) -> io::Result<Records> {
    let path = path.as_ref();
    if delimiter.is_some_and(|d| d.contains('\n')) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: a record delimiter is one line (no newline)",
                path.display()
            ),
        ));
    }
    Ok(Records {
        r: LineReader::open(path)?,
        delimiter: delimiter
            .filter(|d| !d.is_empty())
            .map(|d| d.as_bytes().to_vec()),
        unterminated: Unterminated::Report,
    })
}

impl Records {
    setters! {
        /// Chooses what happens to an unterminated last record.
        unterminated(u: Unterminated) => unterminated = u;
    }

    fn record(&self, mut text: Vec<u8>) -> Item {
        if self.delimiter.is_some() && text.ends_with(b"\n") {
            text.pop();
        }
        String::from_utf8(text).map(Value::from).or_else(|e| {
            input_error(
                &self.r.path,
                format_args!("record ending at line {}: {e}", self.r.line),
            )
        })
    }

    fn is_delimiter(&self, line: &[u8]) -> bool {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match &self.delimiter {
            Some(d) => body == d.as_slice(),
            None => line == b"\n",
        }
    }
}

impl Iterator for Records {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let mut acc: Vec<u8> = Vec::new();
        loop {
            match self.r.next_line() {
                Some(Ok(())) => {
                    if self.is_delimiter(&self.r.buf) {
                        if !acc.is_empty() {
                            return Some(self.record(acc));
                        }
                    } else {
                        acc.extend_from_slice(&self.r.buf);
                    }
                }
                Some(Err(e)) => return Some(e),
                None if acc.is_empty() => return None,
                None => {
                    return Some(match self.unterminated {
                        Unterminated::Emit => {
                            String::from_utf8(acc).map(Value::from).or_else(|e| {
                                input_error(&self.r.path, format_args!("last record: {e}"))
                            })
                        }
                        Unterminated::Report => input_error(
                            &self.r.path,
                            format_args!(
                                "unterminated last record ({} bytes, no delimiter line before the end of the file)",
                                acc.len()
                            ),
                        ),
                    });
                }
            }
        }
    }
}

/// Successive MessagePack values of a file (PaPy's pickle stream, in a
/// language-neutral codec), made by [`msgpack`].
pub struct MsgPack {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    n: u64,
    done: bool,
}

opaque_debug!(MsgPack);

/// Reads the MessagePack values of `path` until its end; a truncated or
/// malformed value becomes an error item and ends the stream (a binary
/// stream cannot be resynchronised).
///
/// # Errors
/// The file cannot be opened.
pub fn msgpack(path: impl AsRef<Path>) -> io::Result<MsgPack> {
    let path = path.as_ref();
    Ok(MsgPack {
        path: path.to_path_buf(),
        reader: codec::open(path)?,
        n: 0,
        done: false,
    })
}

impl Iterator for MsgPack {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        match self.reader.fill_buf() {
            Ok([]) => {
                self.done = true;
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                self.done = true;
                return Some(input_error(&self.path, e));
            }
        }
        self.n += 1;
        let reader: &mut dyn Read = &mut self.reader;
        match rmp_serde::from_read::<_, Value>(reader) {
            Ok(v) => Some(Ok(v)),
            Err(e) => {
                self.done = true;
                Some(input_error(
                    &self.path,
                    format_args!("value {}: {e}", self.n),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
