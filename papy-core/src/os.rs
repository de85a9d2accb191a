//! Child processes at the OS level, for every part of papy that starts
//! them (process pools, `papy.script`, the broker's local workers): has a
//! child exited (without reaping it), kill the process group it leads, and
//! how it ended.

use std::process::{Child, ExitStatus};

/// Whether `child` has exited. On Linux it is left unreaped (a zombie), so
/// its pid, which is also its process group's id, stays reserved and the
/// group can still be signalled safely; elsewhere it is reaped.
pub fn exited_unreaped(child: &mut Child) -> bool {
    #[cfg(target_os = "linux")]
    {
        let pid: libc::id_t = child.id();
        // SAFETY: an all-zero siginfo_t is a valid value of this plain C
        // struct (WNOHANG leaves it zero when nothing changed).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) on our own child's pid with a valid pointer to
        // the siginfo_t above; WNOWAIT leaves the child waitable, so the
        // std `Child` still reaps it later.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: waitid filled `info` (or left it zeroed); si_pid reads
            // the pid field of the SIGCHLD layout it uses.
            return unsafe { info.si_pid() } != 0;
        }
        // ECHILD: already reaped (by std); fall through to ask std.
    }
    !matches!(child.try_wait(), Ok(None))
}

/// Kills the process group led by `pid` (the child and what it started;
/// the child must have been spawned with `process_group(0)`).
pub fn kill_group(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) with a negative pid signals the process group the
            // child leads (it was spawned with process_group(0)); no memory is touched.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// How a child ended: `signal 9`, `exit status 3`.
pub fn describe_status(s: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exit status {c}"),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
