//! `fifo` items (Unix): the payload stays in the dumping process and is
//! written into a named pipe when its reader opens it.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::payload::Payload;
use super::{
    capacity, io_err, log_failure, new_path, path_value, DumpOptions, Dumped, ItemsError, Served,
};
use crate::sync::lock;
use crate::value::Value;

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
    let paths = std::mem::take(&mut *lock(pending_fifos()));
    paths
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

#[cfg(unix)]
pub(super) fn dump(
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
    lock(pending_fifos()).insert(path.clone());
    let server = std::thread::Builder::new()
        .name("papy-item-fifo".into())
        .spawn(move || {
            let served = serve_fifo(&p, payload.bytes(), timeout);
            lock(pending_fifos()).remove(&p);
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
pub(super) fn dump(
    _payload: Payload,
    _opts: &DumpOptions,
    _locator: impl Fn(&str, Vec<(&str, Value)>) -> Value,
) -> Result<Dumped, ItemsError> {
    Err(ItemsError::Locator("fifo items need a Unix system".into()))
}

/// Waits until `fd` is ready for `events` or `deadline` passes.
#[cfg(unix)]
fn wait_fd(
    fd: &impl std::os::fd::AsFd,
    events: rustix::event::PollFlags,
    deadline: Instant,
) -> io::Result<bool> {
    loop {
        let mut fds = [rustix::event::PollFd::new(fd, events)];
        match crate::os::poll_until(&mut fds, Some(deadline), "") {
            Ok(()) if !fds[0].revents().is_empty() => return Ok(true),
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(false),
            Err(e) => return Err(e),
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
                match wait_fd(&pipe, rustix::event::PollFlags::OUT, deadline) {
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
pub(super) fn read(
    path: &str,
    len: u64,
    timeout: Duration,
    ours: bool,
) -> Result<Vec<u8>, ItemsError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let what = || format!("reading the pipe {path}");
    let is_fifo = |m: &std::fs::Metadata| m.file_type().is_fifo();
    let not_fifo =
        || ItemsError::Untrusted(format!("{path} is not a named pipe; a fifo item is one"));
    let meta = std::fs::symlink_metadata(path).map_err(io_err(what()))?;
    if !is_fifo(&meta) {
        return Err(not_fifo());
    }
    // Opening for reading without O_NONBLOCK would wait for a writer forever.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(what()))?;
    if !f.metadata().is_ok_and(|m| is_fifo(&m)) {
        return Err(not_fifo());
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
                if !wait_fd(&*f, rustix::event::PollFlags::IN, deadline).map_err(io_err(what()))? {
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
                if !wait_fd(&*f, rustix::event::PollFlags::IN, deadline).map_err(io_err(what()))? {
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
pub(super) fn read(
    _path: &str,
    _len: u64,
    _timeout: Duration,
    _ours: bool,
) -> Result<Vec<u8>, ItemsError> {
    Err(ItemsError::Locator("fifo items need a Unix system".into()))
}
