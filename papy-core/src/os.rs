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
        use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
        // WNOWAIT leaves the child waitable, so the std `Child` still reaps
        // it later. ECHILD (already reaped by std) falls through to std.
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        if let Ok(status) = waitid(WaitId::Pid(Pid::from_child(child)), options) {
            return status.is_some();
        }
    }
    !matches!(child.try_wait(), Ok(None))
}

/// Kills the process group led by `pid` (the child and what it started;
/// the child must have been spawned with `process_group(0)`).
pub fn kill_group(pid: u32) {
    #[cfg(unix)]
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
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
