//! Items passed by reference (PaPy's `dump_item` / `load_item`): a large
//! payload is written where the producing worker runs and only a small
//! **locator** (a map) travels through the pipeline to the worker that
//! loads it, so the payload never crosses the host process.
//!
//! | transport | the locator | the payload lives |
//! |---|---|---|
//! | `file` | `{kind: "file", path, codec, len}` | in a new file (mode 0600), removed when loaded unless told otherwise; loadable through a memory map |
//! | `fifo` | `{kind: "fifo", path, codec, len}` | in the dumping process, written into a named pipe when the reader opens it |
//! | `socket` | `{kind: "socket", host, port, codec, len}` | in the dumping process, sent over one TCP connection (127.0.0.1 by default) |
//!
//! A fifo or socket item waits at most `timeout` for its reader; then the
//! pipe is removed or the socket closed, and the serving thread ends.
//!
//! **Locators are checked, not trusted.** A locator is data, and data can
//! come from anywhere (an input line, a worker's reply), so every locator
//! [`dump`] makes carries a `mac`: an HMAC-SHA256 of its fields under this
//! run's key ([`run_key`](crate::run_key), which the host hands to its
//! worker processes). [`load`] honours a locator only when its MAC is right,
//! or, for `file` and `fifo` items, when its path lies inside the item
//! directory the caller declares ([`LoadOptions::dir`]); it removes only
//! files whose locator is authentic, checks that a `file` item is a regular
//! file and a `fifo` item a named pipe (never a device), and reads at most
//! the locator's `len` bytes, itself at most [`LoadOptions::max_size`].
//! `codec` says how the value was written: `bytes` (raw), `str` (UTF-8) or
//! `msgpack` (any other value); `len` lets the loader detect a truncated
//! transfer.
//!
//! ```
//! use papy_core::func::items::{self, DumpOptions, LoadOptions};
//! use papy_core::Value;
//!
//! let payload = Value::from(vec![7u8; 1000].as_slice());
//! let dumped = items::dump(&payload, &DumpOptions::default()).unwrap();
//! assert_eq!(dumped.locator().get("kind"), Some(&Value::from("file")));
//! let back = items::load(dumped.locator(), &LoadOptions::default()).unwrap();
//! assert_eq!(back, payload);
//! ```

mod fifo;
mod file;
mod payload;
mod socket;
mod trust;

use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use papy_macros::worker_in_core as worker;

use crate::value::Value;
use payload::{decode, encode};

pub use fifo::remove_pending_fifos;
pub use file::{map, remove};
pub use trust::is_authentic;

/// How a dumped item travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// A temporary file.
    #[default]
    File,
    /// A named pipe (Unix).
    Fifo,
    /// One TCP connection.
    Socket,
}

impl Transport {
    /// The transport called `name` (`file`, `fifo`, `socket`).
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Transport, ItemsError> {
        match name {
            "file" => Ok(Transport::File),
            "fifo" => Ok(Transport::Fifo),
            "socket" => Ok(Transport::Socket),
            other => Err(ItemsError::Locator(format!(
                "unknown item transport `{other}` (file, fifo or socket)"
            ))),
        }
    }
}

/// Why an item could not be dumped or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ItemsError {
    /// The locator (or transport name) is not one this module makes.
    #[error("bad item locator: {0}")]
    Locator(String),
    /// An I/O failure, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What failed, naming the file or address.
        what: String,
        /// The failure.
        source: io::Error,
    },
    /// The payload could not be decoded, or arrived truncated.
    #[error("item payload: {0}")]
    Payload(String),
    /// The locator was not made by this run and names nothing inside the
    /// declared item directory: nothing was read or removed.
    #[error("untrusted item locator: {0}")]
    Untrusted(String),
    /// This process may not touch that directory or open sockets
    /// ([`crate::permissions`]).
    #[error(transparent)]
    Denied(#[from] crate::permissions::Denied),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ItemsError {
    let what = what.into();
    move |source| ItemsError::Io { what, source }
}

/// Options of [`dump`].
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// How the item travels.
    pub transport: Transport,
    /// Directory of files and pipes (default: the system's temporary directory).
    pub dir: Option<PathBuf>,
    /// File name prefix (default `tmp_papy_<transport>`).
    pub prefix: Option<String>,
    /// File name suffix.
    pub suffix: Option<String>,
    /// How long a fifo or socket item waits for its reader (default 320 s, as PaPy).
    pub timeout: Duration,
    /// The address a socket item listens on (default `127.0.0.1`).
    pub host: String,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            transport: Transport::File,
            dir: None,
            prefix: None,
            suffix: None,
            timeout: Duration::from_secs(320),
            host: "127.0.0.1".into(),
        }
    }
}

/// How a fifo or socket item's serving thread ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// The reader came and got the whole payload.
    Done,
    /// No reader came within the timeout; the pipe was removed or the socket closed.
    TimedOut,
    /// Serving failed.
    Failed(String),
}

/// A dumped item: its locator, and for fifo and socket items the thread
/// serving it (dropping a `Dumped` detaches that thread, which ends by
/// itself when served or timed out).
#[derive(Debug)]
pub struct Dumped {
    locator: Value,
    server: Option<JoinHandle<Served>>,
}

impl Dumped {
    /// The locator to pass downstream.
    pub fn locator(&self) -> &Value {
        &self.locator
    }

    /// Waits for the serving thread (file items: at once [`Served::Done`]).
    pub fn wait(self) -> Served {
        match self.server {
            None => Served::Done,
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Served::Failed("serving thread panicked".into())),
        }
    }
}

fn new_path(opts: &DumpOptions, kind: &str) -> Result<tempfile::NamedTempFile, ItemsError> {
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => crate::run_key::ensure_item_root()
            .map_err(io_err("making the run's item folder"))?
            .to_path_buf(),
    };
    crate::permissions::check_file(&dir)?;
    if opts.dir.is_some() {
        // A folder the dumper chose: what it holds may be named by this
        // run's locators.
        crate::run_key::add_item_dir(&dir);
    }
    let prefix = opts
        .prefix
        .clone()
        .unwrap_or_else(|| format!("tmp_papy_{kind}"));
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(opts.suffix.as_deref().unwrap_or(""))
        .tempfile_in(&dir)
        .map_err(io_err(format!("creating a file in {}", dir.display())))
}

/// Dumps `value` as [`DumpOptions::transport`] says and returns its locator.
///
/// # Errors
/// The file, pipe or socket cannot be made, or the value cannot be encoded.
pub fn dump(value: &Value, opts: &DumpOptions) -> Result<Dumped, ItemsError> {
    let (codec, payload) = encode(value)?;
    let len = payload.bytes().len();
    let locator = |kind: &str, place: Vec<(&str, Value)>| {
        let mut pairs = vec![("kind", Value::from(kind))];
        pairs.extend(place);
        pairs.push(("codec", Value::from(codec)));
        pairs.push(("len", Value::from(len)));
        let unsigned = Value::map(pairs.clone());
        pairs.push(("mac", Value::from(trust::mac_hex(&unsigned))));
        Value::map(pairs)
    };
    match opts.transport {
        Transport::File => file::dump(&payload, opts, locator),
        Transport::Fifo => fifo::dump(payload, opts, locator),
        Transport::Socket => socket::dump(payload, opts, locator),
    }
}

fn log_failure(served: &Served) {
    if let Served::Failed(e) = served {
        tracing::warn!("serving an item: {e}");
    }
}

fn path_value(p: &Path) -> Value {
    Value::from(p.display().to_string())
}

/// A buffer size for `len` announced bytes: the locator is input, so a
/// huge `len` must not allocate (or abort) before any byte arrives.
fn capacity(len: u64) -> usize {
    usize::try_from(len.min(64 << 20)).unwrap_or(0)
}

/// Options of [`load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Remove a file item after loading it (default true; fifo and socket
    /// items are gone once read whatever this says).
    pub remove: bool,
    /// Read a file item through a memory map instead of `read`.
    pub mmap: bool,
    /// How long to wait for a socket item's server.
    pub timeout: Duration,
    /// A directory whose items are trusted without a MAC (made by another
    /// program, or by workers on machines that do not share this run's
    /// key); they are read, never removed.
    pub dir: Option<PathBuf>,
    /// The largest item loaded, in bytes (default 4 GiB).
    pub max_size: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            remove: true,
            mmap: false,
            timeout: Duration::from_secs(320),
            dir: None,
            max_size: 4 << 30,
        }
    }
}

fn field<'a>(locator: &'a Value, key: &str) -> Result<&'a Value, ItemsError> {
    locator
        .get(key)
        .ok_or_else(|| ItemsError::Locator(format!("no `{key}` in {locator}")))
}

fn str_field<'a>(locator: &'a Value, key: &str) -> Result<&'a str, ItemsError> {
    field(locator, key)?
        .as_str()
        .ok_or_else(|| ItemsError::Locator(format!("`{key}` is not a string in {locator}")))
}

fn int_field(locator: &Value, key: &str) -> Result<u64, ItemsError> {
    field(locator, key)?
        .as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| ItemsError::Locator(format!("`{key}` is not a count in {locator}")))
}

fn check_len(bytes: &[u8], len: u64, place: &str) -> Result<(), ItemsError> {
    if bytes.len() as u64 == len {
        Ok(())
    } else {
        Err(ItemsError::Payload(format!(
            "{place}: got {} bytes, the item has {len}",
            bytes.len()
        )))
    }
}

/// Loads the value a locator describes.
///
/// # Errors
/// A malformed locator, a missing file or pipe, no server at the socket's
/// address, a truncated or undecodable payload; `mmap` with a fifo or
/// socket item.
pub fn load(locator: &Value, opts: &LoadOptions) -> Result<Value, ItemsError> {
    let kind = str_field(locator, "kind")?;
    let codec = str_field(locator, "codec")?;
    let len = int_field(locator, "len")?;
    if opts.mmap && kind != "file" {
        return Err(ItemsError::Locator(format!(
            "only file items can be memory-mapped, this is a {kind} item"
        )));
    }
    // An item longer than allowed is refused before anything is read.
    if len > opts.max_size {
        let most = opts.max_size;
        let e = format!("the item is {len} bytes, more than max_size = {most}");
        return Err(ItemsError::Payload(e));
    }
    let value = match kind {
        "file" => file::load(locator, opts, codec, len)?,
        "fifo" => {
            let path = str_field(locator, "path")?;
            let ours = trust::trust_path(locator, path, opts)?;
            let bytes = fifo::read(path, len, opts.timeout, ours)?;
            check_len(&bytes, len, path)?;
            decode(codec, &bytes)?
        }
        "socket" => decode(codec, &socket::load(locator, opts, len)?)?,
        other => {
            return Err(ItemsError::Locator(format!(
                "unknown item kind `{other}` (file, fifo or socket)"
            )))
        }
    };
    Ok(value)
}

fn secs(s: Option<f64>, default: Duration) -> Result<Duration, String> {
    match s {
        None => Ok(default),
        Some(s) => Duration::try_from_secs_f64(s).map_err(|e| format!("timeout {s}: {e}")),
    }
}

/// Dumps `inbox[0]` and returns its locator (PaPy's `dump_item`):
/// `kind` = `file` (default), `fifo` or `socket`; `dir`, `prefix`,
/// `suffix` name files and pipes; `timeout` (seconds, default 320) bounds
/// the wait for a fifo or socket reader; `host` is a socket's address.
#[worker(name = "papy.dump_item")]
fn dump_item(
    inbox: &[Value],
    kind: Option<String>,
    dir: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    timeout: Option<f64>,
    host: Option<String>,
) -> Result<Value, String> {
    let v = super::first(inbox)?;
    let defaults = DumpOptions::default();
    let opts = DumpOptions {
        transport: Transport::parse(kind.as_deref().unwrap_or("file"))
            .map_err(|e| e.to_string())?,
        dir: dir.map(PathBuf::from),
        prefix,
        suffix,
        timeout: secs(timeout, defaults.timeout)?,
        host: host.unwrap_or(defaults.host),
    };
    dump(v, &opts)
        .map(|d| d.locator().clone())
        .map_err(|e| e.to_string())
}

/// Loads the item whose locator is `inbox[0]` (PaPy's `load_item`):
/// `remove` (default true) removes a file item once read, `mmap` reads a
/// file item through a memory map, `timeout` (seconds) bounds a socket wait,
/// `dir` trusts file and fifo items inside it that this run did not make
/// (read, never removed), `max_size` (bytes, default 4 GiB) bounds an item.
/// Locators are checked: see docs/security.md.
#[worker(name = "papy.load_item")]
fn load_item(
    inbox: &[Value],
    remove: Option<bool>,
    mmap: Option<bool>,
    timeout: Option<f64>,
    dir: Option<String>,
    max_size: Option<u64>,
) -> Result<Value, String> {
    let locator = super::first(inbox)?;
    let defaults = LoadOptions::default();
    let opts = LoadOptions {
        remove: remove.unwrap_or(true),
        mmap: mmap.unwrap_or(false),
        timeout: secs(timeout, defaults.timeout)?,
        dir: dir.map(PathBuf::from),
        max_size: max_size.unwrap_or(defaults.max_size),
    };
    load(locator, &opts).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
