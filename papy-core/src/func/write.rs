//! Stream writers (PaPy's `dump_stream` and `dump_pickle_stream`), as
//! worker functions that write `inbox[0]` to a file and return null.
//!
//! | function | writes |
//! |---|---|
//! | `papy.dump_lines(path)` | a string as it is, any other value as JSON, then `"\n"` |
//! | `papy.dump_jsonl(path)` | the value as one line of JSON |
//! | `papy.dump_stream(path, delimiter)` | a string record, then `"\n"`, the delimiter and `"\n"` (read back by [`read::records`](super::read::records)) |
//! | `papy.dump_msgpack(path)` | the value as MessagePack (read back by [`read::msgpack`](super::read::msgpack)) |
//!
//! Writers **append** (remove the file first to start afresh), so several
//! workers, threads or processes, may write one file: each record of a plain
//! file is one `write` to a file opened for appending. A compressed file
//! (`.gz`, `.zst`) is compressed in memory and appended as one whole gzip
//! member / zstd frame by [`finish_all`], which a worker process calls after
//! each batch (before reporting its items done) and a
//! [`Plumber`](crate::Plumber) when its run ends; readers (papy's, `zcat`,
//! `zstdcat`) take the members as one stream.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use papy_macros::worker_in_core as worker;

use super::codec::Compression;
use super::compress::Encoder;
use super::first;
use crate::value::Value;

/// An open output of this process.
enum Slot {
    /// Not open (never, or completed by [`finish_all`]).
    Closed,
    /// A plain file opened for appending: one `write` per record.
    Plain(File),
    /// A compressed stream built in memory, appended to the file as one
    /// whole gzip member or zstd frame when completed.
    Compressed(Encoder<Vec<u8>>),
}

impl Slot {
    fn open(path: &Path) -> Result<Slot, String> {
        Ok(match Compression::of(path) {
            Compression::None => Slot::Plain(append_to(path)?),
            c => Slot::Compressed(
                Encoder::new(c, Vec::new()).map_err(|e| format!("{}: {e}", path.display()))?,
            ),
        })
    }

    fn write(&mut self, record: &[u8]) -> std::io::Result<()> {
        match self {
            Slot::Closed => Ok(()),
            Slot::Plain(f) => f.write_all(record),
            Slot::Compressed(e) => e.write_all(record),
        }
    }

    /// Completes a compressed stream: appends it to `path` in one write (so
    /// streams of several processes never interleave) and closes the slot.
    fn finish(&mut self, path: &Path) -> Result<(), String> {
        let Slot::Compressed(e) = std::mem::replace(self, Slot::Closed) else {
            return Ok(());
        };
        let bytes = e
            .finish()
            .map_err(|e| format!("finishing {}: {e}", path.display()))?;
        append_to(path)?
            .write_all(&bytes)
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

fn append_to(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))
}

type Open = Mutex<HashMap<PathBuf, Arc<Mutex<Slot>>>>;

fn open_files() -> &'static Open {
    static OPEN: OnceLock<Open> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// Appends `record` to `path` as one write (opening the file on first use;
/// `-` is standard output).
///
/// # Errors
/// The file cannot be opened or written; the message names it.
pub fn append(path: &Path, record: &[u8]) -> Result<(), String> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(record)
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to standard output: {e}"));
    }
    let slot = {
        let mut open = open_files().lock().map_err(|_| "writer table poisoned")?;
        open.entry(path.to_path_buf())
            .or_insert_with(|| Arc::new(Mutex::new(Slot::Closed)))
            .clone()
    };
    let mut slot = slot.lock().map_err(|_| "writer poisoned")?;
    if matches!(*slot, Slot::Closed) {
        // Where a task may write is this process's to say, not the task's.
        crate::permissions::check_file(path).map_err(|e| e.to_string())?;
        *slot = Slot::open(path)?;
    }
    slot.write(record)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Completes every compressed stream this process has written to, each
/// appended to its file as one gzip member or zstd frame; the next record
/// starts a new one. Plain files need nothing (every record is written at
/// once).
///
/// # Errors
/// The first failure, naming the file (every stream is still completed).
pub fn finish_all() -> Result<(), String> {
    let slots: Vec<(PathBuf, Arc<Mutex<Slot>>)> = match open_files().lock() {
        Ok(open) => open.iter().map(|(p, s)| (p.clone(), s.clone())).collect(),
        Err(_) => return Err("writer table poisoned".into()),
    };
    let mut first = Ok(());
    for (path, slot) in slots {
        let done = match slot.lock() {
            Ok(mut s) => s.finish(&path),
            Err(_) => Err(format!("writer of {} poisoned", path.display())),
        };
        if first.is_ok() {
            first = done;
        }
    }
    first
}

// What was written is complete when a batch is done, a run ends, or a
// worker's session ends (the engine calls these hooks; it never names
// this module).
inventory::submit! { crate::hooks::Hook { when: crate::hooks::When::BatchDone, run: finish_all_logged } }
inventory::submit! { crate::hooks::Hook { when: crate::hooks::When::RunEnd, run: finish_all_logged } }
inventory::submit! { crate::hooks::Hook { when: crate::hooks::When::SessionEnd, run: finish_all_logged } }

/// [`finish_all`], logging a failure: for the places that complete streams
/// on the way (a worker after each batch, a Plumber at the end of a run)
/// and have nobody to return the error to.
pub(crate) fn finish_all_logged() {
    if let Err(e) = finish_all() {
        tracing::error!("{e}");
    }
}

/// The text of a value for a line: strings as they are, others as JSON.
pub(crate) fn line_of(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.to_string()),
        other => serde_json::to_string(other).map_err(|e| e.to_string()),
    }
}

/// Writes `inbox[0]` as a line to `path` (strings as they are, others as JSON).
#[worker(name = "papy.dump_lines")]
fn dump_lines(inbox: &[Value], path: String) -> Result<Value, String> {
    let mut line = line_of(first(inbox)?)?;
    line.push('\n');
    append(Path::new(&path), line.as_bytes())?;
    Ok(Value::Null)
}

/// Writes `inbox[0]` as one line of JSON to `path`.
#[worker(name = "papy.dump_jsonl")]
fn dump_jsonl(inbox: &[Value], path: String) -> Result<Value, String> {
    let mut line = serde_json::to_string(first(inbox)?).map_err(|e| e.to_string())?;
    line.push('\n');
    append(Path::new(&path), line.as_bytes())?;
    Ok(Value::Null)
}

/// The bytes `dump_stream` writes for `text`, or why it cannot be read back.
pub(crate) fn record_of(text: &str, delimiter: Option<&str>) -> Result<String, String> {
    match delimiter.filter(|d| !d.is_empty()) {
        Some(d) => {
            if d.contains('\n') {
                return Err("a delimiter cannot contain a newline".into());
            }
            if text.split('\n').any(|l| l == d) {
                return Err(format!(
                    "the record has a line equal to the delimiter {d:?}; it would read back as two"
                ));
            }
            Ok(format!("{text}\n{d}\n"))
        }
        None => {
            if text.is_empty() || text.starts_with('\n') || text.contains("\n\n") {
                return Err(
                    "the record is empty or has a blank line, which the default delimiter cannot carry; give a delimiter"
                        .into(),
                );
            }
            Ok(format!("{text}\n\n"))
        }
    }
}

/// Writes the string `inbox[0]` as a record followed by a `delimiter` line
/// (PaPy's `dump_stream`; default: a blank line).
#[worker(name = "papy.dump_stream")]
fn dump_stream(inbox: &[Value], path: String, delimiter: Option<String>) -> Result<Value, String> {
    let v = first(inbox)?;
    let text = v
        .as_str()
        .ok_or_else(|| format!("dump_stream writes strings, got a {}", v.kind()))?;
    append(
        Path::new(&path),
        record_of(text, delimiter.as_deref())?.as_bytes(),
    )?;
    Ok(Value::Null)
}

/// Writes `inbox[0]` as MessagePack to `path` (PaPy's `dump_pickle_stream`).
#[worker(name = "papy.dump_msgpack")]
fn dump_msgpack(inbox: &[Value], path: String) -> Result<Value, String> {
    let bytes = rmp_serde::to_vec(first(inbox)?).map_err(|e| e.to_string())?;
    append(Path::new(&path), &bytes)?;
    Ok(Value::Null)
}

/// Prints `inbox[0]` to standard output as a line (strings as they are,
/// others as JSON) and returns null (PaPy's `print_`). In a worker process
/// the line goes to the host's standard error, like everything the
/// process prints.
#[worker(name = "papy.print")]
fn print(inbox: &[Value]) -> Result<Value, String> {
    let line = line_of(first(inbox)?)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|e| e.to_string())?;
    Ok(Value::Null)
}

#[cfg(all(test, feature = "compress"))]
mod tests;
