//! The host's end of a worker's stdin: writes that can give up at a
//! deadline.
//!
//! A worker that stops reading (stopped, wedged, or hostile) fills its
//! stdin pipe, and a plain blocking write would then hold its proxy thread
//! forever, out of reach of the item's timeout. On Unix the pipe is put in
//! non-blocking mode and a write that would block waits in `poll(2)` until
//! the pipe drains or the deadline passes, which ends the write with
//! [`io::ErrorKind::TimedOut`]. Elsewhere writes block and the deadline is
//! not enforced.

use std::io::{self, Write};
use std::process::ChildStdin;
use std::time::Instant;

/// A worker's stdin with an optional deadline on every write.
pub(super) struct Pipe {
    inner: ChildStdin,
    deadline: Option<Instant>,
}

impl Pipe {
    /// Wraps `stdin`, switching it to non-blocking mode where waits can be
    /// bounded.
    pub(super) fn new(stdin: ChildStdin) -> io::Result<Pipe> {
        #[cfg(unix)]
        set_nonblocking(&stdin)?;
        Ok(Pipe {
            inner: stdin,
            deadline: None,
        })
    }

    /// Writes from now on fail with `TimedOut` once `deadline` has passed
    /// with the pipe still full; `None` waits as long as it takes.
    pub(super) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Waits until the pipe can take bytes, the deadline passes (an error),
    /// or a signal interrupts the wait (the caller tries again).
    #[cfg(unix)]
    fn wait_writable(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let timeout_ms = match self.deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the worker did not read its input in time",
                    ));
                }
                // Rounded up: a wait never ends before the deadline.
                i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX)
            }
        };
        let mut fd = libc::pollfd {
            fd: self.inner.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: `fd` is one valid, initialised pollfd that outlives the
        // call, and the count passed is 1; poll(2) only writes `revents`.
        let rc = unsafe { libc::poll(&mut fd, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Ready, hung up (the next write reports EPIPE), timed out (the next
        // wait reports it) or interrupted: the write loop decides.
        Ok(())
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.inner.write(buf) {
                #[cfg(unix)]
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Puts the host's end of the pipe in non-blocking mode (the child's end is
/// a separate open file and keeps blocking reads).
#[cfg(unix)]
fn set_nonblocking(stdin: &ChildStdin) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl(2) with F_GETFL/F_SETFL on a descriptor this process
    // owns (the ChildStdin is alive for the whole call); no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; only the file status flags change.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// A child that never reads: the pipe fills and the write must end at
    /// the deadline instead of blocking.
    #[test]
    fn a_write_to_a_full_pipe_ends_at_its_deadline() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .spawn()
            .expect("sleep runs");
        let stdin = child.stdin.take().expect("a piped stdin");
        let mut pipe = Pipe::new(stdin).expect("non-blocking");
        pipe.set_deadline(Some(Instant::now() + Duration::from_millis(100)));
        let err = pipe
            .write_all(&vec![7u8; 4 << 20])
            .expect_err("nobody reads 4 MiB");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Without a deadline a write waits for the reader and delivers every
    /// byte (non-blocking mode is invisible to the caller).
    #[test]
    fn a_write_without_deadline_waits_for_a_slow_reader() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.2; wc -c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take().expect("a piped stdin");
        let mut pipe = Pipe::new(stdin).expect("non-blocking");
        pipe.write_all(&vec![7u8; 1 << 20]).expect("all written");
        drop(pipe);
        let out = child.wait_with_output().expect("wc ends");
        let n: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a count");
        assert_eq!(n, 1 << 20);
    }

    /// A reader that is gone is an error, not a wait.
    #[test]
    fn a_write_to_a_closed_pipe_fails() {
        let mut child = Command::new("true")
            .stdin(Stdio::piped())
            .spawn()
            .expect("true runs");
        let stdin = child.stdin.take().expect("a piped stdin");
        let _ = child.wait();
        let mut pipe = Pipe::new(stdin).expect("non-blocking");
        pipe.set_deadline(Some(Instant::now() + Duration::from_secs(30)));
        let err = pipe.write_all(&[1u8; 1 << 20]).expect_err("no reader");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
