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
//! workers, threads or processes, may write one file: each record is written
//! whole under a lock and, for plain files, flushed at once. Compressed files
//! (`.gz`, `.zst`) stay open in the process that writes them and are
//! completed by [`finish_all`], which a [`Plumber`](crate::Plumber) calls when
//! its run ends and a worker process calls when it shuts down; several
//! processes writing one compressed file leave one gzip member / zstd frame
//! each, which the readers take as one stream.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use papy_macros::worker;

use super::codec::{self, StreamFile};
use crate::value::Value;

type Open = Mutex<HashMap<PathBuf, Arc<Mutex<Option<StreamFile>>>>>;

fn open_files() -> &'static Open {
    static OPEN: OnceLock<Open> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// Appends `record` to `path` as one write (opening the file on first use).
///
/// # Errors
/// The file cannot be opened or written; the message names it.
pub fn append(path: &Path, record: &[u8]) -> Result<(), String> {
    let slot = {
        let mut open = open_files().lock().map_err(|_| "writer table poisoned")?;
        open.entry(path.to_path_buf()).or_default().clone()
    };
    let mut file = slot.lock().map_err(|_| "writer poisoned")?;
    if file.is_none() {
        *file = Some(codec::create(path, true).map_err(|e| e.to_string())?);
    }
    let f = file.as_mut().ok_or("writer closed")?;
    let r = f
        .write_all(record)
        .and_then(|()| if f.is_compressed() { Ok(()) } else { f.flush() });
    r.map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Completes and closes every stream this process has written to (gzip
/// and zstd trailers); the next record opens the file again, appending.
///
/// # Errors
/// The first failure, naming the file (every file is still closed).
pub fn finish_all() -> Result<(), String> {
    let files: Vec<_> = match open_files().lock() {
        Ok(mut open) => open.drain().collect(),
        Err(_) => return Err("writer table poisoned".into()),
    };
    let mut first = Ok(());
    for (path, slot) in files {
        let taken = slot.lock().map(|mut f| f.take());
        if let Ok(Some(f)) = taken {
            if let Err(e) = f.finish() {
                if first.is_ok() {
                    first = Err(format!("finishing {}: {e}", path.display()));
                }
            }
        }
    }
    first
}

fn first(inbox: &[Value]) -> Result<&Value, String> {
    inbox.first().ok_or_else(|| "empty inbox".to_string())
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
