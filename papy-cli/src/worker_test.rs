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

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use papy_core::error::quote_peer;
use papy_core::protocol::{
    decode_payload, read_frame_bytes, skip_to_greeting, write_frame, Call, Frame, Hello,
    ProtocolError, WireInboxes, WireResults, INIT_ID, MAJOR, MAX_FRAME,
};
use papy_core::{ErrorKind, Map, Value};

/// Arguments of `papy worker-test`.
#[derive(clap::Args)]
pub struct WorkerTestArgs {
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
/// Most lines printed for one rule; the others are counted.
const LINES_PER_RULE: usize = 10;

/// What the reader thread saw.
enum Seen {
    Greeting,
    /// A frame's payload, not yet decoded: one that does not decode is a
    /// violation, but the framing holds and the conversation goes on.
    Payload(Vec<u8>),
    Error(String),
}

/// Peer text as a message may quote it: bounded, on one line.
fn q(s: &str) -> String {
    quote_peer(s).escape_debug().to_string()
}

/// What a peer sent where something else belonged, for messages.
fn seen(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Int(i) => format!("an integer ({i})"),
        Value::Float(x) => format!("a float ({x})"),
        Value::Str(s) => format!("a string (`{}`)", q(s)),
        Value::Bytes(b) => format!("binary ({} bytes)", b.len()),
        Value::List(l) => format!("a list of {}", l.len()),
        Value::Map(m) => format!("a map of {}", m.len()),
    }
}

/// Prints the checks' outcomes and counts the violations.
#[derive(Default)]
struct Report {
    violations: usize,
}

impl Report {
    fn ok(&self, rule: &str, note: &str) {
        if note.is_empty() {
            println!("ok    {rule}");
        } else {
            println!("ok    {rule}: {note}");
        }
    }

    /// One line per violation of `rule` (at most [`LINES_PER_RULE`], the
    /// rest counted), or `ok` with `note` when there is none.
    fn rule(&mut self, rule: &str, violations: &[String], note: &str) {
        if violations.is_empty() {
            return self.ok(rule, note);
        }
        self.violations += violations.len();
        for v in violations.iter().take(LINES_PER_RULE) {
            println!("FAIL  {rule}: {v}");
        }
        if violations.len() > LINES_PER_RULE {
            println!(
                "FAIL  {rule}: {} more violations like these",
                violations.len() - LINES_PER_RULE
            );
        }
    }

    fn fail(&mut self, rule: &str, what: String) {
        self.rule(rule, &[what], "");
    }

    fn skip(&self, rule: &str, why: &str) {
        println!("skip  {rule}: not run, {why}");
    }
}

/// One run of the worker's command, and what it writes.
struct Conn {
    child: Child,
    seen: Receiver<Seen>,
    wait: Duration,
    /// Why the conversation cannot go on: the worker closed its stdout,
    /// broke the framing or did not answer in time (a late answer would be
    /// taken for the next one).
    over: Option<String>,
}

impl Conn {
    fn start(command: &[String], wait: Duration) -> Result<Conn, String> {
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

    fn greeting(&mut self) -> Result<(), String> {
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
    fn payload(&mut self, what: &str) -> Result<Vec<u8>, String> {
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
    fn next(&mut self, what: &str) -> Result<Frame, String> {
        let p = self.payload(what)?;
        decode_payload(&p).map_err(|e| format!("{what} does not decode: {e}"))
    }

    fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let sent = match self.child.stdin.as_mut() {
            Some(stdin) => write_frame(stdin, frame)
                .and_then(|()| stdin.flush().map_err(Into::into))
                .map_err(|e| e.to_string()),
            None => Err("no stdin".into()),
        };
        sent.map_err(|e| self.end_with(&format!("writing a {} frame", frame.kind()), e))
    }

    /// Waits for the worker to exit on its own (its stdin stays open).
    fn exit_status(&mut self) -> Result<ExitStatus, String> {
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
    fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the checks; exit 0 when the worker passes them all, 1 otherwise, 2
/// when it cannot be started.
pub fn run(args: &WorkerTestArgs) -> ExitCode {
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

/// Reads the worker's `Hello` (after the greeting), as a map of fields,
/// with the frame's payload.
fn hello_of(conn: &mut Conn) -> Result<(Map, Vec<u8>), String> {
    let payload = conn.payload("Hello")?;
    let frame: Value =
        decode_payload(&payload).map_err(|e| format!("the first frame does not decode: {e}"))?;
    let Value::Map(frame) = frame else {
        return Err(format!("the first frame is {}, not Hello", seen(&frame)));
    };
    match frame.get(&Value::from("Hello")) {
        Some(Value::Map(h)) if frame.len() == 1 => Ok(((**h).clone(), payload)),
        Some(other) if frame.len() == 1 => Err(format!("the Hello is {}, not a map", seen(other))),
        _ => {
            let kinds: Vec<String> = frame.keys().map(seen).collect();
            Err(format!(
                "the first frame is {}, not Hello",
                quote_peer(&kinds.join(", "))
            ))
        }
    }
}

/// The main conversation. `None` when the worker's `Hello` could not be
/// read or speaks another major version (nothing more can be tested);
/// else the worker's first function, if it lists one.
fn session(conn: &mut Conn, report: &mut Report) -> Option<Option<String>> {
    if let Err(e) = conn.greeting() {
        report.fail("greeting", e);
        return None;
    }
    report.ok("greeting", "");
    let (hello, payload) = match hello_of(conn) {
        Ok(h) => h,
        Err(e) => {
            report.fail("Hello first", e);
            return None;
        }
    };
    let functions: Vec<String> = match hello.get(&Value::from("functions")) {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|f| match f {
                Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut core = Vec::new();
    let major = hello_version(&hello, &mut core);
    hello_fields(&hello, &mut core);
    let plugins = hello_plugins(&hello);
    let signatures = hello_signatures(&hello);
    // A Hello this command reads may still be one the host refuses: the
    // host decodes it into its types.
    if core.is_empty() && plugins.is_empty() && signatures.is_empty() {
        if let Err(e) = decode_payload::<Frame>(&payload) {
            core.push(format!("the host cannot decode it: {e}"));
        }
    }
    let note = format!(
        "functions: {}",
        if functions.is_empty() {
            "(none)".to_string()
        } else {
            q(&functions.join(", "))
        }
    );
    report.rule("Hello", &core, &note);
    report.rule("Hello plugins", &plugins, "");
    report.rule("Hello signatures", &signatures, "");
    if major != Some(i64::from(MAJOR)) {
        report.skip("the rest", "the worker does not speak this major version");
        return None;
    }
    let own = functions.into_iter().find(|f| f != UNKNOWN);
    let undeclared = own.clone().unwrap_or_else(|| UNDECLARED.to_string());
    let host = Hello::here(vec![UNKNOWN.to_string()], Vec::new());
    if let Err(e) = conn.send(&Frame::Hello(host)) {
        report.fail("host Hello accepted", e);
        return Some(own);
    }
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
                q(&undeclared)
            )]
        }
    };
    task_check(
        conn,
        report,
        "undeclared function: refused",
        vec![(1, undeclared.as_str(), single(2))],
        refused,
        &format!("`{}` refused item by item", q(&undeclared)),
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
    let rule = "exits on Shutdown";
    if let Some(why) = &conn.over {
        report.skip(rule, &format!("the conversation ended ({why})"));
        return Some(own);
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
    Some(own)
}

/// Checks `major`, `minor`; returns the major version when it is an integer.
fn hello_version(h: &Map, out: &mut Vec<String>) -> Option<i64> {
    let major = match h.get(&Value::from("major")) {
        Some(Value::Int(m)) => {
            if *m != i64::from(MAJOR) {
                out.push(format!(
                    "speaks {m}.{}, the host speaks {MAJOR}.x",
                    match h.get(&Value::from("minor")) {
                        Some(Value::Int(n)) => n.to_string(),
                        _ => "?".into(),
                    }
                ));
            }
            Some(*m)
        }
        other => {
            out.push(field_is("major", other, "an integer"));
            None
        }
    };
    match h.get(&Value::from("minor")) {
        Some(Value::Int(n)) if u16::try_from(*n).is_ok() => {}
        other => out.push(field_is("minor", other, "an integer 0-65535")),
    }
    major
}

/// `field` is missing or holds `v`, where `wanted` belonged.
fn field_is(field: &str, v: Option<&Value>, wanted: &str) -> String {
    match v {
        None => format!("no `{field}` (it must be {wanted})"),
        Some(v) => format!("`{field}` is {}, not {wanted}", seen(v)),
    }
}

/// Checks `codec`, `papy_version` and `functions`.
fn hello_fields(h: &Map, out: &mut Vec<String>) {
    match h.get(&Value::from("codec")) {
        Some(Value::Str(c)) if &**c == "msgpack" => {}
        Some(Value::Str(c)) => out.push(format!("codec `{}`, expected `msgpack`", q(c))),
        other => out.push(field_is("codec", other, "the string `msgpack`")),
    }
    match h.get(&Value::from("papy_version")) {
        Some(Value::Str(_)) => {}
        other => out.push(field_is("papy_version", other, "a string")),
    }
    match h.get(&Value::from("functions")) {
        Some(Value::List(l)) => {
            for (k, f) in l.iter().enumerate() {
                if !matches!(f, Value::Str(_)) {
                    out.push(field_is(&format!("functions[{k}]"), Some(f), "a string"));
                }
            }
        }
        other => out.push(field_is("functions", other, "a list of names")),
    }
}

/// A plugin file's hash as the Hello must give it: its SHA-256 in 64
/// lowercase hexadecimal digits.
fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The violations of `plugins`: a list of `[name, sha256]` pairs of
/// strings, the hash in 64 lowercase hexadecimal digits.
fn hello_plugins(h: &Map) -> Vec<String> {
    let mut out = Vec::new();
    let list = match h.get(&Value::from("plugins")) {
        Some(Value::List(l)) => l,
        other => {
            out.push(field_is(
                "plugins",
                other,
                "a list of [name, sha256] pairs (`[]` without plugins)",
            ));
            return out;
        }
    };
    for (k, p) in list.iter().enumerate() {
        match p {
            Value::List(pair) => match pair.as_slice() {
                [Value::Str(name), Value::Str(hash)] => {
                    if !is_sha256_hex(hash) {
                        out.push(format!(
                            "`plugins[{k}]` (`{}`): hash `{}` is not 64 lowercase hexadecimal digits (the file's SHA-256)",
                            q(name),
                            q(hash)
                        ));
                    }
                }
                [Value::Str(_), other] => out.push(field_is(
                    &format!("plugins[{k}][1]"),
                    Some(other),
                    "a string",
                )),
                [other, _] => out.push(field_is(
                    &format!("plugins[{k}][0]"),
                    Some(other),
                    "a string",
                )),
                _ => out.push(format!(
                    "`plugins[{k}]` has {} elements, not 2 ([name, sha256])",
                    pair.len()
                )),
            },
            other => out.push(field_is(
                &format!("plugins[{k}]"),
                Some(other),
                "a [name, sha256] pair",
            )),
        }
    }
    out
}

/// The violations of `signatures` (optional): a list of `{name, params,
/// inputs, doc}`, `params` nil or a list of `{name, optional, ty}`.
fn hello_signatures(h: &Map) -> Vec<String> {
    let mut out = Vec::new();
    let list = match h.get(&Value::from("signatures")) {
        None => return out,
        Some(Value::List(l)) => l,
        other => {
            out.push(field_is("signatures", other, "a list (or no field)"));
            return out;
        }
    };
    let string = |v: &Value| matches!(v, Value::Str(_));
    for (k, s) in list.iter().enumerate() {
        let at = format!("signatures[{k}]");
        let Value::Map(s) = s else {
            out.push(field_is(&at, Some(s), "a map {name, params, inputs, doc}"));
            continue;
        };
        want(&mut out, s, &at, "name", "a string", string);
        want(&mut out, s, &at, "doc", "a string", string);
        want(
            &mut out,
            s,
            &at,
            "inputs",
            "nil or an integer 0-4294967295",
            |v| match v {
                Value::Null => true,
                Value::Int(n) => u32::try_from(*n).is_ok(),
                _ => false,
            },
        );
        let params = format!("{at}.params");
        match s.get(&Value::from("params")) {
            Some(Value::Null) => {}
            Some(Value::List(ps)) => {
                for (j, p) in ps.iter().enumerate() {
                    let at = format!("{params}[{j}]");
                    let Value::Map(p) = p else {
                        out.push(field_is(&at, Some(p), "a map {name, optional, ty}"));
                        continue;
                    };
                    want(&mut out, p, &at, "name", "a string", string);
                    want(&mut out, p, &at, "optional", "a boolean", |v| {
                        matches!(v, Value::Bool(_))
                    });
                    want(
                        &mut out,
                        p,
                        &at,
                        "ty",
                        "a string (the type as the worker's language writes it, or \"\")",
                        string,
                    );
                }
            }
            other => out.push(field_is(&params, other, "nil or a list of parameters")),
        }
    }
    out
}

/// Pushes a violation unless `m[field]` is there and `fits`.
fn want(
    out: &mut Vec<String>,
    m: &Map,
    at: &str,
    field: &str,
    wanted: &str,
    fits: impl Fn(&Value) -> bool,
) {
    let v = m.get(&Value::from(field));
    if !v.is_some_and(&fits) {
        out.push(field_is(&format!("{at}.{field}"), v, wanted));
    }
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

/// Starts a fresh worker whose host `Hello` asks for the init `function`
/// (the host declaring only [`UNKNOWN`]), and reports under `rule`
/// unless the worker answers with a `Result` of id 2^64-1 holding one nil
/// value and one error at position 0, then exits without being asked.
/// `no_error` says what an answer without an error means.
fn init_check(
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
