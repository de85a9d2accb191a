//! `papy worker-test -- COMMAND...`: plays the host against a worker
//! implementation (any language) and reports each protocol violation
//! (docs/protocol.md). Passes against `papy worker --stdio` and the Python
//! SDK (`python/papy_worker`).

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use papy_core::protocol::{
    read_frame, skip_to_greeting, write_frame, Call, Frame, Hello, WireInboxes, WireResults, MAJOR,
    MAX_FRAME,
};
use papy_core::{ErrorKind, Value};

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

/// What the reader thread saw.
enum Seen {
    Greeting,
    Frame(Frame),
    Error(String),
}

struct Session {
    child: Child,
    seen: Receiver<Seen>,
    wait: Duration,
    failures: usize,
}

impl Session {
    fn next(&mut self, what: &str) -> Result<Frame, String> {
        match self.seen.recv_timeout(self.wait) {
            Ok(Seen::Frame(f)) => Ok(f),
            Ok(Seen::Greeting) => Err(format!("{what}: a second greeting")),
            Ok(Seen::Error(e)) => Err(format!("{what}: {e}")),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("{what}: nothing within {:?}", self.wait))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("{what}: the worker closed its stdout"))
            }
        }
    }

    fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        write_frame(stdin, frame)
            .and_then(|()| stdin.flush().map_err(Into::into))
            .map_err(|e| format!("writing a {} frame to the worker: {e}", frame.kind()))
    }

    fn check(&mut self, name: &str, r: Result<String, String>) -> bool {
        match r {
            Ok(note) if note.is_empty() => println!("ok    {name}"),
            Ok(note) => println!("ok    {name}: {note}"),
            Err(why) => {
                self.failures += 1;
                println!("FAIL  {name}: {why}");
                return false;
            }
        }
        true
    }
}

/// Checks a Result frame's shape against the task it answers.
fn result_of(frame: Frame, id: u64, items: usize) -> Result<WireResults, String> {
    let Frame::Result { id: got, results } = frame else {
        return Err(format!("expected a Result frame, got {}", frame.kind()));
    };
    if got != id {
        return Err(format!(
            "the Result answers task {got}, expected {id} (results come back in order)"
        ));
    }
    if results.values.len() != items {
        return Err(format!(
            "{} values for {items} items (one per item, nil where it failed)",
            results.values.len()
        ));
    }
    let mut positions = BTreeSet::new();
    for (pos, e) in &results.errors {
        if *pos as usize >= items {
            return Err(format!("an error at position {pos} of a {items}-item task"));
        }
        if !positions.insert(*pos) {
            return Err(format!("two errors at position {pos}"));
        }
        if ErrorKind::from_code(e.kind).is_none() {
            return Err(format!("error kind {} is not a known code (0-7)", e.kind));
        }
    }
    Ok(results)
}

fn task(id: u64, function: &str, indices: Vec<u64>, inboxes: WireInboxes) -> Frame {
    Frame::Task {
        id,
        chain: vec![Call {
            function: function.to_string(),
            args: Vec::new(),
        }],
        node: "worker-test".into(),
        indices,
        inboxes,
    }
}

/// Runs the checks; exit 0 when the worker passes them all, 1 otherwise, 2
/// when it cannot be started.
pub fn run(args: &WorkerTestArgs) -> ExitCode {
    let Ok(wait) = Duration::try_from_secs_f64(args.timeout) else {
        eprintln!("papy: error: --timeout {} is not a duration", args.timeout);
        return ExitCode::from(2);
    };
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("papy: error: no worker command after `--`");
        return ExitCode::from(2);
    };
    let mut child = match Command::new(program)
        .args(rest)
        .env(papy_core::pool::WORKER_ENV, "stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("papy: error: cannot start `{program}`: {e}");
            return ExitCode::from(2);
        }
    };
    let (tx, seen) = channel();
    let Some(stdout) = child.stdout.take() else {
        eprintln!("papy: error: the worker has no stdout pipe");
        return ExitCode::from(2);
    };
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        match skip_to_greeting(&mut r, 1 << 20) {
            Ok(()) => {
                if tx.send(Seen::Greeting).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Seen::Error(format!("no greeting: {e}")));
                return;
            }
        }
        loop {
            let seen = match read_frame(&mut r, MAX_FRAME) {
                Ok(f) => Seen::Frame(f),
                Err(e) => Seen::Error(format!("the worker's frame does not decode: {e}")),
            };
            let stop = matches!(seen, Seen::Error(_));
            if tx.send(seen).is_err() || stop {
                return;
            }
        }
    });
    let mut s = Session {
        child,
        seen,
        wait,
        failures: 0,
    };
    println!("papy worker-test: {}", args.command.join(" "));
    let ok = checks(&mut s);
    // Whatever happened, the worker does not outlive the test.
    if ok {
        let sent = s.send(&Frame::Shutdown);
        let deadline = Instant::now() + wait;
        let exited = loop {
            match s.child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => break Err(format!("still running {wait:?} after Shutdown")),
                Err(e) => break Err(e.to_string()),
            }
        };
        let r = sent.and(exited).and_then(|status| {
            if status.success() {
                Ok(String::new())
            } else {
                Err(format!("exited with {status} after Shutdown"))
            }
        });
        s.check("exits on Shutdown", r);
    }
    let _ = s.child.kill();
    let _ = s.child.wait();
    if s.failures == 0 {
        println!("the worker follows the protocol");
        ExitCode::SUCCESS
    } else {
        println!("{} violation(s)", s.failures);
        ExitCode::from(1)
    }
}

/// The checks that need a live conversation; `false` when one failed so
/// badly that the rest cannot run.
fn checks(s: &mut Session) -> bool {
    let greeting = match s.seen.recv_timeout(s.wait) {
        Ok(Seen::Greeting) => Ok(String::new()),
        Ok(Seen::Error(e)) => Err(e),
        Ok(Seen::Frame(_)) => Err("a frame before the greeting".into()),
        Err(_) => Err(format!(
            "no greeting `\\0papy-worker\\0` within {:?}",
            s.wait
        )),
    };
    if !s.check("greeting", greeting) {
        return false;
    }
    let hello = s.next("Hello").and_then(|f| match f {
        Frame::Hello(h) => Ok(h),
        other => Err(format!("the first frame is {}, not Hello", other.kind())),
    });
    let hello = match hello {
        Ok(h) => h,
        Err(e) => {
            s.check("Hello first", Err(e));
            return false;
        }
    };
    let version = if hello.major != MAJOR {
        Err(format!(
            "speaks {}.{}, the host speaks {MAJOR}.x",
            hello.major, hello.minor
        ))
    } else if hello.codec != "msgpack" {
        Err(format!("codec `{}`, expected `msgpack`", hello.codec))
    } else {
        Ok(format!(
            "{}.{}, functions: {}",
            hello.major,
            hello.minor,
            if hello.functions.is_empty() {
                "(none)".to_string()
            } else {
                hello.functions.join(", ")
            }
        ))
    };
    if !s.check("Hello", version) {
        return false;
    }
    if let Err(e) = s.send(&Frame::Hello(Hello::here(Vec::new(), Vec::new()))) {
        s.check("host Hello accepted", Err(e));
        return false;
    }
    // An unknown function: one error per item, in place.
    let values = vec![Value::Int(1), Value::from("two"), Value::Null];
    let unknown = "worker_test.no_such_function";
    let r = s
        .send(&task(
            1,
            unknown,
            vec![10, 11, 12],
            WireInboxes::Single(values),
        ))
        .and_then(|()| s.next("the Result of task 1"))
        .and_then(|f| result_of(f, 1, 3))
        .and_then(|r| {
            if r.errors.len() == 3 {
                Ok(String::new())
            } else {
                Err(format!(
                    "{} errors for 3 items of a function it does not have",
                    r.errors.len()
                ))
            }
        });
    if !s.check("unknown function: an error per item", r) {
        return false;
    }
    // Inboxes of several values (a join's items).
    let many = WireInboxes::Many(vec![
        vec![Value::Int(1), Value::Int(2)],
        vec![Value::Int(3), Value::Null],
    ]);
    let r = s
        .send(&task(2, unknown, vec![0, 1], many))
        .and_then(|()| s.next("the Result of task 2"))
        .and_then(|f| result_of(f, 2, 2))
        .map(|_| String::new());
    if !s.check("inboxes of several values", r) {
        return false;
    }
    // Two tasks in flight (the host sends the next before reading a
    // result), on the unknown function: no function of the worker runs, so
    // the test has no side effect on the worker's machine.
    let single = |n: i64| WireInboxes::Single((0..n).map(Value::Int).collect());
    let r = s
        .send(&task(3, unknown, vec![0, 1], single(2)))
        .and_then(|()| s.send(&task(4, unknown, vec![2, 3, 4], single(3))))
        .and_then(|()| s.next("the Result of task 3"))
        .and_then(|fr| result_of(fr, 3, 2))
        .and_then(|_| s.next("the Result of task 4"))
        .and_then(|fr| result_of(fr, 4, 3))
        .map(|_| String::new());
    if !s.check("two tasks in flight, answered in order", r) {
        return false;
    }
    true
}
