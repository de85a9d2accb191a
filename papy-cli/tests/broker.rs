//! `kind = "redis"` pipelines through the binary: local workers the pool
//! starts plus an external `papy worker --redis` give the example's expected
//! output; a broker worker without a run is refused.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod plugins;
#[path = "../../papy-broker/tests/support/mod.rs"]
mod redis_support;
mod relay_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use relay_support::*;

#[test]
fn the_fork_join_example_runs_on_redis_with_local_and_external_workers() {
    plugins::plugin_dir();
    let server = redis_support::RedisServer::start();
    let example =
        std::fs::read_to_string(root().join("examples/pipelines/fork_join.toml")).unwrap();
    let dir = scratch("fork-join");
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
    let out = succeeds(papy().args(["run", "--quiet"]).arg(&file));
    drop(external);
    let want =
        std::fs::read_to_string(root().join("examples/pipelines/expected/fork_join.out")).unwrap();
    assert_eq!(out, want);
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
    let dir = scratch("kill");
    let resource = redis_on(&server.url(), "workers = 2\nstride = 2");
    let worker = "[{ function = \"math.burn\", args = [20000] }]";
    let file = one_piper(&dir, "burn", &resource, &range(1_000_000_000), worker);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n[plugins]\nload = [\"math\"]\n")).unwrap();
    let mut host = KillOnDrop(
        papy()
            .args(["run", "-q", file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers = loop {
        let c = children(host.0.id());
        if c.len() >= 2 {
            break c;
        }
        assert!(Instant::now() < deadline, "no local workers");
        std::thread::sleep(Duration::from_millis(20));
    };
    host.0.kill().unwrap();
    host.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for pid in workers {
        // Gone, or a zombie waiting for init to reap it.
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                Instant::now() < deadline,
                "local worker {pid} outlived its host"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
