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
mod relay_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use relay_support::*;

#[test]
fn a_python_node_on_a_redis_resource_gives_the_local_output() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("example");
    let file = python_example_on(
        &dir,
        &redis_on(
            &server.url(),
            &format!("workers = 2\ncommand = \"exec python3 {}\"", shout_worker()),
        ),
    );
    let want = std::fs::read_to_string(root().join("examples/pipelines/expected/python_node.out"))
        .unwrap();
    assert_eq!(succeeds(papy().args(["run", "-q"]).arg(&file)), want);
    // Keyword arguments of a function only the relayed worker holds: `papy
    // run` binds them by probing one (the redis resource's `command`).
    let by_name = r#"pipers.1.worker=[{ function = "py.shout", kwargs = { suffix = " !" } }]"#;
    let run = ["run", "-q", file.to_str().unwrap(), "--set", by_name];
    assert_eq!(succeeds(papy().args(run)), want);
    succeeds(papy().arg("check").arg(&file));
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
        &redis_on(
            &server.url(),
            &format!(
                "run_id = \"relay\"\nkey_file = {:?}",
                key.display().to_string()
            ),
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
    let want = std::fs::read_to_string(root().join("examples/pipelines/expected/python_node.out"))
        .unwrap();
    assert_eq!(succeeds(papy().args(["run", "-q"]).arg(&file)), want);
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

/// A pipeline `name` of 0..40 through `py.die_on` with `k` and `marker`,
/// on `resource`; returns its file.
fn dying_pipeline(dir: &Path, name: &str, resource: &str, k: i64, marker: &str) -> PathBuf {
    let script = python_worker(dir, "dying_worker.py", DYING_WORKER);
    let resource = format!("{resource}\nfunctions = [\"py.die_on\"]\nstride = 8")
        .replace("SCRIPT", &script.display().to_string());
    let worker = format!("[{{ function = \"py.die_on\", args = [{k}, {marker:?}] }}]");
    one_piper(dir, name, &resource, &range(40), &worker)
}

/// Runs `file` with `--errors`; its stdout, and the failed items' lines.
fn run_with_errors(dir: &Path, file: &Path) -> (String, Vec<String>) {
    let errors = dir.join("errors.jsonl");
    let _ = std::fs::remove_file(&errors);
    let out = succeeds(
        papy()
            .args(["run", "-q", "--allow-errors", "--errors"])
            .arg(&errors)
            .arg(file),
    );
    let failed = std::fs::read_to_string(&errors)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (out, failed)
}

#[test]
fn a_child_that_dies_on_an_item_costs_that_item_as_on_local_processes() {
    let server = redis_support::RedisServer::start();
    let dir = scratch("dies");
    let local = dying_pipeline(
        &dir,
        "local",
        "kind = \"remote\"\nremote = [{ command = \"exec python3 SCRIPT\", workers = 2 }]",
        13,
        "",
    );
    let redis = dying_pipeline(
        &dir,
        "redis",
        &redis_on(
            &server.url(),
            "workers = 2\ncommand = \"exec python3 SCRIPT\"",
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
        "killed",
        &redis_on(
            &server.url(),
            "workers = 2\ncommand = \"exec python3 SCRIPT\"",
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
