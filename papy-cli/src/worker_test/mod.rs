//! `papy worker-test -- COMMAND...`: plays the host against a worker
//! implementation (any language) and reports every protocol violation it
//! finds (docs/protocol.md), one line each, in one run. Passes against
//! `papy worker --stdio` and the Python SDK (`python/papy_worker`).
//!
//! The checks: the greeting; the worker's `Hello` (version, codec,
//! `functions`, the `plugins` pairs and their hashes, the shape of
//! `signatures`); a task naming a function the host did not declare (refused
//! item by item); an unknown function (an error per item, in place, with
//! valid kinds); inboxes of several values; two tasks in flight answered in
//! order; exit on `Shutdown`. Then, on fresh workers, the host's `init`: an
//! init naming an undeclared function is refused, and an init that fails is
//! answered by a `Result` of id 2^64-1 holding its error, after which the
//! worker exits.

mod conn;
mod hello;
mod init;
mod report;
mod tasks;

use std::process::ExitCode;
use std::time::Duration;

use papy_core::protocol::{Frame, Hello};

use conn::Conn;
use init::init_check;
use report::{q, Report};

/// Arguments of `papy worker-test`.
#[derive(clap::Args)]
pub(crate) struct WorkerTestArgs {
    /// Seconds to wait for each answer of the worker.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    timeout: f64,
    /// The worker's command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// A function no worker has. The host declares it, so a task naming it
/// reaches the worker's own lookup (and runs nothing on its machine).
const UNKNOWN: &str = "worker_test.no_such_function";
/// What a task or init names as "undeclared" when the worker lists no
/// function of its own (otherwise it names the worker's first function, so
/// a worker that ignores the host's list would run it and be caught).
const UNDECLARED: &str = "worker_test.undeclared_function";

/// Runs the checks; exit 0 when the worker passes them all, 1 otherwise, 2
/// when it cannot be started.
pub(crate) fn run(args: &WorkerTestArgs) -> ExitCode {
    let Ok(wait) = Duration::try_from_secs_f64(args.timeout) else {
        eprintln!("papy: error: --timeout {} is not a duration", args.timeout);
        return ExitCode::from(2);
    };
    let mut conn = match Conn::start(&args.command, wait) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("papy: error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("papy worker-test: {}", args.command.join(" "));
    let mut report = Report::default();
    let own = session(&mut conn, &mut report);
    conn.end();
    if let Some(own) = own {
        let undeclared = own.unwrap_or_else(|| UNDECLARED.to_string());
        init_check(
            args,
            wait,
            &mut report,
            "init naming an undeclared function: refused",
            &undeclared,
            &format!(
                "no error: it ran the init `{}`, which the host did not declare",
                q(&undeclared)
            ),
        );
        init_check(
            args,
            wait,
            &mut report,
            "failing init: its error, then exit",
            UNKNOWN,
            &format!("no error for an init of `{UNKNOWN}`, which it does not have"),
        );
    }
    if report.violations == 0 {
        println!("the worker follows the protocol");
        ExitCode::SUCCESS
    } else {
        println!("{} violation(s)", report.violations);
        ExitCode::from(1)
    }
}

/// The main conversation. `None` when the worker's `Hello` could not be
/// read or speaks another major version (nothing more can be tested);
/// else the worker's first function, if it lists one.
fn session(conn: &mut Conn, report: &mut Report) -> Option<Option<String>> {
    let functions = hello::check(conn, report)?;
    let own = functions.into_iter().find(|f| f != UNKNOWN);
    let undeclared = own.clone().unwrap_or_else(|| UNDECLARED.to_string());
    let host = Hello::here(vec![UNKNOWN.to_string()], Vec::new());
    if let Err(e) = conn.send(&Frame::Hello(host)) {
        report.fail("host Hello accepted", e);
        return Some(own);
    }
    tasks::check(conn, report, &undeclared);
    tasks::shutdown(conn, report);
    Some(own)
}
