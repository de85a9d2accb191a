//! Child processes and pipes at the OS level, for every part of papy that
//! starts them (process pools, `papy.script`, the broker's local workers,
//! fifo items): has a child exited (without reaping it), kill the process
//! group it leads, how it ended, and a bounded wait on descriptors.

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

/// Waits in `poll(2)` for any of `fds` until `deadline` (`None`: no limit).
/// Ready, hung up, or interrupted by a signal all return `Ok` (the caller
/// tries again and learns which); a deadline already passed is a
/// `TimedOut` error saying `late`.
#[cfg(unix)]
pub(crate) fn poll_until(
    fds: &mut [rustix::event::PollFd<'_>],
    deadline: Option<std::time::Instant>,
    late: &str,
) -> std::io::Result<()> {
    let mut wait = None;
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, late));
        }
        // At most an hour a wait (the caller waits again), so it converts.
        let hour = std::time::Duration::from_secs(3600);
        wait = rustix::event::Timespec::try_from(left.min(hour)).ok();
    }
    match rustix::event::poll(fds, wait.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
