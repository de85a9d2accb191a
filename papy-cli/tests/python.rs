//! Python functions as pipeline nodes (issue 18): the example mixing a Rust
//! plugin node on threads with a node on Python worker processes (the
//! `papy_worker` SDK in `python/`) gives its expected output, and a Python
//! exception is an error item naming the exception.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// python3 with the SDK's one dependency (msgpack): installed with pip
/// from `python/` when missing, as `.ci/run` does.
fn python_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let has = || {
            Command::new("python3")
                .args(["-c", "import msgpack"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has() {
            let _ = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet"])
                .arg(root().join("python"))
                .status();
        }
        assert!(
            has(),
            "python3 with msgpack is needed: `python3 -m pip install ./python` (the papy_worker SDK and msgpack)"
        );
    });
}

fn papy(args: &[&str]) -> Output {
    python_ready();
    // The plugins as this test built them, wherever the build goes
    // (CARGO_TARGET_DIR), not where the example files look by default.
    Command::new(env!("CARGO_BIN_EXE_papy"))
        .current_dir(root())
        .env("PAPY_PLUGIN_PATH", support::plugin_dir())
        .args(args)
        .output()
        .expect("run papy")
}

#[test]
fn the_python_node_example_gives_its_expected_output() {
    let out = papy(&["run", "-q", "examples/pipelines/python_node.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(root().join("examples/pipelines/expected/python_node.out"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let out = papy(&["check", "examples/pipelines/python_node.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The worker command runs in the pipeline file's folder: its script path
/// is relative to the file, like every path of the file, so the example
/// runs from any working directory.
#[test]
fn the_python_node_example_runs_from_any_folder() {
    let elsewhere = tempfile::tempdir().unwrap();
    let file = root().join("examples/pipelines/python_node.toml");
    python_ready();
    let out = Command::new(env!("CARGO_BIN_EXE_papy"))
        .current_dir(elsewhere.path())
        .env("PAPY_PLUGIN_PATH", support::plugin_dir())
        .arg("run")
        .arg("-q")
        .arg(&file)
        .output()
        .expect("run papy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(root().join("examples/pipelines/expected/python_node.out"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn a_python_exception_is_a_function_error_item_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "ok\nBOOM\nfine\n").unwrap();
    let errors = dir.path().join("errors.jsonl");
    let set = format!("inputs.phrases.path={}", input.display());
    let out = papy(&[
        "run",
        "-q",
        "examples/pipelines/python_node.toml",
        "--set",
        &set,
        "--errors",
        errors.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK !\nFINE !\n");
    let line = std::fs::read_to_string(&errors).unwrap();
    let e: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(e["kind"], "function error", "{e}");
    assert_eq!(e["function"], "py.shout", "{e}");
    assert_eq!(e["line"], 2, "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("ValueError: cannot shout 'boom'")
            && message.contains("shout_worker.py"),
        "{message}"
    );
}

#[test]
fn worker_test_passes_the_rust_and_the_python_workers() {
    let papy_bin = env!("CARGO_BIN_EXE_papy");
    for command in [
        vec![papy_bin, "worker", "--stdio"],
        vec!["python3", "examples/python/shout_worker.py"],
    ] {
        let mut args = vec!["worker-test", "--"];
        args.extend(&command);
        let out = papy(&args);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{command:?}:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            report.contains("the worker follows the protocol"),
            "{report}"
        );
        assert!(report.contains("ok    two tasks in flight"), "{report}");
        assert!(report.contains("ok    exits on Shutdown"), "{report}");
    }
}

#[test]
fn worker_test_reports_a_broken_workers_violations() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.py");
    // Speaks almost the protocol: a `json` codec in its Hello, and error
    // kinds as strings in its results.
    std::fs::write(
        &broken,
        r#"
import struct, sys, msgpack
out, inp = sys.stdout.buffer, sys.stdin.buffer
def send(f):
    b = msgpack.packb(f, use_bin_type=True)
    out.write(struct.pack(">I", len(b)) + b); out.flush()
def read():
    (n,) = struct.unpack(">I", inp.read(4))
    return msgpack.unpackb(inp.read(n), raw=False)
out.write(b"\0papy-worker\0")
send({"Hello": {"major": 2, "minor": 0, "codec": "json", "papy_version": "0", "functions": [], "plugins": []}})
read()
while True:
    f = read()
    if f == "Shutdown":
        break
    t = f["Task"]
    n = len(t["indices"]) // 8
    send({"Result": {"id": t["id"], "results": {"values": b"\xc0" * n,
        "errors": [[i, {"kind": "function", "message": "no", "function": None, "path": [], "index": None}] for i in range(n)]}}})
"#,
    )
    .unwrap();
    let out = papy(&[
        "worker-test",
        "--timeout",
        "5",
        "--",
        "python3",
        broken.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        !report.contains("the worker follows the protocol"),
        "{report}"
    );
    // Both violations in one run: the codec, and the error kinds.
    assert!(
        report.contains("FAIL  Hello: codec `json`, expected `msgpack`"),
        "{report}"
    );
    assert!(
        report.contains("FAIL  unknown function: an error per item")
            && report.contains("does not decode"),
        "{report}"
    );
}

/// A worker speaking msgpack directly (no SDK), correct unless the words
/// on its command line name violations: `hash` (malformed plugin hashes),
/// `signatures` (malformed signatures), `undeclared` (runs tasks and inits
/// naming functions its host did not declare), `init_stays` (goes on after
/// its init failed). It has one function, `bad.echo`.
const PLAIN_WORKER: &str = r#"
import struct, sys, msgpack
BAD = set(sys.argv[1:])
out, inp = sys.stdout.buffer, sys.stdin.buffer
INIT_ID = (1 << 64) - 1
def send(f):
    b = msgpack.packb(f, use_bin_type=True)
    out.write(struct.pack(">I", len(b)) + b); out.flush()
def read():
    h = inp.read(4)
    if len(h) < 4:
        sys.exit(0)
    (n,) = struct.unpack(">I", h)
    return msgpack.unpackb(inp.read(n), raw=False)
def error(message):
    return {"kind": 0, "message": message, "function": None, "path": [], "index": None}
out.write(b"\0papy-worker\0")
hello = {"major": 2, "minor": 1, "codec": "msgpack", "papy_version": "0",
         "functions": ["bad.echo"], "plugins": [["p", "0123456789abcdef" * 4]],
         "signatures": [{"name": "bad.echo", "params": [{"name": "x", "optional": True, "ty": "int"}],
                         "inputs": 1, "doc": "echoes"}]}
if "hash" in BAD:
    hello["plugins"] = [["p", "\u00e9" * 64], ["q", "ABCDEF0123456789" * 4], ["r", "0" * 5000]]
if "signatures" in BAD:
    hello["signatures"] = [{"name": "bad.echo", "params": [{"name": "x", "optional": "yes", "ty": 3}],
                            "inputs": -1}, "nope"]
send({"Hello": hello})
host = read()["Hello"]
declared = set(host.get("functions") or [])
def run(f, value):
    if declared and f not in declared and "undeclared" not in BAD:
        return None, "%s is not among the functions this worker's host declared" % f
    if f != "bad.echo":
        return None, "no function %s" % f
    return value, None
init = host.get("init")
if init:
    _, e = run(init["function"], None)
    send({"Result": {"id": INIT_ID, "results": {"values": msgpack.packb(None),
                                                "errors": [[0, error(e)]] if e else []}}})
    if e and "init_stays" not in BAD:
        sys.exit(0)
while True:
    f = read()
    if f == "Shutdown":
        break
    t = f["Task"]
    if "Single" in t["inboxes"]:
        u = msgpack.Unpacker(raw=False)
        u.feed(t["inboxes"]["Single"])
        items = list(u)
    else:
        items = t["inboxes"]["Many"]
    values, errors = [], []
    for k, item in enumerate(items):
        v, e = run(t["chain"][0]["function"], item)
        values.append(msgpack.packb(v, use_bin_type=True))
        if e:
            errors.append([k, error(e)])
    send({"Result": {"id": t["id"], "results": {"values": b"".join(values), "errors": errors}}})
"#;

/// `papy worker-test` against [`PLAIN_WORKER`] with the violations `bad`:
/// its exit code and its report's `FAIL` lines.
fn worker_test_of_plain_worker(bad: &[&str]) -> (Option<i32>, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plain.py");
    std::fs::write(&script, PLAIN_WORKER).unwrap();
    // The timeout bounds each wait for the worker (its greeting included):
    // a Python start on a loaded 2-core machine took more than 2 s once.
    // Only the `init_stays` checks wait it out in full.
    let mut args = vec![
        "worker-test",
        "--timeout",
        "8",
        "--",
        "python3",
        script.to_str().unwrap(),
    ];
    args.extend(bad);
    let out = papy(&args);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let fails = report
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_string)
        .collect();
    (out.status.code(), report, fails)
}

#[test]
fn worker_test_passes_the_plain_worker_without_violations() {
    let (code, report, fails) = worker_test_of_plain_worker(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert!(fails.is_empty(), "{report}");
    assert!(
        report.contains("ok    undeclared function: refused: `bad.echo` refused item by item"),
        "{report}"
    );
    assert!(
        report.contains("ok    init naming an undeclared function: refused"),
        "{report}"
    );
    assert!(
        report.contains("ok    failing init: its error, then exit"),
        "{report}"
    );
}

#[test]
fn worker_test_reports_malformed_plugin_hashes() {
    let (code, report, fails) = worker_test_of_plain_worker(&["hash"]);
    assert_eq!(code, Some(1), "{report}");
    let e = "\u{e9}".repeat(64);
    let upper = "ABCDEF0123456789".repeat(4);
    assert_eq!(
        fails[..2],
        [
            format!("FAIL  Hello plugins: `plugins[0]` (`p`): hash `{e}` is not 64 lowercase hexadecimal digits (the file's SHA-256)"),
            format!("FAIL  Hello plugins: `plugins[1]` (`q`): hash `{upper}` is not 64 lowercase hexadecimal digits (the file's SHA-256)"),
        ],
        "{report}"
    );
    // A long hash is quoted bounded.
    assert_eq!(fails.len(), 3, "{report}");
    assert!(
        fails[2].starts_with("FAIL  Hello plugins: `plugins[2]` (`r`): hash `000")
            && fails[2].contains("... (5000 bytes in all)` is not")
            && fails[2].len() < 1200,
        "{}",
        fails[2]
    );
    assert!(report.contains("3 violation(s)"), "{report}");
}

#[test]
fn worker_test_reports_malformed_signatures() {
    let (code, report, fails) = worker_test_of_plain_worker(&["signatures"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        fails,
        [
            "FAIL  Hello signatures: no `signatures[0].doc` (it must be a string)",
            "FAIL  Hello signatures: `signatures[0].inputs` is an integer (-1), not nil or an integer 0-4294967295",
            "FAIL  Hello signatures: `signatures[0].params[0].optional` is a string (`yes`), not a boolean",
            "FAIL  Hello signatures: `signatures[0].params[0].ty` is an integer (3), not a string (the type as the worker's language writes it, or \"\")",
            "FAIL  Hello signatures: `signatures[1]` is a string (`nope`), not a map {name, params, inputs, doc}",
        ],
        "{report}"
    );
}

#[test]
fn worker_test_reports_a_worker_running_undeclared_functions() {
    let (code, report, fails) = worker_test_of_plain_worker(&["undeclared"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        fails,
        [
            "FAIL  undeclared function: refused: it ran `bad.echo`, which the host did not declare: items [0, 1] have values, not refusal errors",
            "FAIL  init naming an undeclared function: refused: no error: it ran the init `bad.echo`, which the host did not declare",
        ],
        "{report}"
    );
}

#[test]
fn worker_test_reports_a_worker_going_on_after_its_init_failed() {
    let (code, report, fails) = worker_test_of_plain_worker(&["init_stays"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        fails,
        [
            "FAIL  init naming an undeclared function: refused: after its init failed: still running 8s later (it must exit)",
            "FAIL  failing init: its error, then exit: after its init failed: still running 8s later (it must exit)",
        ],
        "{report}"
    );
}

#[test]
fn worker_test_reports_every_violation_in_one_run() {
    let (code, report, fails) =
        worker_test_of_plain_worker(&["hash", "signatures", "undeclared", "init_stays"]);
    assert_eq!(code, Some(1), "{report}");
    for rule in [
        "Hello plugins: `plugins[0]`",
        "Hello plugins: `plugins[2]`",
        "Hello signatures: no `signatures[0].doc`",
        "Hello signatures: `signatures[0].inputs`",
        "Hello signatures: `signatures[1]`",
        "undeclared function: refused: it ran `bad.echo`",
        "init naming an undeclared function: refused: no error",
        "failing init: its error, then exit: after its init failed: still running",
    ] {
        assert!(
            fails
                .iter()
                .any(|l| l.starts_with(&format!("FAIL  {rule}"))),
            "{rule} missing from\n{report}"
        );
    }
    assert_eq!(fails.len(), 11, "{report}");
    assert!(report.contains("11 violation(s)"), "{report}");
    // The checks that hold are still run and pass.
    assert!(report.contains("ok    two tasks in flight"), "{report}");
    assert!(report.contains("ok    exits on Shutdown"), "{report}");
}

// A scenario read top to bottom: its steps share state and splitting them
// would hide the order the test checks.
#[allow(clippy::too_many_lines)]
#[test]
fn check_probe_shows_the_python_signature_and_checks_its_arguments() {
    let file = "examples/pipelines/python_node.toml";
    let out = papy(&["check", "--probe", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("resource `py`: py.shout(inbox, suffix?)"),
        "{stdout}"
    );
    // One argument too many: only the probe knows `py.shout` takes one.
    let extra = r#"pipers.1.worker=[{ function = "py.shout", args = ["!", "extra"] }]"#;
    let out = papy(&["check", file, "--set", extra]);
    assert!(
        out.status.success(),
        "without --probe the count is not known"
    );
    let out = papy(&["check", "--probe", file, "--set", extra]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("py.shout") && stderr.contains("bad arguments"),
        "{stderr}"
    );
    // Keyword arguments bind by name once the parameters are known: `check`
    // probes by itself for them, as `run` does, so both accept the file.
    let by_name = r#"pipers.1.worker=[{ function = "py.shout", kwargs = { suffix = "?" } }]"#;
    for probe in [&[][..], &["--probe"][..]] {
        let mut args = vec!["check"];
        args.extend_from_slice(probe);
        args.extend([file, "--set", by_name]);
        let out = papy(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // ... and refuses, like `run`, a keyword the worker's function lacks.
    let typo = r#"pipers.1.worker=[{ function = "py.shout", kwargs = { sufix = "?" } }]"#;
    let out = papy(&["check", file, "--set", typo]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no parameter named `sufix`"), "{stderr}");
    let out = papy(&["run", "-q", file, "--set", typo]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(stderr.trim_end()));
    // `papy run` probes by itself when keyword arguments need it.
    let out = papy(&["run", "-q", file, "--set", by_name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("PARALLEL PIPELINES?\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = papy(&[
        "check",
        "--probe",
        file,
        "--set",
        r#"pipers.1.worker=[{ function = "py.shout", kwargs = { sufix = "?" } }]"#,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sufix"), "{stderr}");
    // A piper elsewhere (here on the threads) cannot call a probed function.
    let out = papy(&[
        "check",
        "--probe",
        file,
        "--set",
        r#"pipers.0.worker=["py.shout"]"#,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "piper `lower` calls `py.shout`, which only the workers of resource `py` provide"
        ),
        "{stderr}"
    );
}

#[test]
fn a_python_init_runs_once_per_worker_and_its_calls_see_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("inits");
    let init = format!(
        r#"resources.py.init={{ function = "py.count_init", args = [{:?}] }}"#,
        log.display().to_string()
    );
    let out = papy(&[
        "run",
        "-q",
        "examples/pipelines/python_node.toml",
        "--set",
        r#"resources.py.functions=["py.greet", "py.count_init"]"#,
        "--set",
        &init,
        "--set",
        r#"pipers.1.worker=["py.greet"]"#,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inits: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("init ").to_string())
        .collect();
    // One init per worker started (two at most: a worker still starting
    // when the short run ends may not have been), never two in one.
    let distinct: std::collections::BTreeSet<&String> = inits.iter().collect();
    assert_eq!(distinct.len(), inits.len(), "{inits:?}");
    assert!(!inits.is_empty() && inits.len() <= 2, "{inits:?}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let state = v[1].as_str().unwrap_or_default();
        let pid = state.trim_start_matches("hello from ");
        assert!(
            inits.iter().any(|p| p == pid),
            "{line}: not from an init of {inits:?}"
        );
    }
}

/// `recycle_after` and `recycle_above_mb` work for a `remote` resource (a
/// Python worker here): each worker is replaced by a fresh run of its
/// command, and no item is lost.
#[test]
fn a_python_worker_is_recycled_after_n_items_or_above_its_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("examples/python/shout_worker.py");
    let file = dir.path().join("recycled.toml");
    let run = |recycle: &str| {
        std::fs::write(
            &file,
            format!(
                "[resources.py]\nkind = \"remote\"\nstride = 1\n\
                 remote = [{{ command = \"exec python3 '{}'\", workers = 1 }}]\n\
                 functions = [\"py.pid\"]\n{recycle}\n\
                 [inputs.n]\nkind = \"range\"\nstart = 0\nend = 12\n\
                 [[pipers]]\nname = \"pid\"\nresource = \"py\"\ninputs = [\"n\"]\nworker = [\"py.pid\"]\n\
                 [outputs.o]\npiper = \"pid\"\npath = \"-\"\n",
                script.display()
            ),
        )
        .unwrap();
        let check = papy(&["check", file.to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{recycle}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let out = papy(&["run", "-q", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{recycle}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut per_pid = std::collections::BTreeMap::<String, usize>::new();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            *per_pid.entry(line.to_string()).or_default() += 1;
        }
        assert_eq!(
            stdout.lines().count(),
            12,
            "{recycle}: nothing lost: {stdout}"
        );
        per_pid
    };
    let per_pid = run("recycle_after = 3");
    assert_eq!(per_pid.len(), 4, "12 items, 3 per worker: {per_pid:?}");
    assert!(per_pid.values().all(|&n| n == 3), "{per_pid:?}");
    // A Python interpreter holds more than 1 MiB: replaced between batches.
    let per_pid = run("recycle_above_mb = 1");
    assert!(per_pid.len() > 1, "{per_pid:?}");
    // The limits are checked as for a process resource.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("recycle_above_mb = 1", "recycle_after = 0"),
    )
    .unwrap();
    let check = papy(&["check", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("recycle_after: must be at least 1 item"),
        "{stderr}"
    );
}

/// A Python worker for the error tests: `t.set` returns what msgpack
/// cannot carry, `t.prints` writes to file descriptor 1 and prints,
/// `t.bad_init` fails; with the argument `raw`, a hand-written worker that
/// answers every task with a bad `Result` (an error `kind` as a string),
/// with `text`, one that prints to its stdout after its `Hello`.
const ERROR_WORKER: &str = r#"
import os, struct, sys
sys.path.insert(0, sys.argv[1])
import msgpack
from papy_worker import function, serve

@function("t.set")
def as_set(v):
    return {v}

@function("t.prints")
def prints(v):
    os.write(1, b"Hello from fd 1\n")
    print("hello from print")
    return v

@function("t.bad_init")
def bad_init(_):
    raise RuntimeError("no database here")

@function("t.raw")
def raw(v):
    return v

def frame(f):
    body = msgpack.packb(f, use_bin_type=True)
    sys.stdout.buffer.write(struct.pack(">I", len(body)) + body)
    sys.stdout.buffer.flush()

def read():
    n = struct.unpack(">I", sys.stdin.buffer.read(4))[0]
    return msgpack.unpackb(sys.stdin.buffer.read(n), raw=False)

if len(sys.argv) > 2:
    sys.stdout.buffer.write(b"\0papy-worker\0")
    frame({"Hello": {"major": 2, "minor": 1, "codec": "msgpack", "papy_version": "0",
                     "functions": ["t.set", "t.prints", "t.bad_init", "t.raw"], "plugins": []}})
    read()
    if sys.argv[2] == "text":
        sys.stdout.buffer.write(b"Loading the model...\n")
        sys.stdout.buffer.flush()
    while True:
        task = read()["Task"]
        n = len(task["indices"]) // 8
        errors = [[i, {"kind": "function", "message": "m", "function": None, "path": [], "index": None}]
                  for i in range(n)]
        frame({"Result": {"id": task["id"], "results": {"values": msgpack.packb(None) * n, "errors": errors}}})
else:
    serve()
"#;

/// Runs a one-piper pipeline on the error worker (`mode`: "", "raw" or
/// "text") with `extra` resource settings; returns the error lines written
/// by `--errors` and the output.
fn run_error_worker(
    dir: &Path,
    function: &str,
    mode: &str,
    extra: &str,
) -> (Vec<serde_json::Value>, String) {
    let script = dir.join("errors_worker.py");
    std::fs::write(&script, ERROR_WORKER).unwrap();
    let file = dir.join("errors.toml");
    let errors = dir.join("errors.jsonl");
    let _ = std::fs::remove_file(&errors);
    std::fs::write(
        &file,
        format!(
            "[resources.py]\nkind = \"remote\"\nstride = 1\n\
             remote = [{{ command = \"exec python3 '{}' '{}' {mode}\", workers = 1 }}]\n\
             functions = [\"t.set\", \"t.prints\", \"t.bad_init\", \"t.raw\"]\n{extra}\n\
             [inputs.n]\nkind = \"range\"\nstart = 0\nend = 3\n\
             [[pipers]]\nname = \"node\"\nresource = \"py\"\ninputs = [\"n\"]\nworker = [\"{function}\"]\n\
             [outputs.o]\npiper = \"node\"\npath = \"-\"\n",
            script.display(),
            root().join("python").display()
        ),
    )
    .unwrap();
    let out = papy(&[
        "run",
        "-q",
        "--allow-errors",
        "--errors",
        errors.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&errors)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An error names the function to blame: the one whose result could not
/// be sent, the init that failed, none for a bad frame (not the node); a
/// bad frame names its frame and field; text on a worker's stdout is named
/// as such; commands show as written.
#[test]
fn error_items_name_the_function_to_blame_and_what_went_wrong() {
    python_ready();
    let dir = tempfile::tempdir().unwrap();
    // A result msgpack cannot carry (a set): the function that returned it.
    let (errors, _) = run_error_worker(dir.path(), "t.set", "", "");
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert_eq!(e["function"], "t.set", "{e}");
        assert_eq!(e["kind"], "conversion error", "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("result of type set"),
            "{e}"
        );
    }
    // A failed init: the init function, not the node.
    let (errors, _) = run_error_worker(dir.path(), "t.prints", "", "init = \"t.bad_init\"");
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert_eq!(e["function"], "t.bad_init", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("no database here"), "{e}");
        // The command as written: no `sh -c`, no doubled `exec`.
        assert!(m.starts_with("`exec python3 '"), "{e}");
        assert!(!m.contains("sh -c") && !m.contains("exec exec"), "{e}");
    }
    // A bad Result frame: no function; its frame and field are named.
    let (errors, _) = run_error_worker(dir.path(), "t.raw", "raw", "");
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert!(e["function"].is_null(), "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains("Result frame, field `Result.results.errors[0][1].kind`"),
            "{e}"
        );
    }
    // Text on the protocol's channel is named as text, quoted.
    let (errors, _) = run_error_worker(dir.path(), "t.raw", "text", "");
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains(
                "the worker wrote text to its stdout (the protocol's channel): \"Loading the model...\\n\""
            ),
            "{e}"
        );
    }
}

/// The SDK protects the protocol's channel at the file-descriptor level:
/// what a function writes to fd 1 (as a C extension or a subprocess would)
/// goes to stderr, not into the frames.
#[test]
fn a_python_function_writing_to_fd_1_does_not_break_the_frames() {
    python_ready();
    let dir = tempfile::tempdir().unwrap();
    let (errors, stdout) = run_error_worker(dir.path(), "t.prints", "", "");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(stdout, "0\n1\n2\n");
}

#[test]
fn killing_a_python_worker_costs_only_its_items_in_flight() {
    use papy_core::registry::Function;
    use papy_core::{
        Args, Dagger, NuMap, Piper, Plumber, ProcessPool, Source, Value, Worker, WorkerCommand,
    };
    python_ready();
    let line = format!(
        "exec python3 {}",
        root().join("examples/python/shout_worker.py").display()
    );
    let cmd = WorkerCommand::shell(&line).providing(["py.slow_pid"]);
    let pool = std::sync::Arc::new(ProcessPool::remote("py", vec![(cmd, 2)]).unwrap());
    // Both workers busy all along: jobs of one item, four in flight.
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(1)
        .buffer(4)
        .build()
        .unwrap();
    let f = std::sync::Arc::new(Function::provided_elsewhere("py.slow_pid", "py"));
    let marks = tempfile::tempdir().unwrap();
    let mark = Value::from(marks.path().display().to_string());
    let w = Worker::from_function(f, Args::Positional(vec![Value::Float(0.05), mark])).unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("slow", w).parallel(&m)).unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("slow").unwrap();
    p.start([("slow", Source::values(0..40i64))]).unwrap();
    p.run().unwrap();
    // Once a worker has started on its items, kill it: with four items in
    // flight it has work until the end of the run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let victim = loop {
        let busy: Vec<u32> = std::fs::read_dir(marks.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let pids = pool.pids();
        if let Some(v) = busy.iter().find(|p| pids.values().any(|q| q == *p)) {
            break *v;
        }
        assert!(std::time::Instant::now() < deadline, "no worker started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let killed = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(p.wait(Some(std::time::Duration::from_secs(60))).unwrap());
    let items = out.take();
    assert_eq!(items.len(), 40, "every item is accounted for");
    let failed: Vec<&papy_core::ItemError> =
        items.iter().filter_map(|i| i.as_ref().err()).collect();
    // The killed worker's job, and at most one sent behind it.
    assert!(!failed.is_empty() && failed.len() <= 2, "{failed:?}");
    for e in &failed {
        assert_eq!(e.kind(), papy_core::ErrorKind::WorkerDied, "{e}");
    }
    // The rest ran, on the survivor and on the replacement.
    let pids: std::collections::BTreeSet<i64> = items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(|v| {
            v.as_list()
                .and_then(|l| l.get(1))
                .and_then(Value::as_int)
                .unwrap()
        })
        .collect();
    assert!(pids.len() >= 2, "{pids:?}");
}
