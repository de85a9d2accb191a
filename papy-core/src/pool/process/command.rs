//! How a worker process is started: [`WorkerCommand`], and the markers of
//! worker processes and test binaries.

use std::ffi::OsString;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::run_key::{
    item_dirs_env, item_root, run_key_hex, ITEM_DIRS_ENV, ITEM_ROOT_ENV, RUN_KEY_ENV,
};

pub(super) static TEST_SUPPORT: AtomicBool = AtomicBool::new(false);

/// The name of the test that `papy::enable_test_support!()` adds.
pub const TEST_ENTRY: &str = "__papy_worker_entry";

/// Marks this binary as a test binary with the worker hook test (called by
/// `papy::enable_test_support!()` from a constructor; it only sets a flag).
#[doc(hidden)]
pub fn mark_test_support() {
    TEST_SUPPORT.store(true, Ordering::Release);
}

pub use crate::protocol::WORKER_ENV;

/// How to start one worker process.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    provides: Vec<String>,
    sends: Vec<String>,
    recycle: Recycle,
    pub(super) init: Option<crate::protocol::Call>,
    dir: Option<std::path::PathBuf>,
    /// How messages show it (a shell line as written).
    shown: Option<String>,
}

/// A shell variable assignment word (`NAME=value`).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
    })
}

/// When a worker process is replaced by a fresh one, between batches
/// (`multiprocessing.Pool`'s `maxtasksperchild`, mpire's `worker_lifespan`):
/// a worker that leaks memory, or holds state that must not grow, serves a
/// bounded share of the run. Nothing is lost: the worker has answered
/// everything it was sent when it is told to shut down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recycle {
    /// Replace a worker once it has been sent this many items.
    pub after_items: Option<u64>,
    /// Replace a worker whose resident memory (Linux: `VmRSS`) exceeds
    /// this many bytes after a batch.
    pub above_rss: Option<u64>,
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
            provides: Vec::new(),
            sends: Vec::new(),
            recycle: Recycle::default(),
            init: None,
            dir: None,
            shown: None,
        }
    }

    /// Runs the worker in `dir` (a pipeline file's folder, so that the
    /// relative paths of its command are relative to the file); an empty
    /// path keeps this process's working directory.
    pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        let dir = dir.into();
        self.dir = (!dir.as_os_str().is_empty()).then_some(dir);
        self
    }

    /// A function each worker runs once when it starts, on a null input,
    /// before any item (protocol 2.1): its result is that worker's state
    /// ([`worker_state`](crate::worker_state)). If it fails, the worker's
    /// start fails with its error.
    pub fn init(mut self, call: crate::protocol::Call) -> Self {
        self.init = Some(call);
        self
    }

    /// The functions this host will send to these workers (full registered
    /// names): listed in the host's `Hello`, so a worker refuses any other
    /// (protocol 2.1). Empty (the default): no list, any function.
    pub fn sending(mut self, functions: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sends = functions.into_iter().map(Into::into).collect();
        self
    }

    /// The functions the host's `Hello` declares: those of
    /// [`sending`](Self::sending) and, when that list is not empty, the
    /// [`init`](Self::init) function too (a worker refuses an init its host
    /// did not declare). Empty: any function.
    pub fn declared(&self) -> Vec<String> {
        let mut out = self.sends.clone();
        if let Some(init) = &self.init {
            if !out.is_empty() && !out.contains(&init.function) {
                out.push(init.function.clone());
            }
        }
        out
    }

    /// Replaces each worker by a fresh one as [`Recycle`] says, between
    /// batches.
    ///
    /// ```
    /// use papy_core::pool::Recycle;
    /// let cmd = papy_core::WorkerCommand::new("papy", ["worker", "--stdio"]).recycle(Recycle {
    ///     after_items: Some(10_000),
    ///     above_rss: Some(512 << 20),
    /// });
    /// assert_eq!(cmd.recycling().after_items, Some(10_000));
    /// ```
    pub fn recycle(mut self, recycle: Recycle) -> Self {
        self.recycle = recycle;
        self
    }

    /// When this command's workers are replaced ([`recycle`](Self::recycle)).
    pub fn recycling(&self) -> Recycle {
        self.recycle
    }

    /// Functions this command's workers must run although this process may
    /// not hold them (a worker in another language, a plugin loaded only
    /// there): each worker's `Hello` must list every one, or it is refused
    /// at start with a message naming the missing ones.
    pub fn providing(mut self, functions: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.provides = functions.into_iter().map(Into::into).collect();
        self
    }

    /// The functions required by [`providing`](Self::providing).
    pub fn provides(&self) -> &[String] {
        &self.provides
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

    /// A shell command line, e.g. `ssh host papy worker --stdio`, run as
    /// `sh -c 'exec LINE'` so that the worker is the shell's process. A
    /// line that says `exec` itself, or is more than one simple command
    /// (`;`, `|`, `&&`, a newline, leading `NAME=value` words), runs as it
    /// is written. Messages show the line as written.
    ///
    /// ```
    /// let c = papy_core::WorkerCommand::shell("exec python3 w.py");
    /// assert_eq!(c.line(), "exec python3 w.py");
    /// assert_eq!(c.to_command().get_args().nth(1).unwrap(), "exec python3 w.py");
    /// let c = papy_core::WorkerCommand::shell("python3 w.py");
    /// assert_eq!(c.line(), "python3 w.py");
    /// assert_eq!(c.to_command().get_args().nth(1).unwrap(), "exec python3 w.py");
    /// ```
    pub fn shell(line: &str) -> WorkerCommand {
        let written = line.trim();
        let mut words = written.split_whitespace().skip_while(|w| is_assignment(w));
        let compound = written.contains([';', '|', '\n']) || written.contains("&&");
        let assigns = written.split_whitespace().next().is_some_and(is_assignment);
        let run = if words.next() == Some("exec") || compound || assigns {
            written.to_string()
        } else {
            format!("exec {written}")
        };
        let mut cmd = WorkerCommand::new("sh", ["-c".to_string(), run]);
        cmd.shown = Some(written.to_string());
        cmd
    }

    /// Adds an environment variable for the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> WorkerCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line: the line as written for [`WorkerCommand::shell`],
    /// else program and arguments.
    pub fn line(&self) -> String {
        if let Some(shown) = &self.shown {
            return shown.clone();
        }
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// A [`Command`] for this worker: its program, arguments and
    /// environment, with this run's key (for pools that start workers their
    /// own way, such as broker pools).
    pub fn to_command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .env(RUN_KEY_ENV, run_key_hex())
            .env(ITEM_ROOT_ENV, item_root())
            .env(ITEM_DIRS_ENV, item_dirs_env())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// Whether `other` starts the same process: program, arguments,
    /// environment and folder (what the host says in its `Hello` aside).
    pub(super) fn starts_like(&self, other: &WorkerCommand) -> bool {
        (&self.program, &self.args, &self.env, &self.dir)
            == (&other.program, &other.args, &other.env, &other.dir)
    }
}
