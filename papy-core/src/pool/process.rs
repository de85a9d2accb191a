//! Process and remote pools: workers are child processes speaking the
//! protocol (`protocol/`) on their stdin/stdout.
//!
//! Each worker slot has a proxy thread that owns one child: it sends a
//! job's items as one `Task` frame and waits for the `Result`. A child that
//! dies (a panic with `panic = "abort"`, a segfault, SIGKILL, a closed
//! pipe) turns the items it held into `WorkerDied` errors ("worker process
//! died: signal 9") and is replaced at the next job; after
//! `max_deaths` consecutive workers that fail to start or shake hands the
//! pool gives up and fails every further item with a clear error instead of
//! respawning forever (deaths during a job are charged to its items, so a
//! poison item cannot take the pool down; restarts
//! back off exponentially, up to 2 s, so a dropped remote host is not
//! hammered). A task
//! timeout kills and replaces the child. Dropping the pool asks every child
//! to exit, then kills what is left, and waits for each: no zombies.
//!
//! "Remote" workers are the same thing started through any command, e.g.
//! `ssh host papy worker --stdio`: SSH brings authentication and encryption.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::{Job, PackedInputs, Pool, TaskFn};
use crate::error::{Error, ErrorKind, Item, ItemError, Result};
use crate::protocol::packed::{encode_values, pack_index};
use crate::protocol::serve::chain_of;
use crate::protocol::{
    read_frame_with, release_large, write_frame, write_frame_with, Frame, FrameRef, Hello,
    InboxesRef, ProtocolError, MAX_FRAME,
};
use crate::value::Value;

static TEST_SUPPORT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The name of the test that `papy::enable_test_support!()` adds.
pub const TEST_ENTRY: &str = "__papy_worker_entry";

/// Marks this binary as a test binary with the worker hook test (called by
/// `papy::enable_test_support!()` from a constructor; it only sets a flag).
#[doc(hidden)]
pub fn mark_test_support() {
    TEST_SUPPORT.store(true, Ordering::Release);
}

/// Set in the environment of worker children; a process that has it refuses
/// to start pools of its own (no fork bombs).
pub const WORKER_ENV: &str = "PAPY_WORKER";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How to start one worker process.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl WorkerCommand {
    /// `program args...`, which must speak the protocol on stdin/stdout
    /// (e.g. `papy worker --stdio`).
    pub fn new<S: Into<OsString>>(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = S>,
    ) -> WorkerCommand {
        WorkerCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// The current executable re-executed in worker mode: its `main` must
    /// call `papy::worker_main()` first (or, under `cargo test`, the binary
    /// must use `papy::enable_test_support!()`).
    ///
    /// # Errors
    /// The executable's path cannot be found.
    pub fn current_exe() -> Result<WorkerCommand> {
        let exe = std::env::current_exe()?;
        if TEST_SUPPORT.load(Ordering::Acquire) {
            // A test binary: run only the hook test, which serves once every
            // constructor (including the registry's) has run.
            return Ok(WorkerCommand::new(
                exe,
                [
                    TEST_ENTRY,
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ],
            ));
        }
        Ok(WorkerCommand::new(exe, Vec::<OsString>::new()))
    }

    /// A shell command line (`sh -c 'exec ...'`), e.g. for `ssh host papy worker --stdio`.
    pub fn shell(line: &str) -> WorkerCommand {
        let line = line.trim_start();
        let line = if line.starts_with("exec ") {
            line.to_string()
        } else {
            format!("exec {line}")
        };
        WorkerCommand::new("sh", ["-c".to_string(), line])
    }

    /// Adds an environment variable for the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> WorkerCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line: the shell line for [`WorkerCommand::shell`], else program and arguments.
    pub fn line(&self) -> String {
        match (self.program.to_str(), self.args.as_slice()) {
            (Some("sh"), [c, line]) if c == "-c" => line.to_string_lossy().into_owned(),
            _ => self.describe(),
        }
    }

    /// A [`Command`] for this worker: its program, arguments and
    /// environment (for pools that start workers their own way, such as
    /// broker pools).
    pub fn to_command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

struct Shared {
    name: String,
    size: usize,
    stopping: std::sync::atomic::AtomicBool,
    kind: &'static str,
    max_deaths: usize,
    consecutive_deaths: AtomicUsize,
    given_up: Mutex<Option<String>>,
    pids: Mutex<BTreeMap<usize, u32>>,
    next_id: AtomicUsize,
}

/// A pool of worker processes (local children or remote commands).
pub struct ProcessPool {
    size: usize,
    commands: Vec<(WorkerCommand, usize)>,
    kind: &'static str,
    tx: Mutex<Option<Sender<Job>>>,
    proxies: Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl ProcessPool {
    /// `size` local worker processes started with `command`.
    ///
    /// # Errors
    /// Zero workers, or this process is itself a worker.
    pub fn new(name: &str, size: usize, command: WorkerCommand) -> Result<ProcessPool> {
        ProcessPool::start(name, "process", vec![(command, size)])
    }

    /// Remote workers: each command started `n` times (e.g. `ssh host papy worker --stdio`).
    ///
    /// # Errors
    /// No workers, or this process is itself a worker.
    pub fn remote(name: &str, commands: Vec<(WorkerCommand, usize)>) -> Result<ProcessPool> {
        ProcessPool::start(name, "remote", commands)
    }

    fn start(
        name: &str,
        kind: &'static str,
        commands: Vec<(WorkerCommand, usize)>,
    ) -> Result<ProcessPool> {
        if std::env::var_os(WORKER_ENV).is_some() {
            return Err(Error::Config(format!(
                "this process is a papy worker ({WORKER_ENV} is set) and cannot start worker processes; \
                 does main() call papy::worker_main() first?"
            )));
        }
        let size: usize = commands.iter().map(|(_, n)| n).sum();
        if size == 0 {
            return Err(Error::Config(format!(
                "{kind} pool `{name}` needs at least one worker"
            )));
        }
        let shared = Arc::new(Shared {
            name: name.to_string(),
            size,
            stopping: std::sync::atomic::AtomicBool::new(false),
            kind,
            max_deaths: 5,
            consecutive_deaths: AtomicUsize::new(0),
            given_up: Mutex::new(None),
            pids: Mutex::new(BTreeMap::new()),
            next_id: AtomicUsize::new(0),
        });
        let recorded = commands.clone();
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut proxies = Vec::with_capacity(size);
        let mut slot = 0;
        for (cmd, n) in commands {
            for _ in 0..n {
                let (cmd, rx, sh) = (cmd.clone(), rx.clone(), shared.clone());
                let h = std::thread::Builder::new()
                    .name(format!("{name}-proxy-{slot}"))
                    .spawn(move || proxy(slot, &cmd, &rx, &sh))?;
                proxies.push(h);
                slot += 1;
            }
        }
        Ok(ProcessPool {
            size,
            commands: recorded,
            kind,
            tx: Mutex::new(Some(tx)),
            proxies: Mutex::new(proxies),
            shared,
        })
    }

    /// The process ids of the live children, by worker slot.
    pub fn pids(&self) -> BTreeMap<usize, u32> {
        lock(&self.shared.pids).clone()
    }
}

struct Conn {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    /// Where Task frames are built (reused from frame to frame).
    wbuf: Vec<u8>,
    frames: Receiver<std::result::Result<Incoming, ProtocolError>>,
    reader: Option<JoinHandle<()>>,
}

impl Conn {
    fn spawn(cmd: &WorkerCommand) -> std::result::Result<Conn, String> {
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args)
            .env(WORKER_ENV, "stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Its own process group: whatever the command starts (a shell, ssh)
        // is killed with it, and a terminal's Ctrl-C is left to the host.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", cmd.describe()))?;
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the child has no stdin/stdout pipes".into());
        };
        let (ftx, frx) = crossbeam_channel::unbounded();
        let reader = std::thread::Builder::new()
            .name("papy-child-reader".into())
            .spawn(move || {
                if let Err(e) = crate::protocol::skip_to_greeting(&mut stdout, 1 << 20) {
                    let _ = ftx.send(Err(e));
                    return;
                }
                let mut buf = Vec::new();
                loop {
                    let f = read_frame_with(&mut stdout, &mut buf, MAX_FRAME).map(Incoming::from);
                    release_large(&mut buf);
                    let end = f.is_err();
                    if ftx.send(f).is_err() || end {
                        return;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let mut conn = Conn {
            child,
            stdin: BufWriter::new(stdin),
            wbuf: Vec::new(),
            frames: frx,
            reader: Some(reader),
        };
        match conn.frames.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Incoming::Other(Frame::Hello(h)))) => {
                if let Err(m) = h.check() {
                    let _ = write_frame(&mut conn.stdin, &Frame::Fatal { message: m.clone() });
                    conn.kill();
                    return Err(format!("`{}`: {m}", cmd.describe()));
                }
                for m in crate::registry::hash_mismatches(&h.plugins) {
                    tracing::warn!("worker `{}`: {m}", cmd.describe());
                }
            }
            Ok(Ok(Incoming::Other(Frame::Fatal { message }))) => {
                conn.kill();
                return Err(format!("`{}` refused: {message}", cmd.describe()));
            }
            Ok(Ok(other)) => {
                conn.kill();
                return Err(format!(
                    "`{}` did not start with a Hello frame (got {other:?})",
                    cmd.describe()
                ));
            }
            Ok(Err(e)) => {
                let status = conn.kill();
                return Err(format!(
                    "`{}` did not answer the handshake ({e}; {}); is it a papy worker (papy worker --stdio, or a binary calling papy::worker_main())?",
                    cmd.describe(),
                    status
                ));
            }
            Err(_) => {
                conn.kill();
                return Err(format!(
                    "`{}` did not answer the handshake within 30 s",
                    cmd.describe()
                ));
            }
        }
        if let Err(e) = write_frame(
            &mut conn.stdin,
            &Frame::Hello(Hello::here(Vec::new(), Vec::new())),
        ) {
            let how = conn.kill();
            return Err(format!(
                "`{}`: cannot complete the handshake ({e}; {how})",
                cmd.describe()
            ));
        }
        Ok(conn)
    }

    /// Kills the child and reaps it; returns how it ended.
    fn kill(&mut self) -> String {
        kill_group(self.child.id());
        let _ = self.child.kill();
        let status = self.child.wait();
        // The reader ends by itself once every writer of the pipe is gone;
        // it is not joined here, so a stray grandchild cannot block us.
        drop(self.reader.take());
        status.map_or_else(|e| e.to_string(), describe_status)
    }

    /// Reaps a child that already died (its pipe closed).
    fn reap(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    // Whatever the child started goes with it.
                    kill_group(self.child.id());
                    drop(self.reader.take());
                    return describe_status(s);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return self.kill(),
            }
        }
    }

    /// Asks the child to exit, then kills it if it does not.
    fn shutdown(mut self) {
        let _ = write_frame(&mut self.stdin, &Frame::Shutdown);
        let _ = self.stdin.flush();
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    kill_group(self.child.id());
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        kill_group(self.child.id());
        drop(self.reader.take());
    }
}

/// Kills the process group led by `pid` (the child and what it started).
pub(crate) fn kill_group(pid: u32) {
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

pub(crate) fn describe_status(s: ExitStatus) -> String {
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

/// A frame from a worker as its reader thread passes it on: results are
/// turned into items in the thread that decoded them (while they are in its
/// cache), with their number of failures.
#[derive(Debug)]
enum Incoming {
    Results {
        id: u64,
        items: Vec<Item>,
        failed: usize,
    },
    Other(Frame),
}

impl From<Frame> for Incoming {
    fn from(f: Frame) -> Incoming {
        match f {
            Frame::Result { id, results } => Incoming::Results {
                id,
                failed: results.errors.len(),
                items: results.into_items(),
            },
            other => Incoming::Other(other),
        }
    }
}

enum Outcome {
    /// The results of the items sent, and how many of them failed.
    Done(Vec<Item>, usize),
    /// The worker died during the exchange.
    Died(String),
    /// No worker could be started (spawn or handshake failed).
    NoWorker(String),
    TimedOut(Duration),
}

/// Sends one Task frame.
fn send_task(
    conn: &mut Conn,
    job: &Job,
    wire: &Wire<'_>,
    id: u64,
) -> std::result::Result<(), String> {
    let Some(worker) = job.func().worker() else {
        return Err("internal: a task without a Worker reached a process pool".into());
    };
    let chain = chain_of(worker);
    let node = job.func().name();
    let inboxes = match &wire.values {
        WireValues::Packed(v) => InboxesRef::Single(v),
        WireValues::Many(v) => InboxesRef::Many(v),
    };
    let frame = FrameRef::Task {
        id,
        chain: &chain,
        node: &node,
        indices: &wire.indices,
        inboxes,
    };
    let sent = write_frame_with(&mut conn.stdin, &mut conn.wbuf, &frame);
    release_large(&mut conn.wbuf);
    sent.map_err(|e| format!("cannot send to the worker ({e}); {}", conn.reap()))
}

/// Waits for the Result frame of task `id` (`n` items).
fn receive_result(conn: &mut Conn, id: u64, n: usize, timeout: Option<Duration>) -> Outcome {
    let got = match timeout {
        Some(t) => match conn.frames.recv_timeout(t) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => return Outcome::TimedOut(t),
            Err(RecvTimeoutError::Disconnected) => Err(ProtocolError::Closed),
        },
        None => conn.frames.recv().unwrap_or(Err(ProtocolError::Closed)),
    };
    match got {
        Ok(Incoming::Results {
            id: rid,
            items,
            failed,
        }) if rid == id && items.len() == n => Outcome::Done(items, failed),
        Ok(Incoming::Other(Frame::Fatal { message })) => {
            Outcome::Died(format!("the worker failed: {message}"))
        }
        Ok(other) => Outcome::Died(format!("unexpected frame from the worker: {other:?}")),
        Err(ProtocolError::Closed) => {
            Outcome::Died(format!("worker process died: {}", conn.reap()))
        }
        Err(e) => Outcome::Died(format!(
            "worker process sent a bad frame ({e}); {}",
            conn.kill()
        )),
    }
}

fn exchange(conn: &mut Conn, job: &Job, wire: &Wire<'_>, id: u64) -> Outcome {
    if let Err(e) = send_task(conn, job, wire, id) {
        return Outcome::Died(e);
    }
    receive_result(conn, id, wire.len(), job.timeout())
}

/// What goes on the wire for a group: the items' indices, packed, and
/// their values, packed as they are read when every inbox is one value
/// (the common case), else by reference into the group's jobs.
struct Wire<'g> {
    indices: Vec<u8>,
    values: WireValues<'g>,
}

impl Wire<'_> {
    /// Items sent.
    fn len(&self) -> usize {
        self.indices.len() / 8
    }
}

enum WireValues<'g> {
    Packed(Vec<u8>),
    Many(Vec<Vec<&'g Value>>),
}

/// How a group's results are put together once its sent items come back.
struct Plan {
    /// Items answered here, as (job, item, result): an error in the inbox
    /// is passed on without a call, so such items never leave the host.
    answered: Vec<(usize, usize, Item)>,
    /// Where the sent items sit in the group, as (job, item); `None` when
    /// every item of the group is sent, in order (the common case).
    positions: Option<Vec<(usize, usize)>>,
    /// Items sent.
    sent: usize,
}

impl Plan {
    /// The sent items' places, as (job, item).
    fn positions(&self, group: &[Job]) -> Vec<(usize, usize)> {
        match &self.positions {
            Some(p) => p.clone(),
            None => group
                .iter()
                .enumerate()
                .flat_map(|(g, j)| (0..j.len()).map(move |k| (g, k)))
                .collect(),
        }
    }

    /// The results of every job of the group with their number of
    /// failures, from the sent items' results (in the order they were sent;
    /// `failed` of them failed) and the items answered here.
    fn assemble(self, group: &[Job], mut sent: Vec<Item>, failed: usize) -> Vec<Batch> {
        if self.positions.is_none() && self.answered.is_empty() {
            // Every item went out in order: cut the results at job bounds
            // (no item is looked at unless some failed).
            if let [_] = group {
                return vec![Batch::new(sent, failed)];
            }
            let mut per_job = Vec::with_capacity(group.len());
            for job in group.iter().rev() {
                let at = sent.len().saturating_sub(job.len());
                per_job.push(Batch::new(sent.split_off(at), failed));
            }
            per_job.reverse();
            return per_job;
        }
        let mut slots: Vec<Vec<Option<Item>>> = group
            .iter()
            .map(|j| (0..j.len()).map(|_| None).collect())
            .collect();
        for ((g, k), item) in self.positions(group).into_iter().zip(sent) {
            slots[g][k] = Some(item);
        }
        for (g, k, item) in self.answered {
            slots[g][k] = Some(item);
        }
        slots
            .into_iter()
            .map(|job| {
                let items = job
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| Err(ItemError::new(ErrorKind::WorkerDied, "no result")))
                    })
                    .collect();
                Batch::new(items, usize::MAX)
            })
            .collect()
    }

    /// The results of every job when the sent items all failed with `err`
    /// (each error naming its function and index).
    fn charge(self, group: &[Job], err: &ItemError) -> Vec<Batch> {
        let sent = self
            .positions(group)
            .into_iter()
            .map(|(g, k)| {
                let job = &group[g];
                let index = job.func().index_of(job.first + k as u64);
                Err(err
                    .clone()
                    .with_function(job.func().name())
                    .at(job.func().name(), index))
            })
            .collect::<Vec<_>>();
        let failed = sent.len();
        self.assemble(group, sent, failed)
    }
}

/// Packs a job's inputs for the wire when every inbox is one value (on
/// the thread that submits it, while they are in its cache): the proxy then
/// only writes bytes, and a retry sends the same bytes again.
fn pack(job: &mut Job) {
    // Small jobs are coalesced by the proxy instead (two buffers per item
    // would cost more than they save).
    if job.packed.is_some()
        || job.inboxes.len() < PACK_FROM
        || !job.inboxes.iter().all(|i| matches!(i.as_slice(), [Ok(_)]))
    {
        return;
    }
    let f = job.func();
    let plain = f.plain_indices();
    let n = job.inboxes.len();
    let mut indices = Vec::with_capacity(n * 8);
    for k in 0..n as u64 {
        let index = job.first + k;
        pack_index(if plain { index } else { f.index_of(index) }, &mut indices);
    }
    const NULL: Value = Value::Null;
    let mut values = Vec::new();
    encode_values(
        job.inboxes.iter().map(|i| match i.as_slice() {
            [Ok(v)] => v,
            _ => &NULL, // not reached: checked above
        }),
        &mut values,
    );
    job.packed = Some(PackedInputs {
        values,
        indices,
        len: n,
    });
    job.inboxes = Vec::new();
}

/// Splits a group into the items answered here and what goes on the wire.
fn prepare(group: &[Job]) -> (Plan, Wire<'_>) {
    if group.iter().all(|j| j.packed.is_some()) {
        // Packed when submitted: the bytes go as they are.
        let (mut values, mut indices) = (Vec::new(), Vec::new());
        for p in group.iter().filter_map(|j| j.packed.as_ref()) {
            values.extend_from_slice(&p.values);
            indices.extend_from_slice(&p.indices);
        }
        let plan = Plan {
            answered: Vec::new(),
            positions: None,
            sent: indices.len() / 8,
        };
        let values = WireValues::Packed(values);
        return (plan, Wire { indices, values });
    }
    // Every inbox of one input: values go packed; else every item as a list.
    let single = group
        .iter()
        .all(|j| j.inboxes.iter().all(|i| i.as_slice().len() == 1));
    prepare_as(group, single)
}

/// As [`prepare`], with every item's input packed as one value (`single`:
/// every inbox holds one input) or its inputs as a list.
fn prepare_as(group: &[Job], single: bool) -> (Plan, Wire<'_>) {
    let total: usize = group.iter().map(Job::len).sum();
    let mut indices = Vec::with_capacity(total * 8);
    let mut packed = Vec::new();
    if single {
        packed.reserve(total * 3);
    }
    let mut manys = Vec::new();
    let mut answered = Vec::new();
    let mut positions: Option<Vec<(usize, usize)>> = None;
    for (g, job) in group.iter().enumerate() {
        let f = job.func();
        let plain = f.plain_indices();
        for (k, inbox) in job.inboxes.iter().enumerate() {
            let index = job.first + k as u64;
            // The node's own index, so errors name the right input item.
            let node_index = |f: &dyn TaskFn| if plain { index } else { f.index_of(index) };
            if single {
                if let [Ok(v)] = inbox.as_slice() {
                    if let Some(p) = positions.as_mut() {
                        p.push((g, k));
                    }
                    pack_index(node_index(f), &mut indices);
                    encode_values(std::iter::once(v), &mut packed);
                    continue;
                }
            }
            let items = inbox.as_slice();
            if items.iter().any(Result::is_err) {
                // The first item answered here: from now on the sent items'
                // places are recorded (every earlier item was sent).
                positions.get_or_insert_with(|| {
                    let mut p: Vec<(usize, usize)> = group[..g]
                        .iter()
                        .enumerate()
                        .flat_map(|(h, j)| (0..j.inboxes.len()).map(move |i| (h, i)))
                        .collect();
                    p.extend((0..k).map(|i| (g, i)));
                    p
                });
                answered.push((g, k, f.call(index, items)));
                continue;
            }
            if let Some(p) = positions.as_mut() {
                p.push((g, k));
            }
            pack_index(node_index(f), &mut indices);
            manys.push(items.iter().filter_map(|i| i.as_ref().ok()).collect());
        }
    }
    let plan = Plan {
        answered,
        positions,
        sent: indices.len() / 8,
    };
    let values = if single {
        WireValues::Packed(packed)
    } else {
        WireValues::Many(manys)
    };
    (plan, Wire { indices, values })
}

/// The results of one job, with its number of failures.
struct Batch {
    items: Vec<Item>,
    failed: usize,
}

impl Batch {
    /// A job's results, where at most `failed` items failed: zero means
    /// none, and the items need not be looked at; otherwise they are counted.
    fn new(items: Vec<Item>, failed: usize) -> Batch {
        let failed = if failed == 0 {
            0
        } else {
            items.iter().filter(|r| r.is_err()).count()
        };
        Batch { items, failed }
    }
}

/// Delivers a group's results, sharing the round trip's time between its jobs.
fn deliver_group(group: &[Job], results: Vec<Batch>, elapsed: Duration) {
    let n: usize = results.iter().map(|b| b.items.len()).sum::<usize>().max(1);
    for (job, b) in group.iter().zip(results) {
        let share = elapsed.mul_f64(b.items.len() as f64 / n as f64);
        job.func().on_batch(b.items.len(), b.failed, share);
        job.deliver(job.first, b.items);
    }
}

/// A group sent to the worker whose result has not been read yet.
struct InFlight {
    group: Vec<Job>,
    plan: Plan,
    id: u64,
    sent: Instant,
}

/// Reads the oldest in-flight group's result and delivers it. When the
/// worker died, that group is handled as a death during its exchange, and
/// every later in-flight group (which the worker had not started) runs
/// again from the start.
fn complete_oldest(
    inflight: &mut VecDeque<InFlight>,
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    let Some(f) = inflight.pop_front() else {
        return;
    };
    let outcome = match conn.as_mut() {
        Some(c) => receive_result(c, f.id, f.plan.sent, None),
        None => Outcome::Died("no worker process".into()),
    };
    match outcome {
        Outcome::Done(items, failed) => {
            sh.consecutive_deaths.store(0, Ordering::Relaxed);
            let results = f.plan.assemble(&f.group, items, failed);
            deliver_group(&f.group, results, f.sent.elapsed());
        }
        Outcome::Died(msg) | Outcome::NoWorker(msg) => {
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            let later: Vec<InFlight> = inflight.drain(..).collect();
            // The group the worker was running when it died: as in
            // `handle_group`, jobs that were only together for speed run
            // again alone; a lone job uses its retries, or fails.
            let (retries, backoff) = f.group[0].retry_policy();
            if f.group.len() > 1 {
                for job in &f.group {
                    handle_group(std::slice::from_ref(job), slot, conn, respawn, sh);
                }
            } else if retries > 0 {
                std::thread::sleep(backoff);
                handle_group_from(&f.group, 1, slot, conn, respawn, sh);
            } else {
                let err = ItemError::new(ErrorKind::WorkerDied, msg);
                let results = f.plan.charge(&f.group, &err);
                deliver_group(&f.group, results, f.sent.elapsed());
            }
            // The worker had not started these: they run again.
            for l in later {
                handle_group(&l.group, slot, conn, respawn, sh);
            }
        }
        Outcome::TimedOut(_) => {
            // Pipelined groups have no timeout; kept total for the compiler.
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            let later: Vec<InFlight> = inflight.drain(..).collect();
            handle_group(&f.group, slot, conn, respawn, sh);
            for l in later {
                handle_group(&l.group, slot, conn, respawn, sh);
            }
        }
    }
}

/// Frames sent to one worker before the first of them is answered.
const PIPELINE_DEPTH: usize = 2;

/// Most jobs coalesced into one frame.
const MAX_GROUP: usize = 256;

/// Jobs of at least this many items are packed when submitted.
const PACK_FROM: usize = 32;

type Respawn<'a> = dyn Fn(&mut Option<Conn>) -> std::result::Result<(), String> + 'a;

/// Sends a group of jobs of one task as one frame and delivers every item;
/// a lone job whose worker died or timed out is retried per the task's policy.
fn handle_group(
    group: &[Job],
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    handle_group_from(group, 0, slot, conn, respawn, sh);
}

fn handle_group_from(
    group: &[Job],
    mut attempt: u32,
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
) {
    let (retries, backoff) = group[0].retry_policy();
    loop {
        let last = group.len() == 1 && attempt >= retries;
        let started = Instant::now();
        match attempt_group(group, slot, conn, respawn, sh, last) {
            Some(results) => {
                deliver_group(group, results, started.elapsed());
                return;
            }
            None if group.len() > 1 => {
                // The jobs were only together for speed: run each on its
                // own, so a poison item costs its own job, not the group.
                for job in group {
                    handle_group(std::slice::from_ref(job), slot, conn, respawn, sh);
                }
                return;
            }
            None => {
                attempt += 1;
                tracing::debug!(
                    "retrying a job after its worker died (attempt {attempt} of {retries})"
                );
                std::thread::sleep(backoff);
            }
        }
    }
}

/// One try: the results per job, or `None` when the worker died or timed
/// out and the caller will retry (a group, or a job with retries left).
fn attempt_group(
    group: &[Job],
    slot: usize,
    conn: &mut Option<Conn>,
    respawn: &Respawn<'_>,
    sh: &Shared,
    last: bool,
) -> Option<Vec<Batch>> {
    let lead = &group[0];
    // Items with an error in their inbox never leave the host: the Worker
    // passes the error on without calling anything.
    let (plan, wire) = prepare(group);
    if plan.sent == 0 {
        return Some(plan.assemble(group, Vec::new(), 0));
    }
    let outcome = match respawn(conn) {
        Err(e) => Outcome::NoWorker(e),
        Ok(()) => match conn.as_mut() {
            Some(c) => exchange(
                c,
                lead,
                &wire,
                sh.next_id.fetch_add(1, Ordering::Relaxed) as u64,
            ),
            None => Outcome::Died("no worker process".into()),
        },
    };
    let failure = match outcome {
        Outcome::Done(items, failed) => {
            sh.consecutive_deaths.store(0, Ordering::Relaxed);
            return Some(plan.assemble(group, items, failed));
        }
        Outcome::TimedOut(t) => {
            let how = conn.as_mut().map(Conn::kill).unwrap_or_default();
            *conn = None;
            lock(&sh.pids).remove(&slot);
            if !last {
                return None;
            }
            ItemError::new(
                ErrorKind::Timeout,
                format!(
                    "no result within {t:?}; the worker process was killed ({how}) and replaced"
                ),
            )
        }
        Outcome::Died(msg) => {
            // A death during a job is charged to the job's items (a poison
            // item with retries must not take the pool down).
            if let Some(mut c) = conn.take() {
                let _ = c.kill();
            }
            lock(&sh.pids).remove(&slot);
            if group.len() > 1 || !last {
                return None;
            }
            ItemError::new(ErrorKind::WorkerDied, msg)
        }
        Outcome::NoWorker(msg) => {
            // Workers that cannot even start or shake hands: after
            // `max_deaths` in a row the pool gives up instead of looping.
            lock(&sh.pids).remove(&slot);
            let deaths = sh.consecutive_deaths.fetch_add(1, Ordering::Relaxed) + 1;
            if deaths >= sh.max_deaths {
                let m = format!(
                        "{} pool `{}` gave up after {deaths} consecutive failed worker starts (last: {msg})",
                        sh.kind, sh.name
                    );
                tracing::error!("{m}");
                *lock(&sh.given_up) = Some(m);
            }
            if !last && lock(&sh.given_up).is_none() {
                return None;
            }
            ItemError::new(ErrorKind::WorkerDied, msg)
        }
    };
    Some(plan.charge(group, &failure))
}

fn proxy(slot: usize, cmd: &WorkerCommand, rx: &Receiver<Job>, sh: &Shared) {
    let mut conn: Option<Conn> = None;
    let respawn = |conn: &mut Option<Conn>| -> std::result::Result<(), String> {
        if conn.is_none() {
            if sh.stopping.load(Ordering::Acquire) {
                return Err("the pool is shutting down".into());
            }
            // Back off after deaths: a remote host that drops us is not hammered.
            let deaths = sh.consecutive_deaths.load(Ordering::Relaxed) as u32;
            if deaths > 0 {
                std::thread::sleep(
                    Duration::from_millis(25u64 << deaths.min(6)).min(Duration::from_secs(2)),
                );
            }
            let c = Conn::spawn(cmd)?;
            lock(&sh.pids).insert(slot, c.child.id());
            *conn = Some(c);
        }
        Ok(())
    };
    // Start eagerly so the first job does not pay for the start-up.
    if let Err(e) = respawn(&mut conn) {
        tracing::warn!("{} pool `{}`: {e}", sh.kind, sh.name);
    }
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Groups sent but not answered yet: the next frame is sent before the
    // previous result is read, so the worker never waits for the host.
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let complete = |inflight: &mut VecDeque<InFlight>, conn: &mut Option<Conn>| {
        complete_oldest(inflight, slot, conn, &respawn, sh);
    };
    loop {
        let job = match pending.pop_front() {
            Some(j) => j,
            None if inflight.is_empty() => match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
            None => match rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Empty) => {
                    complete(&mut inflight, &mut conn);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            },
        };
        if let Some(msg) = lock(&sh.given_up).clone() {
            job.fail_all(ItemError::new(ErrorKind::WorkerDied, msg));
            continue;
        }
        if sh.stopping.load(Ordering::Acquire) {
            job.fail_all(ItemError::new(
                ErrorKind::WorkerDied,
                "the pool shut down before this item ran",
            ));
            continue;
        }
        // Coalesce queued jobs of the same task into one frame (small
        // strides would otherwise pay a round trip per job), taking no more
        // than this worker's share of the queue.
        let mut group = vec![job];
        if group[0].timeout().is_none() {
            let share = (rx.len() / sh.size.max(1)).min(MAX_GROUP);
            while group.len() <= share {
                match rx.try_recv() {
                    // Packed jobs travel with packed jobs only.
                    Ok(j)
                        if Arc::ptr_eq(&j.task, &group[0].task)
                            && j.packed.is_some() == group[0].packed.is_some() =>
                    {
                        group.push(j)
                    }
                    Ok(j) => {
                        pending.push_back(j);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if group[0].timeout().is_some() || conn.is_none() {
            // Timeouts are measured per exchange, and starting a worker
            // (counting failed starts, giving up) happens there: one
            // exchange at a time.
            while !inflight.is_empty() {
                complete(&mut inflight, &mut conn);
            }
            handle_group(&group, slot, &mut conn, &respawn, sh);
            continue;
        }
        let (plan, wire) = prepare(&group);
        if plan.sent == 0 {
            let results = plan.assemble(&group, Vec::new(), 0);
            deliver_group(&group, results, Duration::ZERO);
            continue;
        }
        let id = sh.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        let sent = match conn.as_mut() {
            Some(c) => send_task(c, &group[0], &wire, id),
            None => Err("no worker process".into()),
        };
        drop(wire);
        match sent {
            Ok(()) => inflight.push_back(InFlight {
                group,
                plan,
                id,
                sent: Instant::now(),
            }),
            Err(_) => {
                // The worker is gone: what it held is charged as usual,
                // then this group (which it never took) runs again.
                while !inflight.is_empty() {
                    complete(&mut inflight, &mut conn);
                }
                handle_group(&group, slot, &mut conn, &respawn, sh);
            }
        }
        if inflight.len() >= PIPELINE_DEPTH {
            complete(&mut inflight, &mut conn);
        }
    }
    while !inflight.is_empty() {
        complete(&mut inflight, &mut conn);
    }
    if let Some(c) = conn.take() {
        c.shutdown();
    }
    lock(&sh.pids).remove(&slot);
}

impl Pool for ProcessPool {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn size(&self) -> usize {
        self.size
    }

    fn commands(&self) -> Vec<(String, usize)> {
        self.commands.iter().map(|(c, n)| (c.line(), *n)).collect()
    }

    fn accepts(&self, f: &dyn TaskFn) -> Result<()> {
        match f.worker() {
            Some(w) => match w.first_closure() {
                None => Ok(()),
                Some(name) => Err(Error::NotPortable {
                    function: name.to_string(),
                    pool: self.kind.to_string(),
                }),
            },
            None => Err(Error::NotPortable {
                function: f.name(),
                pool: self.kind.to_string(),
            }),
        }
    }

    fn whole_strides(&self) -> bool {
        true
    }

    fn submit(&self, mut job: Job) {
        pack(&mut job);
        super::queue_or_fail(lock(&self.tx).as_ref(), job);
    }

    fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        drop(lock(&self.tx).take());
        let proxies: Vec<_> = std::mem::take(&mut *lock(&self.proxies));
        // Jobs in progress get a grace period; then the children still
        // holding one are killed (their items become errors) and reaped.
        let deadline = Instant::now() + Duration::from_secs(2);
        while proxies.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if proxies.iter().any(|h| !h.is_finished()) {
            for pid in lock(&self.shared.pids).values() {
                kill_group(*pid);
            }
        }
        for h in proxies {
            let _ = h.join();
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numap::task::TaskCtx;
    use crate::pool::{Inbox, WorkerTask};
    use crate::protocol::packed::unpack_indices;
    use crate::worker::Worker;

    fn job(ctx: &Arc<TaskCtx>, first: u64, inboxes: Vec<Inbox>) -> Job {
        Job::new(ctx.clone(), first, inboxes)
    }

    fn ctx() -> Arc<TaskCtx> {
        let f = WorkerTask::new(Worker::typed("double", |x: i64| x * 2), "node");
        Arc::new(TaskCtx::new(0, Arc::new(f), None, None, false))
    }

    fn ok(i: i64) -> Inbox {
        Inbox::One(Ok(Value::Int(i)))
    }

    #[test]
    fn a_job_packed_when_submitted_sends_the_same_bytes_and_keeps_its_count() {
        let c = ctx();
        let (a, b): (Vec<Inbox>, Vec<Inbox>) =
            ((0..40).map(ok).collect(), (0..32).map(ok).collect());
        let group = vec![job(&c, 5, a.clone()), job(&c, 45, b.clone())];
        let (plan, wire) = prepare(&group);
        let (want_indices, want_values) = match wire.values {
            WireValues::Packed(v) => (wire.indices, v),
            WireValues::Many(_) => panic!("packed values expected"),
        };
        let mut packed: Vec<Job> = vec![job(&c, 5, a), job(&c, 45, b)];
        packed.iter_mut().for_each(pack);
        assert!(packed
            .iter()
            .all(|j| j.inboxes.is_empty() && j.packed.is_some()));
        assert_eq!(packed.iter().map(Job::len).collect::<Vec<_>>(), [40, 32]);
        let (plan2, wire) = prepare(&packed);
        let WireValues::Packed(values) = wire.values else {
            panic!("packed values expected")
        };
        assert_eq!((wire.indices, values), (want_indices, want_values));
        assert_eq!((plan.sent, plan2.sent), (72, 72));
        // A death charges every item of a packed job, by its own index.
        let back = plan2.charge(&packed, &ItemError::new(ErrorKind::WorkerDied, "gone"));
        let idx: Vec<Option<u64>> = back
            .into_iter()
            .flat_map(|b| b.items)
            .map(|r| r.unwrap_err().index())
            .collect();
        assert_eq!(idx, (5..77).map(Some).collect::<Vec<_>>());
        // An inbox with an error is not packed: it is answered on the host.
        let mut j = job(
            &c,
            0,
            vec![
                ok(1),
                Inbox::One(Err(ItemError::new(ErrorKind::Function, "x"))),
            ],
        );
        pack(&mut j);
        assert!(j.packed.is_none() && j.inboxes.len() == 2);
    }

    #[test]
    fn an_inbox_of_one_input_goes_packed_however_it_is_held() {
        let c = ctx();
        let one = Inbox::Many(vec![Ok(Value::Int(9))].into());
        let group = vec![job(&c, 0, vec![ok(7), one])];
        let (_, wire) = prepare(&group);
        let WireValues::Packed(v) = &wire.values else {
            panic!("packed values expected")
        };
        let values = crate::protocol::packed::decode_values(v).unwrap();
        assert_eq!(values, [Value::Int(7), Value::Int(9)]);
    }

    #[test]
    fn a_group_with_several_inputs_per_item_goes_as_lists() {
        let c = ctx();
        let two = Inbox::Many(vec![Ok(Value::Int(1)), Ok(Value::Int(2))].into());
        let bad = Inbox::One(Err(ItemError::new(ErrorKind::Function, "upstream")));
        let group = vec![job(&c, 0, vec![ok(7), bad, two])];
        let (plan, wire) = prepare(&group);
        assert_eq!(plan.positions, Some(vec![(0, 0), (0, 2)]));
        assert_eq!(unpack_indices(&wire.indices), [0, 2]);
        let WireValues::Many(v) = &wire.values else {
            panic!("lists expected")
        };
        assert_eq!(
            v,
            &[vec![&Value::Int(7)], vec![&Value::Int(1), &Value::Int(2)]]
        );
    }

    #[test]
    fn a_group_of_plain_values_goes_out_whole_and_is_cut_back_per_job() {
        let c = ctx();
        let group = vec![job(&c, 0, vec![ok(1), ok(2)]), job(&c, 2, vec![ok(3)])];
        let (plan, wire) = prepare(&group);
        assert!(plan.positions.is_none() && plan.answered.is_empty());
        assert_eq!(unpack_indices(&wire.indices), [0, 1, 2]);
        let WireValues::Packed(v) = &wire.values else {
            panic!("packed values expected")
        };
        let values = crate::protocol::packed::decode_values(v).unwrap();
        assert_eq!(values, [Value::Int(1), Value::Int(2), Value::Int(3)]);
        drop(wire);
        let back = plan.assemble(&group, (10..13).map(|i| Ok(Value::Int(i))).collect(), 0);
        let back: Vec<Vec<Item>> = back.into_iter().map(|b| b.items).collect();
        assert_eq!(
            back,
            vec![
                vec![Ok(Value::Int(10)), Ok(Value::Int(11))],
                vec![Ok(Value::Int(12))]
            ]
        );
    }

    #[test]
    fn error_inboxes_stay_here_and_results_land_in_their_places() {
        let c = ctx();
        let bad = Inbox::One(Err(ItemError::new(ErrorKind::Function, "upstream")));
        let group = vec![job(&c, 0, vec![ok(1), ok(2)]), job(&c, 2, vec![bad, ok(4)])];
        let (plan, wire) = prepare(&group);
        assert_eq!(plan.answered.len(), 1);
        assert_eq!(plan.positions, Some(vec![(0, 0), (0, 1), (1, 1)]));
        assert_eq!(unpack_indices(&wire.indices), [0, 1, 3]);
        let WireValues::Packed(v) = &wire.values else {
            panic!("packed values expected")
        };
        let values = crate::protocol::packed::decode_values(v).unwrap();
        assert_eq!(values, [Value::Int(1), Value::Int(2), Value::Int(4)]);
        drop(wire);
        let back = plan.assemble(&group, (10..13).map(|i| Ok(Value::Int(i))).collect(), 0);
        assert_eq!(back[1].failed, 1, "the error passed on counts as a failure");
        let back: Vec<Vec<Item>> = back.into_iter().map(|b| b.items).collect();
        assert_eq!(back[0], vec![Ok(Value::Int(10)), Ok(Value::Int(11))]);
        let passed = back[1][0].as_ref().unwrap_err();
        assert_eq!(passed.message(), "upstream");
        assert_eq!(back[1][1], Ok(Value::Int(12)));

        // A death charges exactly the items sent, each with its own index.
        let (plan, _) = prepare(&group);
        let back = plan.charge(&group, &ItemError::new(ErrorKind::WorkerDied, "gone"));
        assert_eq!((back[0].failed, back[1].failed), (2, 2));
        let back: Vec<Vec<Item>> = back.into_iter().map(|b| b.items).collect();
        let died: Vec<Option<u64>> = back
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().err())
            .filter(|e| e.kind() == ErrorKind::WorkerDied)
            .map(ItemError::index)
            .collect();
        assert_eq!(died, [Some(0), Some(1), Some(3)]);
        assert_eq!(back[1][0].as_ref().unwrap_err().message(), "upstream");
    }
}
