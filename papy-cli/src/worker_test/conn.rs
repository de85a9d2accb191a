//! The connection to the worker under test: its process, and a thread
//! reading its stdout into greeting, frame payloads and errors.

use std::io::{BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use papy_core::protocol::{
    decode_payload, read_frame_bytes, skip_to_greeting, write_frame, Frame, ProtocolError,
    MAX_FRAME,
};

/// What the reader thread saw.
enum Seen {
    Greeting,
    /// A frame's payload, not yet decoded: one that does not decode is a
    /// violation, but the framing holds and the conversation goes on.
    Payload(Vec<u8>),
    Error(String),
}

/// One run of the worker's command, and what it writes.
pub(super) struct Conn {
    child: Child,
    seen: Receiver<Seen>,
    wait: Duration,
    /// Why the conversation cannot go on: the worker closed its stdout,
    /// broke the framing or did not answer in time (a late answer would be
    /// taken for the next one).
    pub(super) over: Option<String>,
}

impl Conn {
    /// Starts the worker's command, with a thread reading what it writes.
    pub(super) fn start(command: &[String], wait: Duration) -> Result<Conn, String> {
        let (program, rest) = command
            .split_first()
            .ok_or("no worker command after `--`")?;
        let mut child = Command::new(program)
            .args(rest)
            .env(papy_core::pool::WORKER_ENV, "stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {e}"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the worker has no stdout pipe".into());
        };
        let (tx, seen) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            if let Err(e) = skip_to_greeting(&mut r, 1 << 20) {
                let _ = tx.send(Seen::Error(format!("no greeting: {e}")));
                return;
            }
            if tx.send(Seen::Greeting).is_err() {
                return;
            }
            loop {
                let mut buf = Vec::new();
                let seen = match read_frame_bytes(&mut r, &mut buf, MAX_FRAME) {
                    Ok(()) => Seen::Payload(buf),
                    // Dropping the sender says it: "closed its stdout".
                    Err(ProtocolError::Closed) => return,
                    Err(e) => Seen::Error(format!("the worker's stdout breaks the framing: {e}")),
                };
                let stop = matches!(seen, Seen::Error(_));
                if tx.send(seen).is_err() || stop {
                    return;
                }
            }
        });
        Ok(Conn {
            child,
            seen,
            wait,
            over: None,
        })
    }

    /// What ends the conversation, as a message for `what`.
    fn end_with(&mut self, what: &str, why: String) -> String {
        let message = format!("{what}: {why}");
        self.over = Some(why);
        message
    }

    /// Waits for the worker's greeting.
    pub(super) fn greeting(&mut self) -> Result<(), String> {
        match self.seen.recv_timeout(self.wait) {
            Ok(Seen::Greeting) => Ok(()),
            Ok(Seen::Error(e)) => Err(self.end_with("greeting", e)),
            Ok(Seen::Payload(_)) => Err(self.end_with("greeting", "a frame before it".into())),
            Err(RecvTimeoutError::Timeout) => Err(self.end_with(
                "greeting",
                format!("no `\\0papy-worker\\0` within {:?}", self.wait),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(self.end_with("greeting", "the worker closed its stdout before it".into()))
            }
        }
    }

    /// The next frame's payload.
    pub(super) fn payload(&mut self, what: &str) -> Result<Vec<u8>, String> {
        if let Some(why) = &self.over {
            return Err(format!("{what}: {why}"));
        }
        let why = match self.seen.recv_timeout(self.wait) {
            Ok(Seen::Payload(p)) => return Ok(p),
            Ok(Seen::Greeting) => "a second greeting".into(),
            Ok(Seen::Error(e)) => e,
            Err(RecvTimeoutError::Timeout) => format!("nothing within {:?}", self.wait),
            Err(RecvTimeoutError::Disconnected) => "the worker closed its stdout".into(),
        };
        Err(self.end_with(what, why))
    }

    /// The next frame, decoded as the host decodes it.
    pub(super) fn next(&mut self, what: &str) -> Result<Frame, String> {
        let p = self.payload(what)?;
        decode_payload(&p).map_err(|e| format!("{what} does not decode: {e}"))
    }

    /// Sends a frame to the worker.
    pub(super) fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let sent = match self.child.stdin.as_mut() {
            Some(stdin) => write_frame(stdin, frame)
                .and_then(|()| stdin.flush().map_err(Into::into))
                .map_err(|e| e.to_string()),
            None => Err("no stdin".into()),
        };
        sent.map_err(|e| self.end_with(&format!("writing a {} frame", frame.kind()), e))
    }

    /// Waits for the worker to exit on its own (its stdin stays open).
    pub(super) fn exit_status(&mut self) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + self.wait;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => return Err(format!("still running {:?} later", self.wait)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Whatever happened, the worker does not outlive the test.
    pub(super) fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
