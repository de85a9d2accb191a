//! The `papy` binary end to end: example pipelines against expected
//! outputs, `check` on broken files, `graph`, `list --json`, failing items,
//! and Ctrl-C.

#[path = "common/procs.rs"]
mod procs;
#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;
use procs::children_of;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn papy() -> Command {
    let bin = env!("CARGO_BIN_EXE_papy");
    let mut c = Command::new(bin);
    let bin_dir = Path::new(bin)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(&path));
    c.current_dir(root())
        .env("PAPY_PLUGIN_PATH", support::plugin_dir())
        .env("PATH", std::env::join_paths(dirs).unwrap_or_default());
    c
}

fn run(args: &[&str]) -> Output {
    papy().args(args).output().expect("run papy")
}

#[test]
fn example_pipelines_give_the_expected_output() {
    support::plugin_dir();
    for name in ["wordcount", "fork_join", "produce_spawn_consume", "remote"] {
        let file = format!("examples/pipelines/{name}.toml");
        let out = run(&["run", "--quiet", &file]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want =
            std::fs::read_to_string(root().join(format!("examples/pipelines/expected/{name}.out")))
                .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{name}");
    }
}

#[test]
fn the_word_count_reads_many_blocks_or_lines_to_the_same_counts() {
    support::plugin_dir();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    let text = std::fs::read_to_string(root().join("examples/pipelines/data/corpus.txt")).unwrap();
    // 50 copies in blocks of at most 1000 bytes: about 60 blocks, counted
    // by 2 processes; every count is 50 times the shipped corpus's.
    std::fs::write(&corpus, text.repeat(50)).unwrap();
    let want: String =
        std::fs::read_to_string(root().join("examples/pipelines/expected/wordcount.out"))
            .unwrap()
            .lines()
            .map(|l| {
                let (word, n) = l.trim_end_matches(']').rsplit_once(',').unwrap();
                format!("{word},{}]\n", n.parse::<u64>().unwrap() * 50)
            })
            .collect();
    let path = format!("inputs.corpus.path={}", corpus.display());
    let file = "examples/pipelines/wordcount.toml";
    for extra in [
        &["inputs.corpus.bytes=1000"][..],
        &["inputs.corpus.kind=lines", "pipers.0.consume=7"][..],
    ] {
        let mut args = vec!["run", "-q", file, "--set", &path];
        for e in extra {
            args.extend(["--set", e]);
        }
        let out = run(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{extra:?}");
    }
    // A block size of 0 is refused before the run, at its key.
    let out = run(&["check", file, "--set", "inputs.corpus.bytes=0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bytes must be from 1"),
        "{err}"
    );
}

#[test]
fn check_reports_each_problem_with_its_position() {
    support::plugin_dir();
    let cases = [
        ("syntax", "4:1", "expected `]`"),
        ("unknown_function", "9:11", "did you mean papy.ipasser"),
        ("unknown_input", "8:11", "unknown input `numbrs`"),
        ("cycle", "18:11", "would create a cycle"),
        (
            "buffer_stride",
            "4:10",
            "buffer (4) is smaller than stride (8)",
        ),
        ("buffer_zero", "3:10", "buffer must be at least 1"),
        ("missing_plugin", "3:9", "/nonexistent/plugins"),
        ("unknown_field", "10:1", "unknown key `stide` in piper `a`"),
        ("bad_arguments", "9:58", "no parameter named `glue`"),
        ("rate_mismatch", "24:10", "joins inputs of different rates"),
    ];
    for (name, pos, message) in cases {
        let file = format!("papy-cli/tests/broken/{name}.toml");
        let out = run(&["check", &file]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{file}:{pos}: ")), "{name}: {err}");
        assert!(err.contains(message), "{name}: {err}");
        // `run` refuses the same file with the "cannot run" code.
        assert_eq!(run(&["run", "-q", &file]).status.code(), Some(2), "{name}");
    }
    let ok = run(&["check", "examples/pipelines/wordcount.toml"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// One run of `papy check` reports every problem of a file, whatever kind
/// each is (an unknown key, a value of the wrong type, a missing input
/// file, bad arguments, a cycle, a missing output directory), each at its
/// position, sorted by line then column; `run` refuses it with the same
/// lines.
#[test]
fn check_reports_every_problem_of_a_file_at_once_sorted() {
    let file = "papy-cli/tests/broken/many_problems.toml";
    let out = run(&["check", file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = [
        (
            "3:11",
            "resource `pool`: invalid type: floating point `2.5`",
        ),
        ("7:8", "input `words`: cannot read"),
        ("13:1", "unknown key `stide` in piper `a`"),
        ("14:58", "argument `join`: 5 is an integer"),
        ("14:112", "no parameter named `glue`"),
        ("19:10", "invalid type: string \"first\""),
        ("24:11", "would create a cycle"),
        ("29:8", "output `out`: the directory"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, (pos, message)) in lines.iter().zip(want) {
        assert!(
            line.starts_with(&format!("{file}:{pos}: ")) && line.contains(message),
            "`{line}` should be at {pos} and say `{message}`:\n{err}"
        );
    }
    let ran = run(&["run", "-q", file]);
    assert_eq!(ran.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&ran.stderr), err);
}

/// `papy check` and `papy run` agree: every broken file (and `--set`) is
/// refused by both, with the same message at the same place in the user's
/// file, and `run` never gets as far as running an item.
// A scenario read top to bottom: its steps share state and splitting them
// would hide the order the test checks.
#[allow(clippy::too_many_lines)]
#[test]
fn check_and_run_refuse_the_same_files_at_the_same_places() {
    support::plugin_dir();
    // (file, extra arguments, position or `--set ...`, message)
    let cases: &[(&str, &[&str], &str, &str)] = &[
        (
            "timeout_huge",
            &[],
            "14:11",
            "must be a positive number of seconds, at most",
        ),
        ("stride_float", &[], "3:10", "invalid type: floating point"),
        (
            "stride_huge",
            &[],
            "3:10",
            "stride (4611686018427387904) must be at most",
        ),
        ("claim_after_huge", &[], "4:15", "at most"),
        ("empty", &[], "", "the file defines no pipers"),
        (
            "two_unknown_keys",
            &[],
            "2:1",
            "unknown key `workres` in resource `pool`; did you mean `workers`?",
        ),
        (
            "two_unknown_keys",
            &[],
            "3:1",
            "unknown key `bufer` in resource `pool`; did you mean `buffer`?",
        ),
        (
            "unknown_kind",
            &[],
            "2:8",
            "unknown pool kind `proces`; did you mean `process`?",
        ),
        (
            "unset_variable",
            &[],
            "3:8",
            "environment variable `PAPY_TEST_SURELY_UNSET_VARIABLE` is not set",
        ),
        (
            "negative_workers",
            &[],
            "3:11",
            "invalid value: integer `-1`, expected a whole number, 0 or more",
        ),
        // Three mistakes in one resource table are three lines at once.
        (
            "three_in_one_resource",
            &[],
            "3:11",
            "invalid type: floating point `2.5`, expected a whole number, 0 or more",
        ),
        (
            "three_in_one_resource",
            &[],
            "4:17",
            "invalid type: string \"often\", expected a whole number, 0 or more",
        ),
        ("three_in_one_resource", &[], "5:20", "recycle_above_mb"),
        (
            "wrong_type",
            &[],
            "9:58",
            "`papy.njoiner`: argument `join`: 5 is an integer, but the parameter is `String`",
        ),
        (
            "wrong_type",
            &[],
            "9:65",
            "`papy.njoiner`: argument `n`: -1 does not fit the parameter's type `usize`",
        ),
        (
            "wrong_type_plugin",
            &[],
            "12:58",
            "`math.scale`: argument `factor`: \"two\" is a string, but the parameter is `f64`",
        ),
        (
            "duplicate_input",
            &[],
            "13:16",
            "piper `b`: input `a` is listed twice",
        ),
        (
            "stride_without_workers",
            &[],
            "2:10",
            "without `workers`, a thread resource runs one thread per item of its stride (5000)",
        ),
        (
            "unknown_input_kind",
            &[],
            "3:1",
            "unknown key `strat` in input `numbers`; did you mean `start`?",
        ),
        ("unknown_input_kind", &[], "2:8", "unknown variant `rnage`"),
        (
            "missing_input_file",
            &[],
            "3:8",
            "input `words`: cannot read papy-cli/tests/broken/no/such/words.txt",
        ),
        (
            "missing_input_file",
            &[],
            "12:8",
            "output `out`: the directory papy-cli/tests/broken/no/such/dir does not exist",
        ),
        (
            "unordered_join",
            &[],
            "28:10",
            "piper `join` joins inputs, but `fast` deliver(s) items in completion order",
        ),
        (
            "consume_huge",
            &[],
            "10:11",
            "consume (100000000000) must be at most",
        ),
        (
            "arity",
            &[],
            "12:11",
            "`math.add` takes 2 input(s), but the node has 1 input pipe(s)",
        ),
        (
            "buffer_zero",
            &["--set", "resources.prcs.workers=4"],
            "--set resources.prcs.workers=4",
            "`resources` has no `prcs`; it has pool",
        ),
        (
            "wrong_type",
            &["--set", "pipers.0.worker.0.kwargs.x=7"],
            "--set pipers.0.worker.0.kwargs.x=7",
            "bad arguments for `papy.njoiner`: no parameter named `x`",
        ),
        (
            "buffer_zero",
            &["--set", "resources.pool.wrokers=4"],
            "--set resources.pool.wrokers=4",
            "unknown key `wrokers` in resource `pool`; did you mean `workers`?",
        ),
    ];
    for (name, extra, at, message) in cases {
        let file = format!("papy-cli/tests/broken/{name}.toml");
        let mut check = vec!["check", file.as_str()];
        check.extend_from_slice(extra);
        let out = run(&check);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "check {name}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("check {name}: no `{message}` in\n{err}"));
        let prefix = if at.is_empty() {
            format!("{file}: ")
        } else if at.starts_with("--set") {
            format!("{file}: {at}: ")
        } else {
            format!("{file}:{at}: ")
        };
        assert!(
            line.starts_with(&prefix),
            "check {name}: `{line}` should start with `{prefix}`"
        );
        let mut run_args = vec!["run", "-q", file.as_str()];
        run_args.extend_from_slice(extra);
        let out = run(&run_args);
        let run_err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "run {name}: {run_err}");
        assert!(
            run_err.contains(line),
            "run {name} should say `{line}`:\n{run_err}"
        );
        assert!(out.stdout.is_empty(), "run {name} ran items");
    }
    // Files check accepts, run runs.
    let mut good: Vec<String> = std::fs::read_dir(root().join("papy-cli/tests/good"))
        .expect("the good files")
        .filter_map(|e| e.ok())
        .map(|e| format!("papy-cli/tests/good/{}", e.file_name().to_string_lossy()))
        .collect();
    good.sort();
    assert!(!good.is_empty());
    for file in &good {
        let file = file.as_str();
        let out = run(&["check", file]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(&["run", "-q", file]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 50);
    }
}

/// A worker command that cannot start refuses the run before the first
/// item: exit 2 and one line naming the command and why (here the shell's
/// "not found"), not an error per item.
#[test]
fn a_worker_command_that_cannot_start_refuses_the_run_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[resources.far]\nkind = \"remote\"\nremote = [{ command = \"papy-no-such-worker --stdio\", workers = 2 }]\n\n\
         [inputs.n]\nkind = \"range\"\nstart = 0\nend = 20\n\n\
         [[pipers]]\nname = \"a\"\ninputs = [\"n\"]\nresource = \"far\"\nworker = [\"papy.ipasser\"]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let out = run(&["run", "-q", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("{file}:3:23: resource `far`: the worker command `papy-no-such-worker --stdio` cannot start: "))
            && err.contains("not found")
            && err.contains("127"),
        "{err}"
    );
}

/// Distinct worker commands are started at the same time; each that cannot
/// start is still one line, in the file's order.
#[test]
fn each_worker_command_that_cannot_start_is_one_line_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[resources.a]\nkind = \"remote\"\nremote = [{ command = \"papy-no-such-a --stdio\", workers = 1 }, { command = \"papy-no-such-b --stdio\", workers = 1 }]\n\n\
         [inputs.n]\nkind = \"range\"\nstart = 0\nend = 4\n\n\
         [[pipers]]\nname = \"p\"\ninputs = [\"n\"]\nresource = \"a\"\nworker = [\"papy.ipasser\"]\n",
    )
    .unwrap();
    let out = run(&["run", "-q", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("`papy-no-such-a --stdio` cannot start"),
        "{err}"
    );
    assert!(
        lines[1].contains("`papy-no-such-b --stdio` cannot start"),
        "{err}"
    );
}

/// A missing import forgiven by `#[worker(forgive)]` is said once per run,
/// as a plain `papy: warning:` line of the host, not as a timestamped WARN
/// log line of the host and of each worker process.
#[test]
fn a_forgiven_missing_import_is_one_plain_warning_per_run() {
    support::plugin_dir();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[plugins]\nload = [\"textstats\"]\n\n[resources.pool]\nkind = \"process\"\nworkers = 2\nstride = 2\n\n\
         [inputs.n]\nkind = \"range\"\nstart = 0\nend = 20\n\n\
         [[pipers]]\nname = \"a\"\ninputs = [\"n\"]\nresource = \"pool\"\nworker = [\"textstats.needs_missing_forgiven\"]\n\n\
         [outputs.o]\npiper = \"a\"\n",
    )
    .unwrap();
    let out = run(&["run", "-q", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "papy: warning: `textstats.needs_missing_forgiven` imports `no_such_module_q`"
        ) && err.trim_end().ends_with("(forgiven)"),
        "{err}"
    );
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let dot = run(&["graph", "examples/pipelines/fork_join.toml"]);
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(
        text.starts_with("digraph papy {") && text.trim_end().ends_with('}'),
        "{text}"
    );
    assert!(
        text.contains("\"square\" -> \"join\";") && text.contains("math.scale"),
        "{text}"
    );
    let mermaid = run(&[
        "graph",
        "--format",
        "mermaid",
        "examples/pipelines/wordcount.toml",
    ]);
    let text = String::from_utf8_lossy(&mermaid.stdout);
    assert!(
        text.starts_with("flowchart LR") && text.contains("count --> top"),
        "{text}"
    );
    // Inputs and outputs are drawn too.
    assert!(
        text.contains("in_corpus") && text.contains("top --> out_"),
        "{text}"
    );
}

#[test]
fn list_json_has_builtin_and_plugin_functions() {
    support::plugin_dir();
    let out = run(&["list", "--json", "--plugin", "math"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        names.contains(&"math.square") && names.iter().all(|n| n.starts_with("math.")),
        "--plugin math lists only math's functions: {names:?}"
    );
    let out = run(&["list", "--json", "--all", "--plugin", "math"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        names.contains(&"papy.ipasser") && names.contains(&"math.square"),
        "{names:?}"
    );
}

/// `papy list --plugin DIR` on a folder without a plugin library (an empty
/// one, or the crate `papy new plugin` just wrote) is an error naming the
/// folder, with a hint to build a crate, not an empty list and exit 0.
#[test]
fn list_refuses_a_plugin_folder_that_holds_no_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(&["list", "--plugin", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "the directory `{}` holds no plugin library",
            empty.display()
        )),
        "{err}"
    );
    let made = papy()
        .current_dir(dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .args(["new", "plugin", "fresh"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let out = papy()
        .current_dir(dir.path())
        .args(["list", "--plugin", "fresh"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("the directory `fresh` holds no plugin library")
            && err.contains("cargo build --release"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

fn failing_pipeline() -> PathBuf {
    let path = std::env::temp_dir().join(format!("papy-failing-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        r#"
[plugins]
load = ["math"]
[inputs.numbers]
kind = "range"
start = -2
end = 3
[[pipers]]
name = "f"
inputs = ["numbers"]
worker = ["math.fragile"]
[outputs.out]
piper = "f"
path = "-"
"#,
    )
    .unwrap();
    path
}

#[test]
fn failing_items_set_the_exit_code_and_go_to_the_error_file() {
    support::plugin_dir();
    let file = failing_pipeline();
    let errors = std::env::temp_dir().join(format!("papy-errors-{}.jsonl", std::process::id()));
    let out = run(&[
        "run",
        "-q",
        "--errors",
        errors.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n2\n");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "panic");
    assert_eq!(lines[0]["input"], "numbers");
    assert_eq!(lines[0]["index"], 0);
    let ok = run(&["run", "-q", "--allow-failures", file.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0));
    let _ = std::fs::remove_file(errors);
    let _ = std::fs::remove_file(file);
}

#[test]
fn ctrl_c_stops_cleanly_with_the_interrupted_code_and_no_child_left() {
    support::plugin_dir();
    let path = std::env::temp_dir().join(format!("papy-long-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        r#"
[plugins]
load = ["math"]
[resources.pool]
kind = "process"
workers = 2
stride = 2
[inputs.numbers]
kind = "range"
start = 0
end = 1000000000
[[pipers]]
name = "burn"
resource = "pool"
inputs = ["numbers"]
worker = [{ function = "math.burn", args = [20000] }]
[outputs.out]
piper = "burn"
path = "-"
"#,
    )
    .unwrap();
    let child = papy()
        .args(["run", "-q", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let kids = children_of(pid);
        if kids.len() >= 2 {
            break kids;
        }
        assert!(Instant::now() < deadline, "no worker processes appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(lines > 0, "outputs were flushed");
    assert_eq!(
        lines % 2,
        0,
        "the input stopped at a stride boundary and every item taken came out"
    );
    for w in workers {
        assert!(
            !Path::new(&format!("/proc/{w}")).exists(),
            "worker {w} is still there"
        );
    }
    let _ = std::fs::remove_file(path);
}

// A scenario read top to bottom: its steps share state and splitting them
// would hide the order the test checks.
#[allow(clippy::too_many_lines)]
#[test]
fn new_plugin_scaffold_builds_and_loads() {
    let dir = std::env::temp_dir().join(format!("papy-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let crate_dir = dir.join("greeter");
    // The SDK the binary carries goes to the user's data folder: here a
    // fresh one, so nothing of an earlier run is reused.
    let data = dir.join("data");
    let out = papy()
        .env("XDG_DATA_HOME", &data)
        .args(["new", "plugin", "greeter", "--dir"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!run(&["new", "plugin", "Bad-Name"]).status.success());
    // The crate depends on the SDK alone, not on the engine.
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .unwrap_or_default();
    let names: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
        .collect();
    assert_eq!(names, ["papy-sdk"], "{manifest}");
    // ... which the binary wrote under the data folder: neither the crate
    // nor that SDK refers to the checkout papy was built from, so the
    // plugin builds after the clone is deleted.
    assert!(
        manifest.contains(&format!(
            "papy-sdk = {{ path = \"{}/papy/sdk-",
            data.display()
        )),
        "{manifest}"
    );
    let checkout = root().canonicalize().unwrap().display().to_string();
    let mut files = vec![crate_dir.join("Cargo.toml")];
    let mut dirs = vec![data.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains(&checkout),
            "{} names {checkout}",
            f.display()
        );
    }
    // An SDK directory that is not there: a clear error, nothing created.
    let elsewhere = dir.join("other");
    let out = run(&[
        "new",
        "plugin",
        "other",
        "--dir",
        elsewhere.to_str().unwrap(),
        "--sdk",
        "/nonexistent/papy-sdk",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no papy-sdk crate at /nonexistent/papy-sdk"),
        "{err}"
    );
    assert!(!elsewhere.exists());
    // The workspace's target directory: the papy crates compiled for the tests are reused.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .current_dir(&crate_dir)
        .args(["build", "--quiet", "--offline", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "the scaffolded plugin builds");
    let lib = target
        .join("debug")
        .join(papy_plugins::SearchPath::file_name("greeter"));
    let out = run(&["list", "--json", "--plugin", lib.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let greet = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "greeter.greet")
        .expect("greeter.greet listed");
    assert_eq!(greet["params"][0]["name"], "greeting");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn record_and_msgpack_streams_in_pipeline_files_written_by_a_worker_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("in.txt"), "one\n1\n\nXYZ\ntwo\n\nXYZ\n").unwrap();
    let packed = d.join("items.msgpack");
    std::fs::write(
        d.join("pack.toml"),
        format!(
            r#"
[inputs.recs]
kind = "records"
path = "in.txt"
delimiter = "XYZ"
# A worker process writes the file: `papy run` grants it the file's folder.
[resources.procs]
kind = "process"
workers = 1
[[pipers]]
name = "pack"
inputs = ["recs"]
resource = "procs"
worker = [{{ function = "papy.dump_msgpack", kwargs = {{ path = "{}" }} }}]
"#,
            packed.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("unpack.toml"),
        r#"
[inputs.packed]
kind = "msgpack"
path = "items.msgpack"
[[pipers]]
name = "show"
inputs = ["packed"]
worker = ["papy.json_dumps"]
[outputs.out]
piper = "show"
path = "-"
"#,
    )
    .unwrap();
    let pack = run(&["run", "-q", d.join("pack.toml").to_str().unwrap()]);
    assert!(
        pack.status.success(),
        "{}",
        String::from_utf8_lossy(&pack.stderr)
    );
    let unpack = run(&["run", "-q", d.join("unpack.toml").to_str().unwrap()]);
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&unpack.stdout),
        "\"one\\n1\\n\"\n\"two\\n\"\n"
    );
}

#[test]
fn verbose_logging_goes_to_a_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs").join("papy");
    let out = run(&[
        "-vvv",
        "--log-file",
        log.to_str().unwrap(),
        "--log-rotate",
        "never",
        "run",
        "-q",
        "examples/pipelines/fork_join.toml",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("node{name="),
        "no node span in the log:\n{text}"
    );
}

#[test]
fn new_script_writes_a_runnable_template() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.py");
    let out = run(&["new", "script", path.to_str().unwrap(), "--lang", "python"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("json.load"));
    let again = run(&["new", "script", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = run(&["new", "script", "x.cob", "--lang", "cobol"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no script template for `cobol`"));
}

#[test]
fn papy_print_writes_each_item_as_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("print.toml");
    std::fs::write(
        &file,
        r#"
[inputs.numbers]
kind = "range"
start = 0
end = 3
[[pipers]]
name = "wrap"
inputs = ["numbers"]
worker = ["papy.npasser"]
[[pipers]]
name = "show"
inputs = ["wrap"]
worker = ["papy.print"]
"#,
    )
    .unwrap();
    let out = run(&["run", "-q", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[0]\n[1]\n[2]\n");
    // In worker processes, what functions print goes to stderr, never into
    // the protocol stream.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("name = \"show\"", "name = \"show\"\nresource = \"procs\"");
    std::fs::write(
        &file,
        format!("{text}\n[resources.procs]\nkind = \"process\"\nworkers = 2\n"),
    )
    .unwrap();
    let out = run(&["run", "-q", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for line in ["[0]", "[1]", "[2]"] {
        assert!(
            stderr.contains(line),
            "{line} missing from stderr: {stderr}"
        );
    }
}

#[test]
fn a_listing_to_a_closed_pipe_is_quiet() {
    // `papy list | head -0`: the reader is gone before papy writes. Before,
    // papy printed `papy: error: Broken pipe` and exited 2.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = papy()
        .arg("list")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("papy");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
