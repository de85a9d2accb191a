//! The host's `init`, on fresh workers: one naming an undeclared function
//! is refused, one that fails is answered by a `Result` of id 2^64-1
//! holding its error, then the worker exits.

use std::time::Duration;

use papy_core::protocol::{Call, Frame, Hello, INIT_ID};
use papy_core::{ErrorKind, Value};

use super::conn::Conn;
use super::hello::hello_of;
use super::report::{q, seen, Report};
use super::{WorkerTestArgs, UNKNOWN};

/// Starts a fresh worker whose host `Hello` asks for the init `function`
/// (the host declaring only [`UNKNOWN`]), and reports under `rule`
/// unless the worker answers with a `Result` of id 2^64-1 holding one nil
/// value and one error at position 0, then exits without being asked.
/// `no_error` says what an answer without an error means.
pub(super) fn init_check(
    args: &WorkerTestArgs,
    wait: Duration,
    report: &mut Report,
    rule: &str,
    function: &str,
    no_error: &str,
) {
    let mut conn = match Conn::start(&args.command, wait) {
        Ok(c) => c,
        Err(e) => return report.fail(rule, format!("the worker does not start again: {e}")),
    };
    let problems = init_problems(&mut conn, function, no_error);
    conn.end();
    report.rule(rule, &problems, "");
}

/// What is wrong with the worker's answer to an init of `function`.
fn init_problems(conn: &mut Conn, function: &str, no_error: &str) -> Vec<String> {
    if let Err(e) = conn.greeting().and_then(|()| hello_of(conn)) {
        return vec![format!("the worker's start fails this time: {e}")];
    }
    let mut host = Hello::here(vec![UNKNOWN.to_string()], Vec::new());
    host.init = Some(Call {
        function: function.to_string(),
        args: Vec::new(),
    });
    if let Err(e) = conn.send(&Frame::Hello(host)) {
        return vec![e];
    }
    let results = match conn.next("the init's Result") {
        Ok(Frame::Result { id, results }) if id == INIT_ID => results,
        Ok(Frame::Result { id, .. }) => {
            return vec![format!(
                "a Result of id {id}, expected the init's (2^64-1, as a uint 64)"
            )]
        }
        Ok(Frame::Fatal { message }) => {
            return vec![format!(
                "a Fatal frame (`{}`), expected a Result of id 2^64-1 holding the init's error",
                q(&message)
            )]
        }
        Ok(other) => {
            return vec![format!(
                "a {} frame, expected a Result of id 2^64-1",
                other.kind()
            )]
        }
        Err(e) => return vec![e],
    };
    let mut out = Vec::new();
    match results.values.as_slice() {
        [Value::Null] => {}
        [v] => out.push(format!("its value is {}, not nil", seen(v))),
        vs => out.push(format!("{} values, not one (nil)", vs.len())),
    }
    match results.errors.as_slice() {
        [] => out.push(no_error.to_string()),
        [(0, e)] => {
            if ErrorKind::from_code(e.kind).is_none() {
                out.push(format!("error kind {} is not a known code (0-7)", e.kind));
            }
        }
        [(p, _)] => out.push(format!("its error is at position {p}, not 0")),
        es => out.push(format!("{} errors, at most one", es.len())),
    }
    if !results.errors.is_empty() {
        // Told nothing more, the worker ends: its stdin stays open.
        if let Err(e) = conn.exit_status() {
            out.push(format!("after its init failed: {e} (it must exit)"));
        }
    }
    out
}
