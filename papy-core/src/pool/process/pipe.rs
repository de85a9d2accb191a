//! The host's ends of a worker's pipes: writes and reads that can give up
//! at a deadline, read by the proxy itself (no reader thread, no hand-off
//! per frame).
//!
//! A worker that stops reading (stopped, wedged, or hostile) fills its
//! stdin pipe, and a plain blocking write would then hold its proxy thread
//! forever, out of reach of the item's timeout; a worker that stops
//! answering would hold a plain blocking read the same way. On Unix both
//! ends are non-blocking: a write that would block waits in `poll(2)` until
//! the pipe drains or the write deadline passes, and a read that finds
//! nothing waits (a short spin, then `poll(2)`) until bytes come, the pipe
//! closes or the read deadline passes; both end with
//! [`io::ErrorKind::TimedOut`] at their deadline.
//!
//! While a write waits, what the worker writes is read into the buffer the
//! reads are served from: a worker blocked on a full stdout stops reading
//! its stdin, so a host waiting only for stdin would wait forever (a large
//! Task frame sent while the worker writes a large Result). At most a frame
//! of the largest size a worker may send is held that way.
//!
//! Elsewhere reads and writes block and deadlines are not enforced.

use std::io::{self, Read, Write};
use std::process::{ChildStdin, ChildStdout};
use std::time::Instant;

#[cfg(unix)]
use crate::os::poll_until;
use crate::protocol::MAX_FRAME;

/// Bytes asked of stdout at a time (the buffer's first size).
const CHUNK: usize = 64 << 10;

/// Most bytes of stdout held unread while a write waits: one frame of the
/// largest size and its length.
const HOLD: usize = MAX_FRAME + 8;

/// A buffer grown past this (by a large frame) is given back once read.
const KEEP: usize = 4 << 20;

/// A worker's stdin and stdout, with optional deadlines.
pub(super) struct Pipe {
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Bytes read from stdout and not consumed yet: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// stdout has ended (every writer of it is gone).
    eof: bool,
    /// Most bytes held unread while a write waits ([`HOLD`]; less in tests).
    hold: usize,
    /// Writes fail with `TimedOut` once this has passed with the pipe
    /// still full; `None` waits as long as it takes.
    pub(super) write_deadline: Option<Instant>,
    /// Reads fail with `TimedOut` once this has passed with nothing to
    /// read; `None` waits as long as it takes.
    pub(super) read_deadline: Option<Instant>,
}

impl Pipe {
    /// Wraps a child's pipes, switching the host's ends to non-blocking
    /// mode where waits can be bounded (the child's ends are separate open
    /// files and keep blocking).
    pub(super) fn new(stdin: ChildStdin, stdout: ChildStdout) -> io::Result<Pipe> {
        #[cfg(unix)]
        {
            rustix::io::ioctl_fionbio(&stdin, true)?;
            rustix::io::ioctl_fionbio(&stdout, true)?;
        }
        Ok(Pipe {
            stdin,
            stdout,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            hold: HOLD,
            write_deadline: None,
            read_deadline: None,
        })
    }

    /// Reads what stdout holds now into the buffer, once. `false`: nothing
    /// yet (or no room left to hold it).
    fn read_some(&mut self) -> io::Result<bool> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() < self.hold {
                self.buf.resize((self.buf.len() * 2).min(self.hold), 0);
            } else {
                return Ok(false);
            }
        }
        loop {
            match self.stdout.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            return Ok(true);
        }
    }

    /// Whether stdout may be read while a write waits: it has not ended
    /// and what is held unread is below [`HOLD`].
    fn can_hold_more(&self) -> bool {
        !self.eof && (self.end < self.buf.len() || self.start > 0 || self.buf.len() < self.hold)
    }

    /// Waits until stdin can take bytes or the write deadline passes (an
    /// error), reading what the worker writes meanwhile.
    #[cfg(unix)]
    fn wait_writable(&mut self) -> io::Result<()> {
        use rustix::event::{PollFd, PollFlags};
        let drain = self.can_hold_more();
        if !drain && !self.eof {
            // More than a frame written while its input is full: no worker
            // keeping to the protocol does that, and waiting would be for ever.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the worker wrote more than a frame without reading its input",
            ));
        }
        let mut fds = [
            PollFd::new(&self.stdin, PollFlags::OUT),
            PollFd::new(&self.stdout, PollFlags::IN),
        ];
        let n = if drain { 2 } else { 1 };
        let late = "the worker did not read its input in time";
        poll_until(&mut fds[..n], self.write_deadline, late)?;
        if drain && !fds[1].revents().is_empty() {
            self.read_some()?;
        }
        Ok(())
    }

    /// Waits until stdout has bytes (or has ended), or the read deadline
    /// passes (an error). A spin of [`IDLE_SPIN`](crate::sync::IDLE_SPIN)
    /// first: a result due any moment is taken without sleeping. Past the
    /// deadline there is no wait at all, spin included: bytes already in
    /// the pipe are still read, but a worker trickling a frame in does not
    /// outlast its timeout however short its pauses.
    #[cfg(unix)]
    fn wait_readable(&self) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let late = "the worker did not answer in time";
        if self.read_deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, late));
        }
        let readable = || PollFd::new(&self.stdout, PollFlags::IN);
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // A zero timeout only looks.
        let ready = || {
            poll(&mut [readable()], Some(&now))
                .is_ok_and(|n| n > 0)
                .then_some(())
        };
        if crate::sync::spin_for(ready).is_some() {
            return Ok(());
        }
        poll_until(&mut [readable()], self.read_deadline, late)
    }
}

impl Read for Pipe {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.start == self.end && !self.eof {
            if !self.read_some()? {
                #[cfg(unix)]
                self.wait_readable()?;
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if self.start == self.end && self.buf.len() > KEEP {
            // A large frame read: its room is given back now, not when the
            // next frame comes.
            (self.buf, self.start, self.end) = (vec![0; CHUNK], 0, 0);
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            match (&self.stdin).write(data) {
                #[cfg(unix)]
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// `sh -c script` with both pipes, and the host's ends.
    fn spawn(script: &str) -> (Child, Pipe) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let pipe = Pipe::new(stdin.expect("piped"), stdout.expect("piped")).expect("non-blocking");
        (child, pipe)
    }

    fn end(mut child: Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A child that never reads: the pipe fills and the write must end at
    /// the deadline instead of blocking.
    #[test]
    fn a_write_to_a_full_pipe_ends_at_its_deadline() {
        let (child, mut pipe) = spawn("sleep 30");
        pipe.write_deadline = Some(Instant::now() + Duration::from_millis(100));
        let err = pipe
            .write_all(&vec![7u8; 4 << 20])
            .expect_err("nobody reads 4 MiB");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        end(child);
    }

    /// A child that never answers: the read ends at its deadline.
    #[test]
    fn a_read_from_a_silent_worker_ends_at_its_deadline() {
        let (child, mut pipe) = spawn("sleep 30");
        pipe.read_deadline = Some(Instant::now() + Duration::from_millis(100));
        let err = pipe.read(&mut [0u8; 8]).expect_err("nothing comes");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        end(child);
    }

    /// Without deadlines a write waits for a slow reader and a read for a
    /// slow writer, and every byte arrives (non-blocking mode is invisible
    /// to the caller); the end of stdout reads as 0.
    #[test]
    fn without_deadlines_reads_and_writes_wait_for_the_worker() {
        let (child, mut pipe) = spawn("sleep 0.2; head -c 1048576 | wc -c");
        pipe.write_all(&vec![7u8; 1 << 20]).expect("all written");
        let mut out = String::new();
        pipe.read_to_string(&mut out).expect("wc answers");
        assert_eq!(out.trim().parse::<usize>().ok(), Some(1 << 20));
        end(child);
    }

    /// A worker that echoes what it reads blocks on its full stdout while
    /// the host still writes: the write reads it meanwhile, so neither
    /// waits for the other, and the bytes come back in order.
    #[test]
    fn a_write_reads_what_the_worker_writes_meanwhile() {
        let (child, mut pipe) = spawn("cat");
        pipe.write_deadline = Some(Instant::now() + Duration::from_secs(60));
        let sent: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        pipe.write_all(&sent).expect("written while cat echoes");
        let mut back = vec![0u8; sent.len()];
        pipe.read_exact(&mut back).expect("echoed");
        assert!(back == sent, "the echo differs from what was sent");
        end(child);
    }

    /// A worker that writes on and on without reading its input fills what
    /// a waiting write may hold: the write fails instead of waiting for
    /// ever.
    #[test]
    fn a_worker_writing_without_reading_fails_the_write_past_what_may_be_held() {
        let (child, mut pipe) = spawn("exec yes");
        pipe.hold = 1 << 20;
        let err = pipe
            .write_all(&vec![7u8; 4 << 20])
            .expect_err("yes reads nothing");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        end(child);
    }

    /// A worker trickling bytes in still meets the read deadline, and
    /// bytes already in the pipe at the deadline are read, not refused.
    #[test]
    fn a_read_deadline_holds_while_bytes_trickle_in() {
        let (child, mut pipe) = spawn("while :; do printf x; sleep 0.001; done");
        let start = Instant::now();
        pipe.read_deadline = Some(start + Duration::from_millis(100));
        let err = pipe
            .read_exact(&mut vec![0u8; 1 << 20])
            .expect_err("a MiB at a byte a millisecond takes far longer");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the deadline held"
        );
        end(child);
        let (child, mut pipe) = spawn("printf 0123456789; exec sleep 30");
        std::thread::sleep(Duration::from_millis(200));
        pipe.read_deadline = Some(Instant::now());
        let mut got = [0u8; 10];
        pipe.read_exact(&mut got).expect("the bytes were there");
        assert_eq!(&got, b"0123456789");
        end(child);
    }

    /// A reader that is gone is an error, not a wait.
    #[test]
    fn a_write_to_a_closed_pipe_fails() {
        let (mut child, mut pipe) = spawn("exit 0");
        let _ = child.wait();
        pipe.write_deadline = Some(Instant::now() + Duration::from_secs(30));
        let err = pipe.write_all(&[1u8; 1 << 20]).expect_err("no reader");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let mut rest = Vec::new();
        assert_eq!(pipe.read_to_end(&mut rest).ok(), Some(0), "stdout ended");
    }
}
