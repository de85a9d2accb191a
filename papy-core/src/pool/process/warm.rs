//! Workers started before their pool ([`warm_up`]): `papy run` starts
//! each worker command first, so that one that cannot start refuses the
//! run with one line; the workers that greeted are not thrown away but
//! become the first workers of the pool started with the same command.

use std::io::Read;
use std::process::{ChildStderr, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::child::{timed_out, Answer, Conn};
use super::command::WorkerCommand;
use super::link::Link;
use crate::sync::lock;

/// Workers that greeted, with the command that started them and their
/// first frame, until a pool takes them.
static KEPT: Mutex<Vec<(WorkerCommand, Conn, Answer)>> = Mutex::new(Vec::new());

/// Starts `n` workers with `cmd` at the same time and waits (at most
/// `wait`) for their greetings. Workers that greeted are kept for the next
/// pool started with the same command (program, arguments, environment and
/// folder), which takes them as its first workers instead of starting its
/// own ([`ProcessPool::remote`](super::ProcessPool::remote)); their stderr
/// is passed on to this process's. A worker that has not greeted within
/// `wait` is stopped and left to the pool (an `ssh` may be slow).
///
/// # Errors
/// A worker cannot start: the last line it wrote on stderr and how it
/// ended (every worker started here is then stopped).
pub fn warm_up(cmd: &WorkerCommand, n: usize, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let mut started: Vec<(Conn, _)> = Vec::with_capacity(n);
    for _ in 0..n {
        // A worker that cannot start stops those started before it.
        let mut conn = Conn::start(cmd, Stdio::piped())
            .inspect_err(|_| started.iter_mut().for_each(|(c, _)| drop(c.kill())))?;
        let stderr = conn.child.stderr.take();
        started.push((conn, stderr));
    }
    let mut greeted = Vec::with_capacity(n);
    let mut failed = None;
    for (mut conn, stderr) in started {
        // Greetings are read one worker at a time: a later one may have
        // greeted in time and wait, mid-write, for its turn to be read.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match conn.next_frame(Some(left)) {
            first @ Ok(_) if failed.is_none() => greeted.push((conn, stderr, first)),
            Err(e) if timed_out(&e) => drop(conn.kill()),
            _ if failed.is_some() => drop(conn.kill()),
            _ => {
                let how = conn.kill();
                failed = Some(format!("{} ({how})", last_line(stderr)));
            }
        }
    }
    if let Some(why) = failed {
        for (mut c, _, _) in greeted {
            c.kill();
        }
        return Err(why);
    }
    let mut kept = lock(&KEPT);
    for (conn, stderr, first) in greeted {
        if let Some(mut stderr) = stderr {
            let _ = std::thread::Builder::new()
                .name("papy-worker-stderr".into())
                .spawn(move || std::io::copy(&mut stderr, &mut std::io::stderr()));
        }
        kept.push((cmd.clone(), conn, first));
    }
    Ok(())
}

/// A worker kept by [`warm_up`] for `cmd`, with its first frame.
pub(super) fn take(cmd: &WorkerCommand) -> Option<(Conn, Answer)> {
    let mut kept = lock(&KEPT);
    let at = kept.iter().position(|(c, _, _)| c.starts_like(cmd))?;
    let (_, conn, first) = kept.remove(at);
    Some((conn, first))
}

/// Stops the workers kept by [`warm_up`] that no pool took (their
/// commands belong to pools that start workers their own way).
pub fn release_warm() {
    let left = std::mem::take(&mut *lock(&KEPT));
    for (_, mut conn, _) in left {
        conn.kill();
    }
}

/// The last line a failed worker wrote on stderr (bounded, and waited for
/// at most a second: a grandchild may keep the pipe open).
fn last_line(stderr: Option<ChildStderr>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut stderr) = stderr {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = (&mut stderr).take(64 << 10).read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    let text = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("it ended without a greeting")
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}
