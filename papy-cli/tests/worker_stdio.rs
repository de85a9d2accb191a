//! `papy worker --stdio` as the worker of process and remote pools, running
//! built-in and plugin functions: the same output as on threads.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, OnceLock};

use papy_core::{
    Dagger, ErrorKind, NuMap, Piper, Plumber, ProcessPool, Source, Value, Worker, WorkerCommand,
};

fn host_plugins() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        papy_plugins::load(support::plugin_file("math")).expect("load math");
        papy_plugins::load(support::plugin_file("text")).expect("load text");
    });
}

fn worker_args() -> Vec<String> {
    let dir = support::plugin_dir().display().to_string();
    [
        "worker",
        "--stdio",
        "--plugin-path",
        &dir,
        "--plugin",
        "math",
        "--plugin",
        "text",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn pipeline(m: &NuMap) -> Dagger {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("square", Worker::new("math.square").unwrap()).parallel(m))
        .unwrap();
    d.add_piper(Piper::new("fragile", Worker::new("math.fragile").unwrap()).parallel(m))
        .unwrap();
    let show = Worker::with_args("papy.njoiner", [Value::Null, Value::from("")])
        .unwrap()
        .then(Worker::new("text.l33t").unwrap());
    d.add_piper(Piper::new("show", show).parallel(m)).unwrap();
    d.add_pipe(["square", "fragile", "show"]).unwrap();
    d
}

fn run(d: Dagger, input: Vec<i64>) -> Vec<papy_core::Item> {
    let mut p = Plumber::new(d);
    let out = p.collect("show").unwrap();
    p.start([("square", Source::values(input))]).unwrap();
    p.run().unwrap();
    assert!(p.wait(None).unwrap());
    out.take()
}

#[test]
fn plugin_pipeline_gives_the_same_output_on_threads_processes_and_remote() {
    host_plugins();
    let input: Vec<i64> = (0..40).collect();
    let threads = NuMap::builder().workers(2).stride(4).build().unwrap();
    let reference = run(pipeline(&threads), input.clone());
    assert_eq!(reference[3], Ok(Value::from("9")));
    assert_eq!(reference.len(), 40);

    let papy = env!("CARGO_BIN_EXE_papy");
    let procs =
        Arc::new(ProcessPool::new("procs", 2, WorkerCommand::new(papy, worker_args())).unwrap());
    let on_procs = NuMap::builder()
        .pool(procs.clone())
        .stride(4)
        .build()
        .unwrap();
    assert_eq!(run(pipeline(&on_procs), input.clone()), reference);

    let line = format!("exec '{papy}' {}", worker_args().join(" "));
    let remote =
        Arc::new(ProcessPool::remote("remote", vec![(WorkerCommand::shell(&line), 2)]).unwrap());
    let on_remote = NuMap::builder()
        .pool(remote.clone())
        .stride(4)
        .build()
        .unwrap();
    assert_eq!(run(pipeline(&on_remote), input), reference);
}

#[test]
fn a_plugin_panic_in_a_worker_process_is_an_error_item() {
    host_plugins();
    let papy = env!("CARGO_BIN_EXE_papy");
    let procs =
        Arc::new(ProcessPool::new("procs", 1, WorkerCommand::new(papy, worker_args())).unwrap());
    let m = NuMap::builder().pool(procs).stride(2).build().unwrap();
    let t = m
        .add_task(Worker::new("math.fragile").unwrap(), [1i64, -2, 3])
        .unwrap();
    m.start().unwrap();
    let out: Vec<_> = m.results(t).unwrap().collect();
    assert_eq!(out[0], Ok(Value::Int(1)));
    let e = out[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic);
    assert!(e.message().contains("negative number: -2"), "{e}");
    assert_eq!(out[2], Ok(Value::Int(3)));
}

#[test]
fn a_worker_without_the_plugin_reports_the_missing_function() {
    host_plugins();
    let papy = env!("CARGO_BIN_EXE_papy");
    let bare = Arc::new(
        ProcessPool::new("bare", 1, WorkerCommand::new(papy, ["worker", "--stdio"])).unwrap(),
    );
    let m = NuMap::builder().pool(bare).stride(1).build().unwrap();
    let t = m
        .add_task(Worker::new("math.square").unwrap(), [2i64])
        .unwrap();
    m.start().unwrap();
    let out: Vec<_> = m.results(t).unwrap().collect();
    let e = out[0].as_ref().unwrap_err();
    assert!(e.message().contains("math.square"), "{e}");
}

/// Through `ssh`, when `.ci/run` started a throw-away sshd on 127.0.0.1 and
/// exported the command line in `PAPY_TEST_SSH`.
#[test]
fn plugin_pipeline_through_ssh_gives_the_same_output() {
    let Ok(ssh) = std::env::var("PAPY_TEST_SSH") else {
        eprintln!("PAPY_TEST_SSH is not set (no local sshd): the ssh variant was not run");
        return;
    };
    host_plugins();
    let input: Vec<i64> = (0..40).collect();
    let threads = NuMap::builder().workers(2).stride(4).build().unwrap();
    let reference = run(pipeline(&threads), input.clone());
    let papy = env!("CARGO_BIN_EXE_papy");
    let line = format!("{ssh} exec '{papy}' {}", worker_args().join(" "));
    let remote =
        Arc::new(ProcessPool::remote("ssh", vec![(WorkerCommand::shell(&line), 2)]).unwrap());
    let on_ssh = NuMap::builder().pool(remote).stride(4).build().unwrap();
    assert_eq!(run(pipeline(&on_ssh), input), reference);
}

/// Runs `papy.script` (a script that touches a file) on a pool of one
/// `papy worker --stdio` started with `extra` arguments; the item's result.
fn script_through_worker(extra: &[&str]) -> (papy_core::Item, bool) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("touch.sh");
    std::fs::write(&script, "touch \"$PAPY_OUT_DONE\"\n").unwrap();
    let cfg = Value::map([
        ("id", Value::from("t")),
        ("executable", Value::from("bash")),
        ("script", Value::from(script.display().to_string())),
        (
            "dir",
            Value::from(dir.path().join("out").display().to_string()),
        ),
        ("out", Value::list([Value::from("done")])),
    ]);
    let mut args = vec!["worker", "--stdio"];
    args.extend_from_slice(extra);
    let pool = ProcessPool::new(
        "scripts",
        1,
        WorkerCommand::new(env!("CARGO_BIN_EXE_papy"), args),
    )
    .unwrap();
    let m = NuMap::builder().pool(Arc::new(pool)).build().unwrap();
    let mut d = Dagger::new();
    let w = Worker::with_args("papy.script", [cfg]).unwrap();
    d.add_piper(Piper::new("script", w).parallel(&m)).unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("script").unwrap();
    let input = Value::map([("unused", Value::from("x"))]);
    p.start([("script", Source::values([input]))]).unwrap();
    p.run().unwrap();
    assert!(p.wait(None).unwrap());
    let mut items = out.take();
    let ran = dir
        .path()
        .join("out")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some());
    (items.remove(0), ran)
}

#[test]
fn a_worker_runs_programs_only_when_started_with_allow_scripts() {
    let (item, ran) = script_through_worker(&[]);
    let e = item.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Function);
    assert!(
        e.message().contains("`papy.script` runs external programs")
            && e.message().contains("--allow-scripts"),
        "{e}"
    );
    assert!(!ran, "nothing ran");
    let (item, ran) = script_through_worker(&["--allow-scripts"]);
    let out = item.unwrap();
    assert!(out.get("done").is_some(), "{out:?}");
    assert!(ran);
}

#[test]
fn a_worker_runs_only_the_functions_its_host_declared() {
    host_plugins();
    let cmd =
        WorkerCommand::new(env!("CARGO_BIN_EXE_papy"), worker_args()).sending(["math.square"]);
    let pool = Arc::new(ProcessPool::new("declared", 1, cmd).unwrap());
    let m = NuMap::builder().pool(pool).stride(2).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("square", Worker::new("math.square").unwrap()).parallel(&m))
        .unwrap();
    d.add_piper(Piper::new("fragile", Worker::new("math.fragile").unwrap()).parallel(&m))
        .unwrap();
    d.add_piper(Piper::new("show", Worker::new("papy.ipasser").unwrap()))
        .unwrap();
    d.add_pipe(["square", "fragile", "show"]).unwrap();
    let items = run(d, vec![1, 2, 3]);
    assert_eq!(items.len(), 3);
    for item in items {
        // `square` ran (declared); `fragile` was refused by the worker.
        let e = item.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Function);
        assert_eq!(e.path().first().map(String::as_str), Some("fragile"), "{e}");
        assert!(
            e.message()
                .contains("`math.fragile` is not among the functions this worker's host declared"),
            "{e}"
        );
    }
}

/// Runs `worker` over `inputs` on one `papy worker --stdio` started with
/// `extra` flags; the items in input order.
fn through_worker(extra: &[&str], worker: Worker, inputs: Vec<Value>) -> Vec<papy_core::Item> {
    let mut args = vec!["worker", "--stdio"];
    args.extend_from_slice(extra);
    let cmd = WorkerCommand::new(env!("CARGO_BIN_EXE_papy"), args);
    let pool = Arc::new(ProcessPool::new("permissions", 1, cmd).unwrap());
    let m = NuMap::builder().pool(pool).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("node", worker).parallel(&m))
        .unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("node").unwrap();
    p.start([("node", Source::values(inputs))]).unwrap();
    p.run().unwrap();
    assert!(p.wait(None).unwrap());
    out.take()
}

fn dump_lines_to(path: &std::path::Path) -> Worker {
    Worker::with_args("papy.dump_lines", [Value::from(path.display().to_string())]).unwrap()
}

fn refused(item: &papy_core::Item) -> String {
    let e = item.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Function, "{e}");
    assert!(e.message().contains("--allow-files"), "{e}");
    e.message().to_string()
}

#[test]
fn a_worker_without_allow_files_writes_no_file_a_task_names() {
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside.txt");
    let items = through_worker(&[], dump_lines_to(&outside), vec![Value::from("x")]);
    refused(&items[0]);
    assert!(!outside.exists(), "nothing was written");
}

#[test]
fn allow_files_confines_writes_to_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let flag = allowed.display().to_string();
    let inside = allowed.join("out.txt");
    let items = through_worker(
        &["--allow-files", &flag],
        dump_lines_to(&inside),
        vec![Value::from("a"), Value::from("b")],
    );
    assert_eq!(items, vec![Ok(Value::Null), Ok(Value::Null)]);
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "a\nb\n");
    // Neither a path outside nor one that climbs out through `..`.
    for outside in [
        root.path().join("outside.txt"),
        allowed.join("../outside.txt"),
    ] {
        let items = through_worker(
            &["--allow-files", &flag],
            dump_lines_to(&outside),
            vec![Value::from("x")],
        );
        refused(&items[0]);
        assert!(!root.path().join("outside.txt").exists());
    }
}

#[test]
fn a_worker_without_allow_files_reads_no_file_through_a_task_chosen_dir() {
    let root = tempfile::tempdir().unwrap();
    let secret = root.path().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let locator = Value::map([
        ("kind", Value::from("file")),
        ("path", Value::from(secret.display().to_string())),
        ("codec", Value::from("str")),
        ("len", Value::from(6i64)),
    ]);
    let load_from_root = Worker::build(
        "papy.load_item",
        papy_core::Args::Named(vec![
            ("dir".into(), Value::from("/")),
            ("remove".into(), Value::from(false)),
        ]),
    )
    .unwrap();
    let items = through_worker(&[], load_from_root.clone(), vec![locator.clone()]);
    let message = refused(&items[0]);
    assert!(!message.contains("s3cret"), "{message}");
    // Granted another directory: `/` is still out of bounds.
    let other = root.path().join("items");
    std::fs::create_dir(&other).unwrap();
    let flag = other.display().to_string();
    let items = through_worker(&["--allow-files", &flag], load_from_root, vec![locator]);
    refused(&items[0]);
    assert!(secret.exists(), "nothing was removed");
}

/// A worker whose host went away (a second Ctrl-C: the host is gone, its
/// pipes closed) exits quietly with 0: at once, after the greeting, or
/// inside a frame; and an i/o error's cause is not printed twice.
#[test]
fn a_worker_whose_host_went_away_exits_quietly() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    for case in ["at once", "after the greeting", "inside a frame"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_papy"))
            .args(["worker", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start papy worker");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        if case != "at once" {
            let mut greeting = vec![0u8; papy_core::protocol::GREETING.len()];
            stdout.read_exact(&mut greeting).expect("greeting");
            assert_eq!(greeting, papy_core::protocol::GREETING);
        }
        if case == "inside a frame" {
            // A frame of 256 bytes announced, 3 sent.
            stdin.write_all(&[0, 0, 1, 0, b'a', b'b', b'c']).unwrap();
        }
        drop(stdin);
        drop(stdout);
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.stderr.is_empty(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{case}: {:?}", out.status);
    }
    let e = anyhow::Error::from(papy_core::protocol::ProtocolError::from(
        std::io::Error::from(std::io::ErrorKind::BrokenPipe),
    ))
    .context("serving the host");
    let text = format!("{e:#}");
    assert_eq!(text.matches("pipe").count(), 1, "{text}");
}

#[test]
fn a_value_nested_250_deep_crosses_to_a_worker_process_as_on_threads() {
    // Before, a value nested 200 deep passed on threads and failed on a
    // process pool (128 levels).
    let mut deep = Value::from(1i64);
    for _ in 0..250 {
        deep = Value::list([deep]);
    }
    let items = through_worker(
        &[],
        Worker::new("papy.ipasser").unwrap(),
        vec![deep.clone()],
    );
    assert_eq!(items, vec![Ok(deep)]);
}

/// A node calling `math.crash` (the worker aborts on 5) on one worker
/// process, in one batch of 10; `once` marks it at most once.
fn crash_batch(once: bool) -> Vec<papy_core::Item> {
    host_plugins();
    let cmd = WorkerCommand::new(env!("CARGO_BIN_EXE_papy"), worker_args());
    let pool = Arc::new(ProcessPool::new("crash", 1, cmd).unwrap());
    let m = NuMap::builder().pool(pool).stride(10).build().unwrap();
    let mut node = Piper::new("c", Worker::with_args("math.crash", [5i64]).unwrap()).parallel(&m);
    if once {
        node = node.at_most_once();
    }
    let mut d = Dagger::new();
    d.add_piper(node).unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("c").unwrap();
    p.start([("c", Source::values(0..10i64))]).unwrap();
    p.run().unwrap();
    assert!(p.wait(None).unwrap());
    out.take()
}

#[test]
fn a_node_marked_once_never_runs_the_batch_mates_of_a_crash_again() {
    // By default the batch is split and run again until the item that
    // kills the worker is alone: 9 results, one error.
    let again = crash_batch(false);
    assert_eq!(again.iter().filter(|i| i.is_ok()).count(), 9);
    // At most once: nothing of the batch runs again; every item fails
    // with the worker, saying why.
    let once = crash_batch(true);
    assert_eq!(once.len(), 10);
    for item in &once {
        let e = item.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
        assert!(e.message().contains("at most once"), "{e}");
    }
}
