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

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use papy_macros::worker_in_core as worker;

use crate::value::Value;

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

fn encode(v: &Value) -> Result<(&'static str, Payload), ItemsError> {
    Ok(match v {
        Value::Bytes(b) => ("bytes", Payload::Shared(b.clone())),
        Value::Str(s) => ("str", Payload::Str(s.clone())),
        other => (
            "msgpack",
            Payload::Owned(
                rmp_serde::to_vec(other).map_err(|e| ItemsError::Payload(e.to_string()))?,
            ),
        ),
    })
}

/// The bytes of a payload, shared with the value when it is bytes or a string.
enum Payload {
    Shared(Arc<[u8]>),
    Str(Arc<str>),
    Owned(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Shared(b) => b,
            Payload::Str(s) => s.as_bytes(),
            Payload::Owned(v) => v,
        }
    }
}

fn decode(codec: &str, bytes: &[u8]) -> Result<Value, ItemsError> {
    match codec {
        "bytes" => Ok(Value::from(bytes)),
        "str" => std::str::from_utf8(bytes)
            .map(Value::from)
            .map_err(|e| ItemsError::Payload(e.to_string())),
        "msgpack" => rmp_serde::from_slice(bytes).map_err(|e| ItemsError::Payload(e.to_string())),
        other => Err(ItemsError::Locator(format!("unknown codec `{other}`"))),
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
        pairs.push(("mac", Value::from(mac_hex(&unsigned))));
        Value::map(pairs)
    };
    match opts.transport {
        Transport::File => {
            let mut f = new_path(opts, "file")?;
            f.write_all(payload.bytes())
                .and_then(|()| f.flush())
                .map_err(io_err(format!("writing {}", f.path().display())))?;
            let (_, path) = f
                .keep()
                .map_err(|e| io_err("keeping the item file")(e.error))?;
            Ok(Dumped {
                locator: locator("file", vec![("path", path_value(&path))]),
                server: None,
            })
        }
        Transport::Fifo => dump_fifo(payload, opts, locator),
        Transport::Socket => {
            crate::permissions::check_network("a socket item")?;
            let listener = TcpListener::bind((opts.host.as_str(), 0))
                .map_err(io_err(format!("listening on {}", opts.host)))?;
            let addr = listener
                .local_addr()
                .map_err(io_err("reading the socket address"))?;
            listener
                .set_nonblocking(true)
                .map_err(io_err("configuring the socket"))?;
            // The reader proves it holds this locator: a late reader of an
            // earlier item whose port was reused never gets this payload.
            let token = new_token();
            let timeout = opts.timeout;
            let server = std::thread::Builder::new()
                .name("papy-item-socket".into())
                .spawn(move || {
                    let served = serve_socket(&listener, payload.bytes(), token, timeout);
                    log_failure(&served);
                    served
                })
                .map_err(io_err("starting the socket thread"))?;
            // The address actually bound (`localhost` may be 127.0.0.1 or ::1).
            let host = if addr.ip().is_unspecified() {
                opts.host.clone()
            } else {
                addr.ip().to_string()
            };
            Ok(Dumped {
                locator: locator(
                    "socket",
                    vec![
                        ("host", Value::from(host)),
                        ("port", Value::from(u64::from(addr.port()))),
                        ("token", Value::Int(token as i64)),
                    ],
                ),
                server: Some(server),
            })
        }
    }
}

/// The locator fields a MAC covers, in a fixed order.
const SIGNED: [&str; 7] = ["kind", "path", "host", "port", "codec", "len", "token"];

/// The bytes a locator's MAC is computed over: each signed field present,
/// as `name=value` and a NUL.
fn signed_bytes(locator: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for key in SIGNED {
        if let Some(v) = locator.get(key) {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            match v.as_str() {
                Some(s) => out.extend_from_slice(s.as_bytes()),
                None => out.extend_from_slice(v.to_string().as_bytes()),
            }
            out.push(0);
        }
    }
    out
}

type Mac = hmac::Hmac<sha2::Sha256>;

fn mac_of(locator: &Value) -> Mac {
    use hmac::Mac as _;
    let mut m = <Mac as hmac::Mac>::new_from_slice(crate::run_key::run_key())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(&signed_bytes(locator));
    m
}

fn mac_hex(locator: &Value) -> String {
    use hmac::Mac as _;
    mac_of(locator)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `true` when `locator` carries the right MAC under this run's key
/// (compared in constant time).
pub fn is_authentic(locator: &Value) -> bool {
    use hmac::Mac as _;
    let Some(hex) = locator.get("mac").and_then(Value::as_str) else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let mut tag = [0u8; 32];
    for (i, b) in tag.iter_mut().enumerate() {
        match u8::from_str_radix(&hex[2 * i..2 * i + 2], 16) {
            Ok(x) => *b = x,
            Err(_) => return false,
        }
    }
    mac_of(locator).verify_slice(&tag).is_ok()
}

/// Whether `locator` is this run's (its MAC is right) and names a file
/// or pipe inside one of the run's item folders ([`run_key::item_dirs`](crate::run_key::item_dirs)):
/// what may be read without a declared `dir`, removed, or mapped. Every
/// worker holds the run key, so a MAC alone proves only that some process
/// of the run signed it; the folder bounds what it can name to what the
/// run made.
fn is_ours(locator: &Value) -> bool {
    if !is_authentic(locator) {
        return false;
    }
    match locator.get("path").and_then(Value::as_str) {
        Some(path) => crate::run_key::item_dirs()
            .iter()
            .any(|d| inside(Path::new(path), Some(d))),
        // A socket item names no file.
        None => true,
    }
}

/// Whether `path` (which must exist) lies inside `dir`, both resolved.
fn inside(path: &Path, dir: Option<&Path>) -> bool {
    let Some(dir) = dir else { return false };
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => false,
    }
}

/// Refuses a `file` or `fifo` locator that is neither authentic nor
/// inside the item directory; `Ok(true)` when it is authentic (so its file
/// may be removed).
fn trust_path(locator: &Value, path: &str, opts: &LoadOptions) -> Result<bool, ItemsError> {
    if is_ours(locator) {
        return Ok(true);
    }
    if let Some(dir) = &opts.dir {
        // A `dir` the task chose cannot open the files this process may not.
        crate::permissions::check_file(dir)?;
    }
    if inside(Path::new(path), opts.dir.as_deref()) {
        return Ok(false);
    }
    Err(ItemsError::Untrusted(format!(
        "`{}` was not dumped into this run's item folder (no valid `mac`, or a path outside it) and is not inside {}; nothing was read or removed",
        crate::error::quote_peer(path),
        match &opts.dir {
            Some(d) => format!("the item directory {}", d.display()),
            None => "a declared item directory (`dir`)".to_string(),
        }
    )))
}

/// Refuses an item longer than allowed before anything is read.
fn check_size(len: u64, opts: &LoadOptions) -> Result<(), ItemsError> {
    if len > opts.max_size {
        return Err(ItemsError::Payload(format!(
            "the item is {len} bytes, more than max_size = {}",
            opts.max_size
        )));
    }
    Ok(())
}

/// Opens a file item: a regular file (not a device, a pipe or a
/// directory), checked on the open file itself.
fn open_regular(path: &str) -> Result<std::fs::File, ItemsError> {
    // Non-blocking and without following a last symlink: opening a named
    // pipe or a device must not wait or act before the check below (a
    // regular file reads the same with O_NONBLOCK).
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NONBLOCK | libc::O_NOFOLLOW);
    let f = o.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return ItemsError::Untrusted(format!(
                "{path} is a symbolic link; a file item is a regular file"
            ));
        }
        io_err(format!("opening {path}"))(e)
    })?;
    let meta = f.metadata().map_err(io_err(format!("reading {path}")))?;
    if !meta.is_file() {
        return Err(ItemsError::Untrusted(format!(
            "{path} is not a regular file; a file item is one"
        )));
    }
    Ok(f)
}

/// Reads at most `len` bytes (one more tells a longer source).
fn read_bounded(r: impl Read, len: u64, what: &str) -> Result<Vec<u8>, ItemsError> {
    let mut bytes = Vec::with_capacity(capacity(len));
    r.take(len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err(format!("reading {what}")))?;
    Ok(bytes)
}

/// A random number (std's per-process random hash keys, mixed with the time).
/// A socket item's token: 64 bits from the operating system's random source
/// (a reader that guesses it could take the payload).
fn new_token() -> u64 {
    u64::from_le_bytes(crate::run_key::random())
}

fn log_failure(served: &Served) {
    if let Served::Failed(e) = served {
        tracing::warn!("serving an item: {e}");
    }
}

fn path_value(p: &Path) -> Value {
    Value::from(p.display().to_string())
}

/// Named pipes this process made whose reader has not come yet.
fn pending_fifos() -> &'static std::sync::Mutex<std::collections::BTreeSet<PathBuf>> {
    static PENDING: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<PathBuf>>> =
        std::sync::OnceLock::new();
    PENDING.get_or_init(Default::default)
}

// A worker's session ending ends the pipes' serving threads too.
inventory::submit! {
    crate::hooks::Hook {
        when: crate::hooks::When::SessionEnd,
        run: || {
            remove_pending_fifos();
        },
    }
}

/// Removes the named pipes of fifo items this process dumped and no reader
/// took: called when the process is about to end (a worker whose host is
/// done, `papy run` at its end), since their serving threads end with it.
/// Returns how many were removed.
pub fn remove_pending_fifos() -> usize {
    let paths = std::mem::take(
        &mut *pending_fifos()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    paths
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

fn forget_fifo(path: &Path) {
    pending_fifos()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(path);
}

/// How long a connection to an item socket has to present its token.
const TOKEN_WAIT: Duration = Duration::from_secs(2);

/// Most connections waiting to present a token at once (the oldest is
/// dropped to make room).
const MAX_PENDING: usize = 64;

/// A connection that has not yet presented a whole token.
struct Pending {
    stream: TcpStream,
    got: Vec<u8>,
    until: Instant,
}

/// Serves the payload to the first connection that presents `token`.
/// Connections are read without blocking, each with [`TOKEN_WAIT`] to send
/// its 8 bytes: an idle or wrong one is dropped and never delays the real
/// reader.
fn serve_socket(listener: &TcpListener, bytes: &[u8], token: u64, timeout: Duration) -> Served {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let mut busy = false;
        match listener.accept() {
            Ok((s, _)) => {
                busy = true;
                if s.set_nonblocking(true).is_ok() {
                    if pending.len() >= MAX_PENDING {
                        pending.remove(0);
                    }
                    pending.push(Pending {
                        stream: s,
                        got: Vec::with_capacity(8),
                        until: Instant::now() + TOKEN_WAIT,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => busy = true,
            Err(e) => return Served::Failed(format!("accepting the reader: {e}")),
        }
        let now = Instant::now();
        let mut found = None;
        pending.retain_mut(|p| {
            if found.is_some() {
                return true;
            }
            let mut buf = [0u8; 8];
            let want = 8 - p.got.len();
            match p.stream.read(&mut buf[..want]) {
                Ok(0) => return false,
                Ok(n) => {
                    busy = true;
                    p.got.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            if p.got.len() == 8 {
                if p.got[..] == token.to_le_bytes() {
                    found = p.stream.try_clone().ok();
                }
                // Wrong or right, this connection is done waiting.
                return false;
            }
            now < p.until
        });
        if let Some(mut s) = found {
            let sent = s
                .set_nonblocking(false)
                .and_then(|()| s.set_write_timeout(Some(timeout.max(Duration::from_secs(1)))))
                .and_then(|()| s.write_all(bytes))
                .and_then(|()| s.shutdown(std::net::Shutdown::Write));
            return match sent {
                Ok(()) => Served::Done,
                Err(e) => Served::Failed(format!("sending the item: {e}")),
            };
        }
        if Instant::now() >= deadline {
            tracing::warn!("no reader came for a socket item within {timeout:?}");
            return Served::TimedOut;
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[cfg(unix)]
fn dump_fifo(
    payload: Payload,
    opts: &DumpOptions,
    locator: impl Fn(&str, Vec<(&str, Value)>) -> Value,
) -> Result<Dumped, ItemsError> {
    use std::os::unix::ffi::OsStrExt;
    // A unique name: make a temporary file, then replace it with the pipe.
    let path = new_path(opts, "fifo")?.into_temp_path();
    let path: PathBuf = path
        .keep()
        .map_err(|e| io_err("keeping the pipe name")(e.error))?;
    std::fs::remove_file(&path).map_err(io_err(format!("replacing {}", path.display())))?;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| ItemsError::Locator("pipe path contains a NUL byte".into()))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call;
    // mkfifo only reads it.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io_err(format!("making the pipe {}", path.display()))(
            io::Error::last_os_error(),
        ));
    }
    let timeout = opts.timeout;
    let p = path.clone();
    pending_fifos()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(path.clone());
    let server = std::thread::Builder::new()
        .name("papy-item-fifo".into())
        .spawn(move || {
            let served = serve_fifo(&p, payload.bytes(), timeout);
            forget_fifo(&p);
            log_failure(&served);
            served
        })
        .map_err(io_err("starting the pipe thread"))?;
    Ok(Dumped {
        locator: locator("fifo", vec![("path", path_value(&path))]),
        server: Some(server),
    })
}

#[cfg(not(unix))]
fn dump_fifo(
    _payload: Payload,
    _opts: &DumpOptions,
    _locator: impl Fn(&str, Vec<(&str, Value)>) -> Value,
) -> Result<Dumped, ItemsError> {
    Err(ItemsError::Locator("fifo items need a Unix system".into()))
}

/// Waits until `fd` is ready for `events` or `deadline` passes.
#[cfg(unix)]
fn wait_fd(
    fd: &(impl std::os::fd::AsRawFd + ?Sized),
    events: i16,
    deadline: Instant,
) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd on the stack for the duration of
        // the call, and the descriptor belongs to a file this thread holds open.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(unix)]
fn serve_fifo(path: &Path, bytes: &[u8], timeout: Duration) -> Served {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + timeout;
    let gone = |what: String| {
        let _ = std::fs::remove_file(path);
        what
    };
    let mut pipe = loop {
        // A non-blocking open for writing fails (ENXIO) until a reader has
        // the pipe open.
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if Instant::now() >= deadline {
                    let _ = std::fs::remove_file(path);
                    tracing::warn!(
                        "no reader came for the pipe item {} within {timeout:?}; removed it",
                        path.display()
                    );
                    return Served::TimedOut;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Served::Failed(gone(format!("opening {}: {e}", path.display()))),
        }
    };
    // Both ends are open: the name is no longer needed (a second reader
    // gets "not found" instead of waiting forever).
    let _ = std::fs::remove_file(path);
    let mut rest = bytes;
    while !rest.is_empty() {
        match pipe.write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match wait_fd(&pipe, libc::POLLOUT, deadline) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Served::Failed(format!(
                            "the reader of {} stopped reading for {timeout:?}",
                            path.display()
                        ))
                    }
                    Err(e) => return Served::Failed(format!("waiting on {}: {e}", path.display())),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Served::Failed(format!("writing {}: {e}", path.display())),
        }
    }
    Served::Done
}

/// Reads a pipe item, waiting at most `timeout` for its writer and for
/// each piece of data; the path must name a named pipe, and is removed
/// afterwards only when the locator is this run's (`ours`).
#[cfg(unix)]
fn read_fifo(path: &str, len: u64, timeout: Duration, ours: bool) -> Result<Vec<u8>, ItemsError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let what = || format!("reading the pipe {path}");
    let is_fifo = |m: &std::fs::Metadata| m.file_type().is_fifo();
    let meta = std::fs::symlink_metadata(path).map_err(io_err(what()))?;
    if !is_fifo(&meta) {
        return Err(ItemsError::Untrusted(format!(
            "{path} is not a named pipe; a fifo item is one"
        )));
    }
    // Opening for reading without O_NONBLOCK would wait for a writer forever.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(what()))?;
    if !f.metadata().is_ok_and(|m| is_fifo(&m)) {
        return Err(ItemsError::Untrusted(format!(
            "{path} is not a named pipe; a fifo item is one"
        )));
    }
    let read = read_pipe(&mut f, len, timeout, &what);
    // The writer removes the name once both ends are open; this covers a
    // writer that never came.
    if ours {
        let _ = std::fs::remove_file(path);
    }
    read
}

#[cfg(unix)]
fn read_pipe(
    f: &mut std::fs::File,
    len: u64,
    timeout: Duration,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>, ItemsError> {
    let mut bytes = Vec::with_capacity(capacity(len));
    let mut chunk = vec![0u8; 1 << 16];
    let mut deadline = Instant::now() + timeout;
    let mut started = false;
    loop {
        match f.read(&mut chunk) {
            // With O_NONBLOCK, 0 before any writer came is not the end.
            Ok(0) if started || bytes.len() as u64 >= len => break,
            Ok(0) => {
                if !wait_fd(f, libc::POLLIN, deadline).map_err(io_err(what()))? {
                    return Err(io_err(what())(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no writer within {timeout:?} (did the dumping process end?)"),
                    )));
                }
                // POLLHUP without data: the writer came and went.
                started = true;
            }
            Ok(n) => {
                started = true;
                bytes.extend_from_slice(&chunk[..n]);
                if bytes.len() as u64 > len {
                    // More than the locator says: stop reading (the caller
                    // reports the length), whatever the writer has left.
                    break;
                }
                deadline = Instant::now() + timeout;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                started = true;
                if !wait_fd(f, libc::POLLIN, deadline).map_err(io_err(what()))? {
                    return Err(io_err(what())(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the writer sent nothing for {timeout:?}"),
                    )));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(what())(e)),
        }
    }
    Ok(bytes)
}

#[cfg(not(unix))]
fn read_fifo(
    _path: &str,
    _len: u64,
    _timeout: Duration,
    _ours: bool,
) -> Result<Vec<u8>, ItemsError> {
    Err(ItemsError::Locator("fifo items need a Unix system".into()))
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

/// Maps a file item into memory, read-only, without copying it: the
/// zero-copy way for a function to read a large payload (the file stays in
/// place; remove it with [`remove`] when done).
///
/// # Errors
/// The locator is not a file item, or the file cannot be mapped.
pub fn map(locator: &Value) -> Result<memmap2::Mmap, ItemsError> {
    let kind = str_field(locator, "kind")?;
    if kind != "file" {
        return Err(ItemsError::Locator(format!(
            "only file items can be memory-mapped, this is a {kind} item"
        )));
    }
    let path = str_field(locator, "path")?;
    // Only files this run made: a map of a file another program can
    // truncate faults (SIGBUS) when read past the new end.
    if !is_ours(locator) {
        return Err(ItemsError::Untrusted(format!(
            "`{}` was not dumped by this run; only such files are memory-mapped",
            crate::error::quote_peer(path)
        )));
    }
    let f = open_regular(path)?;
    // SAFETY: the map is read-only and this run made the file for this
    // item alone (its locator's MAC says so: mode 0600, unique name); if
    // another program truncates it anyway, reading the map may fault, as
    // docs/security.md says.
    let m = unsafe { memmap2::Mmap::map(&f) }.map_err(io_err(format!("mapping {path}")))?;
    check_len(&m, int_field(locator, "len")?, path)?;
    Ok(m)
}

/// Removes a file item's file (what [`load`] does unless told otherwise).
///
/// # Errors
/// The locator is not an authentic file item (this run's MAC), or the file
/// cannot be removed.
pub fn remove(locator: &Value) -> Result<(), ItemsError> {
    let path = str_field(locator, "path")?;
    if !is_ours(locator) {
        return Err(ItemsError::Untrusted(format!(
            "`{}` was not dumped into this run's item folder; it is not removed",
            crate::error::quote_peer(path)
        )));
    }
    std::fs::remove_file(path).map_err(io_err(format!("removing {path}")))
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
    check_size(len, opts)?;
    let value = match kind {
        "file" => {
            let path = str_field(locator, "path")?;
            let ours = trust_path(locator, path, opts)?;
            let v = if opts.mmap {
                map(locator).and_then(|m| decode(codec, &m))
            } else {
                open_regular(path)
                    .and_then(|f| read_bounded(f, len, path))
                    .and_then(|bytes| {
                        check_len(&bytes, len, path)?;
                        decode(codec, &bytes)
                    })
            };
            // Removed whether or not it could be read, when this run made
            // it: a broken item file is not left behind either.
            if ours && opts.remove && Path::new(path).exists() {
                remove(locator)?;
            }
            v?
        }
        "fifo" => {
            let path = str_field(locator, "path")?;
            let ours = trust_path(locator, path, opts)?;
            let bytes = read_fifo(path, len, opts.timeout, ours)?;
            check_len(&bytes, len, path)?;
            decode(codec, &bytes)?
        }
        "socket" => {
            let host = str_field(locator, "host")?;
            // Connecting is the locator's whole effect: only this run's.
            if !is_authentic(locator) {
                return Err(ItemsError::Untrusted(format!(
                    "the socket item at {} was not dumped by this run; not connected to",
                    crate::error::quote_peer(host)
                )));
            }
            let port = u16::try_from(int_field(locator, "port")?)
                .map_err(|_| ItemsError::Locator(format!("bad port in {locator}")))?;
            let place = format!("{host}:{port}");
            let addr = (host, port)
                .to_socket_addrs()
                .map_err(io_err(format!("resolving {place}")))?
                .next()
                .ok_or_else(|| ItemsError::Locator(format!("{place} has no address")))?;
            let mut s = TcpStream::connect_timeout(&addr, opts.timeout)
                .map_err(io_err(format!("connecting to the item at {place}")))?;
            let token = field(locator, "token")?.as_int().ok_or_else(|| {
                ItemsError::Locator(format!("`token` is not a number in {locator}"))
            })?;
            s.set_read_timeout(Some(opts.timeout))
                .and_then(|()| s.write_all(&(token as u64).to_le_bytes()))
                .map_err(io_err(format!("asking {place} for the item")))?;
            let bytes = read_bounded(&mut s, len, &format!("the item at {place}"))?;
            check_len(&bytes, len, &place)?;
            decode(codec, &bytes)?
        }
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
