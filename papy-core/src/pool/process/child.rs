//! One worker child: start, handshake, kill, reap, shut down.

use std::io::{BufWriter, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::command::{WorkerCommand, WORKER_ENV};
use super::link::{Failure, Link, StartError};
use super::pipe::Pipe;
use super::Job;
use crate::error::{quote_peer, Item};
use crate::job::batch::Wire;
use crate::os::{describe_status, exited_unreaped, kill_group};
use crate::protocol::serve::chain_of;
use crate::protocol::{
    read_frame_with, release_large, skip_to_greeting, write_frame, write_frame_tail,
    write_frame_with, Frame, Hello, ProtocolError, MAX_FRAME,
};

/// How long a worker's init may take.
const INIT_LIMIT: Duration = Duration::from_secs(600);

/// How long a worker has to shake hands (its Hello, and reading ours).
const HANDSHAKE: Duration = Duration::from_secs(30);

/// A frame from a worker, or why none could be read.
pub(super) type Answer = std::result::Result<Frame, ProtocolError>;

/// Whether a read or a write failed because its deadline passed.
pub(super) fn timed_out(e: &ProtocolError) -> bool {
    matches!(e, ProtocolError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// A worker child and the host's ends of its pipes, read and written by
/// its proxy's thread.
pub(super) struct Conn {
    pub(super) child: Child,
    /// The worker's stdin and stdout; reads and writes end at the
    /// deadlines set on them.
    io: BufWriter<Pipe>,
    /// Where Task frames are built (reused from frame to frame).
    wbuf: Vec<u8>,
    /// Where Result frames are read (reused from frame to frame).
    rbuf: Vec<u8>,
    /// Whatever the worker wrote before its greeting was skipped.
    greeted: bool,
    /// The functions the worker said it runs (its `Hello`).
    pub(super) functions: Vec<String>,
    /// Their parameters, as far as the worker said (its `Hello`, 2.1).
    pub(super) signatures: Vec<crate::protocol::Signature>,
    /// How the child ended, once it was reaped.
    ended: Option<String>,
}

impl Conn {
    /// Starts a worker, shakes hands and runs its init.
    pub(super) fn spawn(cmd: &WorkerCommand) -> std::result::Result<Conn, StartError> {
        Conn::start(cmd, Stdio::inherit())?.greet(cmd, None)
    }

    /// Shakes hands with a started worker (`first`: its first frame, when
    /// it was already read) and runs its init.
    pub(super) fn greet(
        self,
        cmd: &WorkerCommand,
        first: Option<Answer>,
    ) -> std::result::Result<Conn, StartError> {
        let mut conn = self.handshake(cmd, first)?;
        if let Some(init) = &cmd.init {
            conn.await_init(cmd, &init.function)
                .map_err(|message| StartError {
                    message,
                    function: Some(init.function.clone()),
                })?;
        }
        Ok(conn)
    }

    /// Shakes hands (the host's `Hello` sent).
    fn handshake(
        mut self,
        cmd: &WorkerCommand,
        first: Option<Answer>,
    ) -> std::result::Result<Conn, String> {
        // The handshake, writes included, is bounded.
        self.io.get_mut().write_deadline = Some(Instant::now() + HANDSHAKE);
        self.await_hello(cmd, first)?;
        let mut hello = Hello::here(cmd.declared(), Vec::new());
        hello.init.clone_from(&cmd.init);
        if let Err(e) = write_frame(&mut self.io, &Frame::Hello(hello)) {
            let how = self.kill();
            return Err(format!(
                "`{}`: cannot complete the handshake ({e}; {how})",
                cmd.line()
            ));
        }
        self.io.get_mut().write_deadline = None;
        Ok(self)
    }

    /// Starts the child in its own process group.
    pub(super) fn start(cmd: &WorkerCommand, stderr: Stdio) -> std::result::Result<Conn, String> {
        let mut c = cmd.to_command();
        c.env(WORKER_ENV, "stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // Its own process group: whatever the command starts (a shell, ssh)
        // is killed with it, and a terminal's Ctrl-C is left to the host.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", cmd.line()))?;
        let pipes = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => Pipe::new(stdin, stdout)
                .map_err(|e| format!("cannot set up the pipes to the worker: {e}")),
            _ => Err("the child has no stdin/stdout pipes".into()),
        };
        let pipe = pipes.inspect_err(|_| {
            let _ = child.kill();
            let _ = child.wait();
        })?;
        Ok(Conn {
            child,
            io: BufWriter::new(pipe),
            wbuf: Vec::new(),
            rbuf: Vec::new(),
            greeted: false,
            functions: Vec::new(),
            signatures: Vec::new(),
            ended: None,
        })
    }

    /// The worker's next frame, waiting at most `timeout` (`None`: as long
    /// as it takes; past it, an I/O error of kind `TimedOut`). Whatever the
    /// worker wrote before its greeting is skipped first.
    pub(super) fn next_frame(&mut self, timeout: Option<Duration>) -> Answer {
        let pipe = self.io.get_mut();
        pipe.read_deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if !self.greeted {
            skip_to_greeting(pipe, 1 << 20)?;
            self.greeted = true;
        }
        let frame = read_frame_with(pipe, &mut self.rbuf, MAX_FRAME);
        release_large(&mut self.rbuf);
        frame
    }

    /// Waits for the worker's `Hello` and checks it.
    fn await_hello(
        &mut self,
        cmd: &WorkerCommand,
        first: Option<Answer>,
    ) -> std::result::Result<(), String> {
        let first = first.unwrap_or_else(|| self.next_frame(Some(HANDSHAKE)));
        if let Ok(Frame::Hello(h)) = first {
            return self.check_hello(cmd, h);
        }
        let how = self.kill();
        let why = match first {
            Ok(Frame::Fatal { message }) => format!("refused: {}", quote_peer(&message)),
            Ok(other) => format!("did not start with a Hello frame (got {})", other.kind()),
            Err(e) if timed_out(&e) => format!("did not answer the handshake within {HANDSHAKE:?}"),
            Err(e) => format!(
                "did not answer the handshake ({}; {how}); is it a papy worker (papy worker --stdio, or a binary calling papy::worker_main())?",
                quote_peer(&e.to_string())
            ),
        };
        Err(format!("`{}` {why}", cmd.line()))
    }

    /// Takes what a worker's `Hello` says, or refuses it.
    fn check_hello(&mut self, cmd: &WorkerCommand, h: Hello) -> std::result::Result<(), String> {
        if let Err(m) = h.check() {
            let m = quote_peer(&m).into_owned();
            let _ = write_frame(&mut self.io, &Frame::Fatal { message: m.clone() });
            self.kill();
            return Err(format!("`{}`: {m}", cmd.line()));
        }
        if cmd.init.is_some() && h.minor < 1 {
            self.kill();
            return Err(format!(
                "`{}` speaks protocol {}.{}: a worker `init` needs 2.1",
                cmd.line(),
                h.major,
                h.minor
            ));
        }
        // A worker's list is data: a bounded number of warnings.
        let mismatches = crate::registry::hash_mismatches(&h.plugins);
        for m in mismatches.iter().take(16) {
            tracing::warn!("worker `{}`: {m}", cmd.line());
        }
        if mismatches.len() > 16 {
            tracing::warn!(
                "worker `{}`: {} more plugin mismatches",
                cmd.line(),
                mismatches.len() - 16
            );
        }
        self.functions = h.functions;
        self.signatures = h.signatures;
        Ok(())
    }

    /// Waits for the answer to the init the host's `Hello` asked for.
    fn await_init(
        &mut self,
        cmd: &WorkerCommand,
        function: &str,
    ) -> std::result::Result<(), String> {
        // `Err`: the stream broke, said with how the worker ended.
        let why = match self.next_frame(Some(INIT_LIMIT)) {
            Ok(Frame::Result { id, results }) if id == crate::protocol::INIT_ID => {
                match results.into_items().iter().find_map(|i| i.as_ref().err()) {
                    None => return Ok(()),
                    Some(e) => Ok(quote_peer(e.message()).into_owned()),
                }
            }
            Ok(Frame::Fatal { message }) => Ok(quote_peer(&message).into_owned()),
            Ok(_) => Ok("the worker answered something else".into()),
            Err(e) if timed_out(&e) => Ok(format!("no answer within {INIT_LIMIT:?}")),
            Err(e) => Err(quote_peer(&e.to_string()).into_owned()),
        };
        let how = self.kill();
        let why = why.unwrap_or_else(|e| format!("{e} ({how})"));
        Err(format!("`{}`: init `{function}` failed: {why}", cmd.line()))
    }
}

/// The required functions a worker's `Hello` does not list (names
/// compared as the registry normalises them; at most 16 named).
pub(super) fn missing_functions(required: &[String], offered: &[String]) -> Vec<String> {
    let offered: std::collections::BTreeSet<String> = offered
        .iter()
        .take(1 << 16)
        .map(|f| crate::registry::normalise(f))
        .collect();
    required
        .iter()
        .filter(|f| !offered.contains(&crate::registry::normalise(f)))
        .take(16)
        .map(|f| format!("`{f}`"))
        .collect()
}

impl Link for Conn {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn functions(&self) -> &[String] {
        &self.functions
    }

    fn send(
        &mut self,
        job: &Job,
        wire: &Wire<'_>,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<(), Failure> {
        let Some(worker) = job.func().worker() else {
            return Err(Failure::Died(
                "internal: a task without a Worker reached a process pool".into(),
            ));
        };
        let (chain, node) = (chain_of(worker), job.func().name());
        self.io.get_mut().write_deadline = deadline;
        let sent = match wire.frame_and_tail(id, &chain, &node) {
            (frame, Some(values)) => write_frame_tail(&mut self.io, &mut self.wbuf, &frame, values),
            (frame, None) => write_frame_with(&mut self.io, &mut self.wbuf, &frame),
        };
        self.io.get_mut().write_deadline = None;
        release_large(&mut self.wbuf);
        match sent {
            Ok(()) => Ok(()),
            Err(e) if timed_out(&e) => Err(Failure::TimedOut(
                "the worker did not read its input in time".into(),
            )),
            Err(e) => Err(Failure::Died(format!(
                "cannot send to the worker ({e}); {}",
                self.reap()
            ))),
        }
    }

    fn receive(
        &mut self,
        id: u64,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Item>, Failure> {
        match self.next_frame(timeout) {
            Ok(Frame::Result { id: rid, results }) => match results.into_items() {
                items if rid == id && items.len() == n => Ok(items),
                items => Err(Failure::BadFrame(format!(
                    "the worker answered task {rid} with {} result(s); expected task {id} with {n}",
                    items.len()
                ))),
            },
            Ok(Frame::Fatal { message }) => Err(Failure::Died(format!(
                "the worker failed: {}",
                quote_peer(&message)
            ))),
            Ok(other) => Err(Failure::BadFrame(format!(
                "unexpected {} frame from the worker",
                other.kind()
            ))),
            Err(e) if timed_out(&e) => Err(Failure::TimedOut(format!(
                "no result within {:?}",
                timeout.unwrap_or_default()
            ))),
            Err(ProtocolError::Closed) => Err(Failure::Died(format!(
                "worker process died: {}",
                self.reap()
            ))),
            Err(e) => Err(Failure::BadFrame(format!(
                "worker process sent a bad frame ({}); {}",
                quote_peer(&e.to_string()),
                self.kill()
            ))),
        }
    }

    fn exited(&mut self) -> bool {
        exited_unreaped(&mut self.child)
    }

    fn kill(&mut self) -> String {
        end(&mut self.child, &mut self.ended, Duration::ZERO)
    }

    /// Reaps a child that already died (its pipe closed).
    fn reap(&mut self) -> String {
        end(&mut self.child, &mut self.ended, Duration::from_secs(2))
    }

    /// Asks the child to exit, then kills it if it does not.
    fn shutdown(mut self) {
        // A worker that stopped reading does not hold the pool's shutdown.
        self.io.get_mut().write_deadline = Some(Instant::now() + Duration::from_secs(2));
        let _ = write_frame(&mut self.io, &Frame::Shutdown);
        let _ = self.io.flush();
        // Closing the pipes: a worker that missed the frame sees its input end.
        drop(self.io);
        end(&mut self.child, &mut self.ended, Duration::from_secs(2));
    }
}

/// Ends `child`: gives it `wait` to exit by itself, then signals its
/// process group (whatever it started goes with it, while its pid, the
/// group's id, is still reserved), kills it and reaps it. Returns how it
/// ended, kept in `ended`: a child reaped already is not signalled again
/// (its pid may be someone else's now).
fn end(child: &mut Child, ended: &mut Option<String>, wait: Duration) -> String {
    if let Some(how) = ended {
        return how.clone();
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && !exited_unreaped(child) {
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_group(child.id());
    let _ = child.kill();
    let how = child.wait().map_or_else(|e| e.to_string(), describe_status);
    *ended = Some(how.clone());
    how
}
