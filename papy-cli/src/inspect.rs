//! Plugin files are opened in a child process before this one opens them.
//!
//! Opening a library runs its initialisers and its manifest function; a
//! plugin that panics or aborts there would kill `papy list`, `papy check`
//! or `papy run` with no word about which file did it. So these commands
//! install an inspector ([`papy_plugins::set_inspector`]) that first runs
//! `papy __inspect-plugin FILE`: if that child crashes or hangs, the file is
//! refused with what it printed; if it loads or is refused cleanly, this
//! process opens it (and reports the loader's own error, if any).

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a plugin may take to open in the child.
const LIMIT: Duration = Duration::from_secs(30);

/// The child's exit code when the loader refused the file cleanly.
const REFUSED: i32 = 3;

/// Most bytes of the child's standard error quoted (the rest is read and
/// dropped, so a talkative plugin never blocks on a full pipe).
const QUOTE: usize = 4096;

/// What the child prints on stdout once the plugin is open: a plugin that
/// ends the process itself (`exit(0)` in an initialiser) never prints it.
const OPENED: &str = "papy: plugin opened";

/// Makes every plugin this process opens go through a child process first.
pub(crate) fn install() {
    papy_plugins::set_inspector(Some(Arc::new(inspect)));
}

/// The child's side: opens `path` and reports how it went by exit code
/// (0 loaded, [`REFUSED`] refused by the loader with the reason on stderr).
pub(crate) fn serve(path: &Path) -> std::process::ExitCode {
    match papy_plugins::load(path) {
        Ok(_) => {
            // On a line of its own, whatever the plugin printed before.
            println!("\n{OPENED}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(REFUSED as u8)
        }
    }
}

fn inspect(path: &Path) -> Result<(), String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot be inspected: this program's path is unknown: {e}"))?;
    let mut child = Command::new(exe)
        .arg("__inspect-plugin")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot be inspected: starting a child process failed: {e}"))?;
    // Both pipes are read to their end (a plugin may print a lot), keeping
    // the first bytes of stderr and whether stdout holds the marker line.
    let (said_tx, said) = std::sync::mpsc::channel();
    let (marker_tx, marker) = std::sync::mpsc::channel();
    if let Some(s) = child.stderr.take() {
        std::thread::spawn(move || {
            let kept = drain(s, |kept, chunk| {
                let room = QUOTE.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            });
            let _ = said_tx.send(String::from_utf8_lossy(&kept).into_owned());
        });
    }
    if let Some(s) = child.stdout.take() {
        std::thread::spawn(move || {
            let line = format!("\n{OPENED}\n");
            let mut found = false;
            // The last bytes of the previous chunk, so a marker split
            // across two reads is still seen.
            let _ = drain(s, |tail, chunk| {
                tail.extend_from_slice(chunk);
                found |= tail.windows(line.len()).any(|w| w == line.as_bytes());
                let keep = tail.len().saturating_sub(line.len());
                tail.drain(..keep);
            });
            let _ = marker_tx.send(found);
        });
    }
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish opening within {} s in a child process (its initialisation hangs)",
                    LIMIT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot be inspected: {e}")),
        }
    };
    // A process the plugin started may hold the pipes open: the readers
    // are not waited for long.
    let grace = Duration::from_secs(2);
    let said = said.recv_timeout(grace).unwrap_or_default();
    let opened = marker.recv_timeout(grace).unwrap_or(false);
    verdict(status, opened, &said)
}

/// Reads `r` to its end, handing each chunk to `keep` with the bytes kept
/// so far.
fn drain(mut r: impl Read, mut keep: impl FnMut(&mut Vec<u8>, &[u8])) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return kept,
            Ok(n) => keep(&mut kept, &buf[..n]),
        }
    }
}

fn verdict(status: ExitStatus, opened: bool, said: &str) -> Result<(), String> {
    if (status.success() && opened) || status.code() == Some(REFUSED) {
        return Ok(());
    }
    if status.success() {
        return Err(
            "ended the process while being opened (exit status 0 before the plugin was loaded)"
                .into(),
        );
    }
    let lines: Vec<&str> = said.lines().map(str::trim).collect();
    // A Rust panic prints "thread '..' panicked at FILE:LINE:COL:" and then
    // its message; anything else is quoted by its last line.
    let quoted = match lines.iter().position(|l| l.contains(" panicked at ")) {
        Some(i) => format!(
            "{} {}",
            lines[i],
            lines.get(i + 1).copied().unwrap_or_default()
        ),
        None => lines
            .iter()
            .rev()
            .find(|l| !l.is_empty())
            .copied()
            .unwrap_or_default()
            .to_string(),
    };
    let last = if quoted.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", papy_core::error::quote_peer(quoted.trim()))
    };
    Err(format!(
        "crashed while being opened ({}){last}",
        describe(status)
    ))
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                libc::SIGABRT => {
                    "SIGABRT, an abort: a panic in its initialisation or manifest function"
                }
                libc::SIGSEGV => "SIGSEGV, a segmentation fault",
                libc::SIGBUS => "SIGBUS, a bus error",
                libc::SIGILL => "SIGILL, an illegal instruction",
                libc::SIGFPE => "SIGFPE, an arithmetic fault",
                libc::SIGKILL => "SIGKILL",
                _ => return format!("signal {sig}"),
            };
            return name.to_string();
        }
    }
    match status.code() {
        Some(c) => format!("exit status {c}"),
        None => status.to_string(),
    }
}
