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
    let resource = redis_on(
        &server.url(),
        &format!(
            "workers = 2\ncommand = \"exec python3 {}\"\nfunctions = [\"py.greet\", \"py.count_init\"]\n\
             init = {{ function = \"py.count_init\", args = [{:?}] }}\nstride = 2",
            shout_worker(),
            inits.display().to_string()
        ),
    );
    let file = one_piper(&dir, "greet", &resource, &range(20), "[\"py.greet\"]");
    let stdout = succeeds(papy().args(["run", "-q"]).arg(&file));
    let ran: Vec<String> = std::fs::read_to_string(&inits)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("init ").to_string())
        .collect();
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
    let resource = redis_on(
        &server.url(),
        "workers = 2\ncommand = \"exec /nonexistent/py-worker\"\nfunctions = [\"py.f\"]",
    );
    let file = one_piper(&dir, "f", &resource, &range(4), "[\"py.f\"]");
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
    let resource = redis_on(
        &server.url(),
        &format!(
            "workers = 1\ncommand = \"exec python3 {}\"\nfunctions = [\"py.pid\"]\nrecycle_after = 5\nstride = 5",
            shout_worker()
        ),
    );
    let file = one_piper(&dir, "pid", &resource, &range(20), "[\"py.pid\"]");
    let stdout = succeeds(papy().args(["run", "-q"]).arg(&file));
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
    let resource = redis_on(&server.url(), "run_id = \"env\"\nfunctions = [\"py.env\"]");
    let file = one_piper(&dir, "env", &resource, &lines_of(&names), "[\"py.env\"]");
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
    let out = succeeds(
        papy()
            .env("PAPY_BROKER_KEY", key)
            .args(["run", "-q"])
            .arg(&file),
    );
    assert_eq!(out, "(unset)\n(unset)\nstdio\n");
    let _ = std::fs::remove_dir_all(&dir);
}
