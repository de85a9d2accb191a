//! Tasks sent to the worker: an undeclared function refused, an unknown
//! one failing item by item, inboxes of several values, two tasks in
//! flight, then `Shutdown`; each answer's shape checked.

use std::collections::BTreeSet;

use papy_core::protocol::{Call, Frame, WireInboxes, WireResults};
use papy_core::{ErrorKind, Value};

use super::conn::Conn;
use super::report::{q, Report};
use super::UNKNOWN;

/// The task checks, `undeclared` naming a function the host did not
/// declare.
pub(super) fn check(conn: &mut Conn, report: &mut Report, undeclared: &str) {
    let single = |n: i64| WireInboxes::Single((0..n).map(Value::Int).collect());
    // A function the host did not declare: refused item by item, never run.
    let refused = |r: &WireResults, items: usize| {
        let ran: Vec<usize> = (0..items)
            .filter(|k| !r.errors.iter().any(|(p, _)| *p as usize == *k))
            .collect();
        if ran.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "it ran `{}`, which the host did not declare: items {ran:?} have values, not refusal errors",
                q(undeclared)
            )]
        }
    };
    task_check(
        conn,
        report,
        "undeclared function: refused",
        vec![(1, undeclared, single(2))],
        refused,
        &format!("`{}` refused item by item", q(undeclared)),
    );
    let every = |r: &WireResults, items: usize| {
        if r.errors.len() == items {
            Vec::new()
        } else {
            vec![format!(
                "{} errors for {items} items of a function it does not have",
                r.errors.len()
            )]
        }
    };
    let values = vec![Value::Int(1), Value::from("two"), Value::Null];
    task_check(
        conn,
        report,
        "unknown function: an error per item",
        vec![(2, UNKNOWN, WireInboxes::Single(values))],
        every,
        "",
    );
    // Inboxes of several values (a join's items).
    let many = WireInboxes::Many(vec![
        vec![Value::Int(1), Value::Int(2)],
        vec![Value::Int(3), Value::Null],
    ]);
    task_check(
        conn,
        report,
        "inboxes of several values",
        vec![(3, UNKNOWN, many)],
        every,
        "",
    );
    // Two tasks in flight (the host sends the next before reading a
    // result), on the unknown function: no function of the worker runs, so
    // the test has no side effect on the worker's machine.
    task_check(
        conn,
        report,
        "two tasks in flight, answered in order",
        vec![(4, UNKNOWN, single(2)), (5, UNKNOWN, single(3))],
        every,
        "",
    );
}

/// Asks the worker to exit, and checks that it does.
pub(super) fn shutdown(conn: &mut Conn, report: &mut Report) {
    let rule = "exits on Shutdown";
    if let Some(why) = &conn.over {
        report.skip(rule, &format!("the conversation ended ({why})"));
        return;
    }
    let r = conn.send(&Frame::Shutdown).and_then(|()| {
        let status = conn.exit_status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("exited with {status} after Shutdown"))
        }
    });
    report.rule(rule, &r.err().into_iter().collect::<Vec<_>>(), "");
}

/// Everything wrong with `frame` as the answer to task `id` of `items`
/// items, with the results when it is a `Result` at all.
fn result_problems(frame: Frame, id: u64, items: usize) -> (Option<WireResults>, Vec<String>) {
    let results = match frame {
        Frame::Result { id: got, results } => {
            if got != id {
                return (
                    None,
                    vec![format!(
                        "the Result answers task {got}, expected {id} (results come back in order)"
                    )],
                );
            }
            results
        }
        Frame::Fatal { message } => {
            return (
                None,
                vec![format!(
                    "a Fatal frame (`{}`), expected the Result of task {id}",
                    q(&message)
                )],
            )
        }
        other => {
            return (
                None,
                vec![format!(
                    "a {} frame, expected the Result of task {id}",
                    other.kind()
                )],
            )
        }
    };
    let mut out = Vec::new();
    if results.values.len() != items {
        out.push(format!(
            "task {id}: {} values for {items} items (one per item, nil where it failed)",
            results.values.len()
        ));
    }
    let mut positions = BTreeSet::new();
    for (pos, e) in &results.errors {
        if *pos as usize >= items {
            out.push(format!(
                "task {id}: an error at position {pos} of a {items}-item task"
            ));
        } else if !positions.insert(*pos) {
            out.push(format!("task {id}: two errors at position {pos}"));
        }
        if ErrorKind::from_code(e.kind).is_none() {
            out.push(format!(
                "task {id}: error kind {} is not a known code (0-7)",
                e.kind
            ));
        }
    }
    (Some(results), out)
}

/// Sends `tasks` (all of them before reading an answer), reads their
/// Results in order and reports, under `rule`, what is wrong with their
/// shape and what `expect` finds wrong with their contents (or `ok` with
/// `note`).
fn task_check(
    conn: &mut Conn,
    report: &mut Report,
    rule: &str,
    tasks: Vec<(u64, &str, WireInboxes)>,
    expect: impl Fn(&WireResults, usize) -> Vec<String>,
    note: &str,
) {
    if let Some(why) = &conn.over {
        report.skip(rule, &format!("the conversation ended ({why})"));
        return;
    }
    let mut problems = Vec::new();
    let mut sent = Vec::new();
    for (id, function, inboxes) in tasks {
        let items = match &inboxes {
            WireInboxes::Single(v) => v.len(),
            WireInboxes::Many(v) => v.len(),
        };
        let frame = Frame::Task {
            id,
            chain: vec![Call {
                function: function.to_string(),
                args: Vec::new(),
            }],
            node: "worker-test".into(),
            indices: (0..items as u64).collect(),
            inboxes,
        };
        match conn.send(&frame) {
            Ok(()) => sent.push((id, items)),
            Err(e) => {
                problems.push(e);
                break;
            }
        }
    }
    for (id, items) in sent {
        match conn.next(&format!("the Result of task {id}")) {
            Ok(frame) => {
                let (results, mut found) = result_problems(frame, id, items);
                if let Some(r) = results {
                    found.extend(expect(&r, items));
                }
                problems.extend(found);
            }
            Err(e) => {
                problems.push(e);
                if conn.over.is_some() {
                    break;
                }
            }
        }
    }
    report.rule(rule, &problems, note);
}
