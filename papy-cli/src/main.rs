//! The `papy` command line.
//!
//! `papy run FILE` runs a pipeline file, `papy check FILE` reports every
//! problem in it, `papy graph FILE` draws it, `papy list` shows the
//! registered functions, `papy worker --stdio` serves as a process or
//! remote worker, and `papy worker --redis URL --run RUN` as a broker worker.

/// `eprintln!` that never panics: with stderr a closed pipe (`papy run
/// FILE 2>&1 | head -1`) the message is dropped and [`stderr_closed`]
/// turns true, which ends a run as a closed stdout does. It shadows std's
/// macro in every module of this crate.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::to_stderr(format_args!($($arg)*))
    };
}

static STDERR_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line to stderr; a closed stderr is remembered, not a panic.
fn to_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    if let Err(e) = err.write_fmt(args).and_then(|()| err.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDERR_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader left.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `true` once a line could not be written because stderr's reader left.
fn stderr_closed() -> bool {
    STDERR_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

mod check;
mod graph;
mod inspect;
mod list;
mod live;
mod logging;
mod new;
mod pipeline;
mod run;
mod sdk;
mod worker;
mod worker_test;

use clap::{Parser, Subcommand};

/// papy: parallel pipelines of worker functions.
#[derive(Parser)]
#[command(name = "papy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered worker functions with their parameters and imports.
    List(list::ListArgs),
    /// Serve as a process or remote worker on stdin/stdout, or as a broker worker (--redis).
    Worker(worker::WorkerArgs),
    /// Run a pipeline file.
    Run(run::RunArgs),
    /// Check a pipeline file and print every problem with its position.
    Check(check::CheckArgs),
    /// Print a pipeline file's DAG as DOT or Mermaid.
    Graph(graph::GraphArgs),
    /// Play the host against a worker command and report each protocol
    /// violation (`papy worker-test -- python3 my_worker.py`).
    WorkerTest(worker_test::WorkerTestArgs),
    /// Create something new (`papy new plugin NAME`).
    #[command(subcommand)]
    New(new::NewArgs),
    /// Opens one plugin file and exits (run by papy itself to open plugin
    /// files in a child process first; see inspect.rs).
    #[command(name = "__inspect-plugin", hide = true)]
    InspectPlugin {
        /// The plugin file.
        path: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _log_guard = match logging::init(&cli.log) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("papy: error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    papy_broker::install();
    // Worker panics become error items carrying their message: printing
    // each one too (with a backtrace under RUST_BACKTRACE) floods stderr.
    papy_core::quiet_caught_panics();
    if matches!(
        cli.command,
        Command::List(_) | Command::Run(_) | Command::Check(_) | Command::Graph(_)
    ) {
        // Plugins these commands open are opened in a child first: one
        // that crashes while opening is an error naming it, not a crash.
        inspect::install();
    }
    let result = match cli.command {
        Command::InspectPlugin { path } => return inspect::serve(&path),
        Command::WorkerTest(args) => return worker_test::run(&args),
        Command::List(args) => list::run(&args, &mut std::io::stdout().lock()),
        Command::Worker(args) => worker::run(&args),
        Command::Run(args) => return run::run(&args, cli.log.verbose()),
        Command::Check(args) => return check::run(&args),
        Command::Graph(args) => return graph::run(&args),
        Command::New(args) => new::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `papy list | head`: the reader has what it wanted.
        Err(e) if closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("papy: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
