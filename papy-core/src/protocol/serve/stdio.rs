//! Serving on this process's stdin/stdout, with the protocol's channel
//! kept from what functions print, and the worker ending with its host.

use std::io::Write;

use super::serve;
use crate::protocol::ProtocolError;

/// Serves on this process's stdin/stdout. Frames go to the original stdout;
/// file descriptor 1 is pointed at stderr first (on Unix), so a worker
/// function that prints cannot corrupt the protocol stream.
///
/// # Errors
/// As [`serve`], or the descriptors cannot be set up.
pub fn serve_stdio(plugins: Vec<(String, String)>) -> Result<(), ProtocolError> {
    watch_parent();
    let out = protocol_stdout()?;
    let stdin = std::io::stdin();
    serve(stdin.lock(), out, plugins)
}

#[cfg(unix)]
fn protocol_stdout() -> Result<std::fs::File, ProtocolError> {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let _flushed = stdout.lock().flush();
    let frames = stdout.as_fd().try_clone_to_owned()?;
    // SAFETY: dup2 on two descriptors this process owns (2 = stderr, 1 = stdout);
    // it only re-points fd 1, which the `frames` duplicate no longer depends on.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(ProtocolError::Io(std::io::Error::last_os_error()));
    }
    Ok(std::fs::File::from(frames))
}

#[cfg(not(unix))]
fn protocol_stdout() -> Result<std::io::Stdout, ProtocolError> {
    Ok(std::io::stdout())
}

/// A worker on stdio belongs to its host: when the host dies (even by
/// SIGKILL, which no handler sees), the worker is reparented and ends at
/// once, with the commands it started when it leads its process group (as
/// pool workers do), instead of finishing its batch for nobody. Checked
/// every 100 ms from a thread, so it works while a batch runs.
#[cfg(unix)]
fn watch_parent() {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    if parent <= 1 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("papy-parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: as above.
            if unsafe { libc::getppid() } != parent {
                // SAFETY: getpgrp and getpid have no preconditions; kill(0, ..)
                // signals our own process group, which we lead (the pool
                // spawned us with process_group(0)), so only this worker and
                // what it started are ended. Otherwise only this process ends.
                // _exit ends the process without running exit handlers
                // while the other threads still run.
                unsafe {
                    if libc::getpgrp() == libc::getpid() {
                        libc::kill(0, libc::SIGKILL);
                    }
                    libc::_exit(1);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the host process: {e}");
    }
}

#[cfg(not(unix))]
fn watch_parent() {}
