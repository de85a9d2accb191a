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
    // Fd 1 becomes stderr; the `frames` duplicate no longer depends on it.
    rustix::stdio::dup2_stdout(std::io::stderr()).map_err(|e| ProtocolError::Io(e.into()))?;
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
    use rustix::process::{getpgrp, getpid, getppid, kill_current_process_group, Signal};
    let Some(parent) = getppid().filter(|p| !p.is_init()) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("papy-parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if getppid() != Some(parent) {
                // Our own process group, when we lead it (the pool spawned
                // us with process_group(0)): this worker and what it started.
                if getpgrp() == getpid() {
                    let _ = kill_current_process_group(Signal::KILL);
                }
                // SAFETY: _exit(2) has no preconditions; it ends the process
                // without running exit handlers while other threads still run.
                unsafe { libc::_exit(1) };
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the host process: {e}");
    }
}

#[cfg(not(unix))]
fn watch_parent() {}
