//! Any worker on the broker (issue 29), the relayed worker's life: it runs
//! its resource's init first, is recycled as the resource says, a command
//! that cannot start refuses the run (and stops a worker started by hand),
//! and the child inherits neither the run's key nor the broker's URL.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod plugins;
#[path = "../../papy-broker/tests/support/mod.rs"]
mod redis_support;
mod relay_support;

use std::process::Stdio;
use std::time::Duration;

use relay_support::*;

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
    let file = dir.join("nostart.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[resources.py]
kind = "redis"
url = "{}"
workers = 2
command = "exec /nonexistent/py-worker"
functions = ["py.f"]

[inputs.numbers]
kind = "range"
start = 0
end = 4

[[pipers]]
name = "f"
resource = "py"
inputs = ["numbers"]
worker = ["py.f"]

[outputs.out]
piper = "f"
path = "-"
"#,
            server.url()
        ),
    )
    .unwrap();
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
    let script = python_worker(&dir, "env_worker.py", ENV_WORKER);
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
