//! Any worker on the broker (issue 29): a Python node (the `papy_worker`
//! SDK) on a `redis` resource, two broker workers each relaying to a
//! Python child, gives the output it gives on local processes; a child that
//! dies mid-batch costs nothing, one that dies on a chosen item costs that
//! item alone, as in a process pool; an external `papy worker --redis ...
//! -- python3 w.py` serves the same node.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod plugins;
#[path = "../../papy-broker/tests/support/mod.rs"]
mod redis_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when the test ends, even by a panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion; a run that takes longer than `limit` is
/// killed and fails the test (a hang guard, not a timing).
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = KillOnDrop(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.0.stdout.take().map(|o| Box::new(o) as _));
    let err = drain(child.0.stderr.take().map(|e| Box::new(e) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "`{cmd:?}` did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// python3 with the SDK's one dependency (msgpack), as tests/python.rs.
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
            "python3 with msgpack is needed: `python3 -m pip install ./python`"
        );
    });
}

fn papy() -> Command {
    python_ready();
    let mut c = Command::new(env!("CARGO_BIN_EXE_papy"));
    c.current_dir(root())
        .env("PAPY_PLUGIN_PATH", plugins::plugin_dir());
    c
}

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("papy-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python example pipeline with its `py` resource replaced by
/// `resource` (TOML lines), its paths made absolute, written in `dir`.
fn python_example_on(dir: &Path, resource: &str) -> PathBuf {
    let example =
        std::fs::read_to_string(root().join("examples/pipelines/python_node.toml")).unwrap();
    let remote = "kind = \"remote\"\nremote = [{ command = \"exec python3 ../python/shout_worker.py\", workers = 2 }]";
    assert!(
        example.contains(remote),
        "the example's resource is as expected"
    );
    let pipelines = root().join("examples/pipelines");
    let text = example
        .replace(remote, resource)
        .replace("../../target", &root().join("target").display().to_string())
        .replace(
            "data/phrases.txt",
            &pipelines.join("data/phrases.txt").display().to_string(),
        );
    let file = dir.join("python_node.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn shout_worker() -> String {
    root()
        .join("examples/python/shout_worker.py")
        .display()
        .to_string()
}

#[test]
fn a_python_node_on_a_redis_resource_gives_the_local_output() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("example");
    let file = python_example_on(
        &dir,
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nworkers = 2\ncommand = \"exec python3 {}\"",
            server.url(),
            shout_worker()
        ),
    );
    let out = output_within(
        papy().args(["run", "-q", file.to_str().unwrap()]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(root().join("examples/pipelines/expected/python_node.out"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    // Keyword arguments of a function only the relayed worker holds: `papy
    // run` binds them by probing one (the redis resource's `command`).
    let by_name = r#"pipers.1.worker=[{ function = "py.shout", kwargs = { suffix = " !" } }]"#;
    let out = output_within(
        papy().args(["run", "-q", file.to_str().unwrap(), "--set", by_name]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let check = output_within(
        papy().args(["check", file.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_external_broker_worker_relays_to_a_python_child() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("external");
    let key = dir.join("run.key");
    std::fs::write(&key, "a-key-the-host-and-workers-share\n").unwrap();
    let file = python_example_on(
        &dir,
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nrun_id = \"relay\"\nkey_file = {:?}",
            server.url(),
            key.display().to_string()
        ),
    );
    let inits = dir.join("inits.txt");
    let _external = KillOnDrop(
        papy()
            .args([
                "worker",
                "--redis",
                &server.url(),
                "--run",
                "relay",
                "--until-done",
            ])
            .args([
                "--key-file",
                key.to_str().unwrap(),
                "--init",
                "py.count_init",
                "--init-arg",
                inits.to_str().unwrap(),
                "--",
                "python3",
                &shout_worker(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = output_within(
        papy().args(["run", "-q", file.to_str().unwrap()]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(root().join("examples/pipelines/expected/python_node.out"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let ran = std::fs::read_to_string(&inits).unwrap();
    assert_eq!(ran.lines().count(), 1, "one child, one init: {ran}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Python worker whose `py.die_on` kills its own process on item `k`:
/// every time (`once` false), or only the first time (a marker file).
const DYING_WORKER: &str = r#"
import os, sys
sys.path.insert(0, SDK)
from papy_worker import function, serve

@function("py.die_on")
def die_on(x, k, marker):
    if x == k and (marker == "" or not os.path.exists(marker)):
        if marker:
            open(marker, "w").close()
        os.kill(os.getpid(), 9)
    return x * 10

if __name__ == "__main__":
    serve()
"#;

/// A pipeline of 0..40 through `py.die_on` with `k` and `marker`, on
/// `resource`; returns its file.
fn dying_pipeline(dir: &Path, resource: &str, k: i64, marker: &str) -> PathBuf {
    let script = dir.join("dying_worker.py");
    let sdk = root().join("python").display().to_string();
    std::fs::write(&script, DYING_WORKER.replace("SDK", &format!("{sdk:?}"))).unwrap();
    let text = format!(
        r#"
[resources.py]
{resource}
functions = ["py.die_on"]
stride = 8

[inputs.numbers]
kind = "range"
start = 0
end = 40

[[pipers]]
name = "die"
resource = "py"
inputs = ["numbers"]
worker = [{{ function = "py.die_on", args = [{k}, {marker:?}] }}]

[outputs.out]
piper = "die"
path = "-"
"#
    );
    let file = dir.join(format!("dying-{}.toml", resource.len()));
    std::fs::write(&file, text.replace("SCRIPT", &script.display().to_string())).unwrap();
    file
}

/// Runs `file` with `--errors`; its stdout, and the failed items' lines.
fn run_with_errors(dir: &Path, file: &Path) -> (String, Vec<String>) {
    let errors = dir.join("errors.jsonl");
    let _ = std::fs::remove_file(&errors);
    let out = output_within(
        papy()
            .args(["run", "-q", "--allow-errors", "--errors"])
            .arg(&errors)
            .arg(file),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = std::fs::read_to_string(&errors)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), failed)
}

#[test]
fn a_child_that_dies_on_an_item_costs_that_item_as_on_local_processes() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("dies");
    let local = dying_pipeline(
        &dir,
        "kind = \"remote\"\nremote = [{ command = \"exec python3 SCRIPT\", workers = 2 }]",
        13,
        "",
    );
    let redis = dying_pipeline(
        &dir,
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nworkers = 2\ncommand = \"exec python3 SCRIPT\"",
            server.url()
        ),
        13,
        "",
    );
    let (want, want_failed) = run_with_errors(&dir, &local);
    let (got, failed) = run_with_errors(&dir, &redis);
    let expected: String = (0..40)
        .filter(|x| *x != 13)
        .map(|x| format!("{}\n", x * 10))
        .collect();
    assert_eq!(want, expected, "the local pool's output");
    assert_eq!(got, want, "the broker's output is the local pool's");
    assert_eq!(want_failed.len(), 1, "{want_failed:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    for line in [&failed[0], &want_failed[0]] {
        assert!(line.contains("\"index\":13"), "{line}");
        assert!(line.contains("died"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_child_killed_mid_batch_costs_nothing_downstream() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("killed");
    let marker = dir.join("died-once");
    let file = dying_pipeline(
        &dir,
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nworkers = 2\ncommand = \"exec python3 SCRIPT\"",
            server.url()
        ),
        21,
        &marker.display().to_string(),
    );
    let (got, failed) = run_with_errors(&dir, &file);
    assert!(marker.exists(), "a child died on item 21");
    assert!(failed.is_empty(), "{failed:?}");
    let expected: String = (0..40).map(|x| format!("{}\n", x * 10)).collect();
    assert_eq!(got, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_relayed_worker_runs_the_resources_init_first() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("init");
    let inits = dir.join("inits.txt");
    let file = dir.join("greet.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[resources.py]
kind = "redis"
url = "{}"
workers = 2
command = "exec python3 {}"
functions = ["py.greet", "py.count_init"]
init = {{ function = "py.count_init", args = [{:?}] }}
stride = 2

[inputs.numbers]
kind = "range"
start = 0
end = 20

[[pipers]]
name = "greet"
resource = "py"
inputs = ["numbers"]
worker = ["py.greet"]

[outputs.out]
piper = "greet"
path = "-"
"#,
            server.url(),
            shout_worker(),
            inits.display().to_string()
        ),
    )
    .unwrap();
    let out = output_within(
        papy().args(["run", "-q", file.to_str().unwrap()]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran: Vec<String> = std::fs::read_to_string(&inits)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("init ").to_string())
        .collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 20, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        // Each item carries the state the init of the worker that ran it made.
        let pid = line.rsplit("hello from ").next().unwrap_or("");
        let pid: String = pid.chars().filter(char::is_ascii_digit).collect();
        assert!(line.starts_with(&format!("[{i},")), "{line}");
        assert!(ran.contains(&pid), "{line}: no init ran in {pid} ({ran:?})");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_relay_command_that_cannot_start_refuses_the_run_and_stops_a_worker() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("nostart");
    let file = dying_pipeline(
        &dir,
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nworkers = 2\ncommand = \"exec /nonexistent/py-worker\"",
            server.url()
        ),
        0,
        "",
    );
    let out = output_within(
        papy().args(["run", "-q"]).arg(&file),
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the worker command `exec /nonexistent/py-worker` cannot start"),
        "{err}"
    );
    // By hand on a farm host: the worker stops, saying why.
    let out = output_within(
        papy()
            .args(["worker", "--redis", &server.url(), "--run", "r"])
            .args(["--", "/nonexistent/py-worker"]),
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the worker command `/nonexistent/py-worker` cannot start"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_relayed_worker_is_recycled_as_the_resource_says() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("recycle");
    let file = dir.join("pids.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[resources.py]
kind = "redis"
url = "{}"
workers = 1
command = "exec python3 {}"
functions = ["py.pid"]
recycle_after = 5
stride = 5

[inputs.numbers]
kind = "range"
start = 0
end = 20

[[pipers]]
name = "pid"
resource = "py"
inputs = ["numbers"]
worker = ["py.pid"]

[outputs.out]
piper = "pid"
path = "-"
"#,
            server.url(),
            shout_worker(),
        ),
    )
    .unwrap();
    let out = output_within(
        papy().args(["run", "-q", file.to_str().unwrap()]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<&str> = stdout.lines().collect();
    assert_eq!(pids.len(), 20, "{stdout}");
    // One broker worker, one child at a time, replaced every 5 items: the
    // 20 items ran in 4 children, 5 each, one after the other.
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for p in &pids {
        match runs.last_mut() {
            Some((last, n)) if last == p => *n += 1,
            _ => runs.push((p, 1)),
        }
    }
    assert_eq!(runs.len(), 4, "{stdout}");
    assert!(runs.iter().all(|(_, n)| *n == 5), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Python worker whose `py.env` returns an environment variable.
const ENV_WORKER: &str = r#"
import os, sys
sys.path.insert(0, SDK)
from papy_worker import function, serve

@function("py.env")
def env(name):
    return os.environ.get(name, "(unset)")

if __name__ == "__main__":
    serve()
"#;

#[test]
fn a_relayed_child_inherits_neither_the_key_nor_the_url() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("env");
    let script = dir.join("env_worker.py");
    let sdk = root().join("python").display().to_string();
    std::fs::write(&script, ENV_WORKER.replace("SDK", &format!("{sdk:?}"))).unwrap();
    let names = dir.join("names.txt");
    std::fs::write(&names, "PAPY_BROKER_KEY\nPAPY_REDIS_URL\nPAPY_WORKER\n").unwrap();
    let file = dir.join("env.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[resources.py]
kind = "redis"
url = "{}"
run_id = "env"
functions = ["py.env"]

[inputs.names]
kind = "lines"
path = {:?}

[[pipers]]
name = "env"
resource = "py"
inputs = ["names"]
worker = ["py.env"]

[outputs.out]
piper = "env"
path = "-"
"#,
            server.url(),
            names.display().to_string()
        ),
    )
    .unwrap();
    let key = "a-key-the-host-and-workers-share";
    let _external = KillOnDrop(
        papy()
            .env("PAPY_BROKER_KEY", key)
            .env("PAPY_REDIS_URL", server.url())
            .args([
                "worker",
                "--redis",
                "env",
                "--run",
                "env",
                "--until-done",
                "--",
            ])
            .args(["python3", script.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = output_within(
        papy()
            .env("PAPY_BROKER_KEY", key)
            .args(["run", "-q", file.to_str().unwrap()]),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(unset)\n(unset)\nstdio\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
