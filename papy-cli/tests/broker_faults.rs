//! Redis killed for good under `papy run` (issue 29): the host notices
//! within a bounded time, fails naming the broker, never hangs; `papy run
//! --resume` against a new Redis completes the run, and `--retry-failed`
//! repairs the items that were in flight: every item exactly once.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod plugins;
#[path = "../../papy-broker/tests/support/mod.rs"]
mod redis_support;

mod relay_support;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use relay_support::{python_ready, python_worker, KillOnDrop};

/// The exit status of `child`; one that takes longer than `limit` fails
/// the test (a hang guard, not a timing).
fn wait_within(child: &mut KillOnDrop, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "papy did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `papy ARGS` in `dir`, its stderr in `dir/stderr-NAME`.
fn papy(dir: &Path, name: &str, args: &[&str]) -> KillOnDrop {
    python_ready();
    let err = std::fs::File::create(dir.join(format!("stderr-{name}"))).unwrap();
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_papy"))
            .current_dir(dir)
            .env("PAPY_PLUGIN_PATH", plugins::plugin_dir())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

const WORKER: &str = r#"
import os, sys, time
sys.path.insert(0, SDK)
from papy_worker import function, serve

@function("py.gated")
def gated(x, k, gate):
    # Items from k on wait for the gate: the first run cannot end before
    # its Redis is killed.
    while x >= k and not os.path.exists(gate):
        time.sleep(0.01)
    return x * 10

if __name__ == "__main__":
    serve()
"#;

const ITEMS: i64 = 60;

/// The pipeline: 0..ITEMS through `py.gated` on two broker workers that
/// relay to Python, into `out.txt`; on the Redis at `url`.
fn write_pipeline(dir: &Path, url: &str) -> PathBuf {
    python_worker(dir, "slow.py", WORKER);
    let file = dir.join("farm.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[resources.farm]
kind = "redis"
url = "{url}"
workers = 2
command = "exec python3 slow.py"
functions = ["py.gated"]
stride = 1

[inputs.numbers]
kind = "range"
start = 0
end = {ITEMS}

[[pipers]]
name = "slow"
resource = "farm"
inputs = ["numbers"]
worker = [{{ function = "py.gated", args = [20, "gate"] }}]

[outputs.out]
piper = "slow"
path = "out.txt"
"#
        ),
    )
    .unwrap();
    file
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_redis_killed_for_good_fails_the_run_clearly_and_resume_on_a_new_one_completes_it() {
    let dir = std::env::temp_dir().join(format!("papy-broker-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut first = redis_support::RedisServer::start();
    let file = write_pipeline(&dir, &first.url());
    let file = file.to_str().unwrap();
    let args = [
        "run",
        "-q",
        "--resume",
        "state.json",
        "--errors",
        "errors.jsonl",
    ];
    let mut run = papy(&dir, "first", &[&args[..], &["--fail-fast", file]].concat());
    let out = dir.join("out.txt");
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines(&out).len() < 10 {
        assert!(Instant::now() < deadline, "the run made no progress");
        assert!(run.0.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.stop();
    // The run fails without its Redis; the items it has not sent may pass.
    std::fs::write(dir.join("gate"), "").unwrap();
    let status = wait_within(&mut run, Duration::from_secs(120));
    let err = std::fs::read_to_string(dir.join("stderr-first")).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("the broker has not answered") || err.contains("the broker is unreachable"),
        "the error names the cause: {err}"
    );
    let done = lines(&out).len();
    assert!(done < ITEMS as usize, "the run stopped before its end");

    // A new Redis: the same file (the state is the file's), another URL.
    let second = redis_support::RedisServer::start();
    write_pipeline(&dir, &second.url());
    let mut resumed = papy(
        &dir,
        "resume",
        &["run", "-q", "--resume", "state.json", file],
    );
    let status = wait_within(&mut resumed, Duration::from_secs(180));
    let err = std::fs::read_to_string(dir.join("stderr-resume")).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("resuming"), "{err}");
    // The items the dead Redis held failed (errors.jsonl): run them again.
    let mut retried = papy(
        &dir,
        "retry",
        &["run", "-q", "--retry-failed", "errors.jsonl", file],
    );
    let status = wait_within(&mut retried, Duration::from_secs(180));
    let err = std::fs::read_to_string(dir.join("stderr-retry")).unwrap();
    assert!(status.success(), "{err}");
    let mut got: Vec<i64> = lines(&out).iter().map(|l| l.parse().unwrap()).collect();
    got.sort_unstable();
    let want: Vec<i64> = (0..ITEMS).map(|x| x * 10).collect();
    assert_eq!(got, want, "every item exactly once across the three runs");
    let _ = std::fs::remove_dir_all(&dir);
}
