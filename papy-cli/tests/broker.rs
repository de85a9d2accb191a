//! `kind = "redis"` pipelines through the binary: local workers the pool
//! starts plus an external `papy worker --redis` give the example's expected
//! output; a broker worker without a run is refused.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod plugins;
#[path = "../../papy-broker/tests/support/mod.rs"]
mod redis_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when the test ends, even by a panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) if it takes
/// longer than `limit`: a broken run never hangs the suite.
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
    let out = drain(
        child
            .0
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .0
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    );
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

fn papy() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_papy"));
    c.current_dir(root())
        .env("PAPY_PLUGIN_PATH", plugins::plugin_dir());
    c
}

#[test]
fn the_fork_join_example_runs_on_redis_with_local_and_external_workers() {
    plugins::plugin_dir();
    let server = redis_support::RedisServer::start();
    let example =
        std::fs::read_to_string(root().join("examples/pipelines/fork_join.toml")).unwrap();
    let dir = std::env::temp_dir().join(format!("papy-cli-broker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The run's key, shared by the host and the external worker.
    let key = dir.join("run.key");
    std::fs::write(&key, "a-key-the-host-and-workers-share\n").unwrap();
    let on_redis = example.replace(
        "kind = \"thread\"\nworkers = 2",
        &format!(
            "kind = \"redis\"\nurl = \"{}\"\nrun_id = \"cli\"\nworkers = 1\nkey_file = {:?}",
            server.url(),
            key.display().to_string()
        ),
    );
    assert_ne!(on_redis, example, "the example's resource was rewritten");
    let file = dir.join("fork_join_redis.toml");
    std::fs::write(
        &file,
        on_redis.replace("../../target", &root().join("target").display().to_string()),
    )
    .unwrap();
    let external = KillOnDrop(
        papy()
            .args([
                "worker",
                "--redis",
                &server.url(),
                "--run",
                "cli",
                "--until-done",
                "--key-file",
                key.to_str().unwrap(),
                "--plugin",
                "math",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = output_within(
        papy().args(["run", "--quiet", file.to_str().unwrap()]),
        Duration::from_secs(120),
    );
    drop(external);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want =
        std::fs::read_to_string(root().join("examples/pipelines/expected/fork_join.out")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broker_worker_needs_a_run() {
    let out = output_within(
        papy().args(["worker", "--redis", "redis://:hunter2@127.0.0.1:1"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs `--run RUN_ID`"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// The children of `pid` (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

#[test]
fn local_workers_leave_when_their_host_is_killed() {
    plugins::plugin_dir();
    let server = redis_support::RedisServer::start();
    let dir = std::env::temp_dir().join(format!("papy-cli-broker-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("endless.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[plugins]
load = ["math"]
[resources.farm]
kind = "redis"
url = "{}"
workers = 2
stride = 2
[inputs.numbers]
kind = "range"
start = 0
end = 1000000000
[[pipers]]
name = "burn"
resource = "farm"
inputs = ["numbers"]
worker = [{{ function = "math.burn", args = [20000] }}]
[outputs.out]
piper = "burn"
path = "-"
"#,
            server.url()
        ),
    )
    .unwrap();
    let mut host = KillOnDrop(
        papy()
            .args(["run", "-q", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let workers = loop {
        let c = children(host.0.id());
        if c.len() >= 2 {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "no local workers");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    host.0.kill().unwrap();
    host.0.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for pid in workers {
        // Gone, or a zombie waiting for init to reap it.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "local worker {pid} outlived its host"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
