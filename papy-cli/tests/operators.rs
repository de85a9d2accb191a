//! `papy run` as operators use it: SIGTERM and double signals lose nothing
//! finished, a closed stdout ends the run quietly, thousands of failures
//! stay readable and can be rerun, an interrupted run resumes exactly, and
//! no worker outlives a killed host.

#![cfg(unix)]

#[path = "common/procs.rs"]
mod procs;
#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;
use procs::children_of;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn papy() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_papy"));
    c.current_dir(root())
        .env("PAPY_PLUGIN_PATH", support::plugin_dir())
        .env("RUST_BACKTRACE", "1");
    c
}

/// Kills the child if the test fails before it exits.
struct Guard(u32);

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(i32::try_from(self.0).unwrap_or(0), libc::SIGKILL) };
        }
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Waits until `path` has at least `n` lines (a hang guard, not a timing goal).
fn wait_for_lines(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count()) < n {
        assert!(
            Instant::now() < deadline,
            "{} never reached {n} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn endless(dir: &Path, end: &str) -> PathBuf {
    write(
        dir,
        "endless.toml",
        &format!(
            "[resources.pool]\nworkers = 2\n[inputs.n]\nkind = \"range\"\nstart = 0\nend = {end}\n\
             [[pipers]]\nname = \"a\"\nresource = \"pool\"\ninputs = [\"n\"]\nworker = [\"papy.ipasser\"]\n\
             [outputs.o]\npiper = \"a\"\npath = \"{}\"\n",
            dir.join("out.txt").display()
        ),
    )
}

#[test]
fn sigterm_flushes_every_finished_item_prints_statistics_and_exits_143() {
    let dir = tempfile::tempdir().expect("dir");
    let file = endless(dir.path(), "1000000000000");
    let stats = dir.path().join("stats.json");
    let child = papy()
        .args(["run", file.to_str().expect("utf-8"), "--stats-json"])
        .arg(&stats)
        .stderr(Stdio::piped())
        .spawn()
        .expect("papy");
    let _guard = Guard(child.id());
    wait_for_lines(&dir.path().join("out.txt"), 1000);
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().expect("exit");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("run time"), "statistics printed: {err}");
    let text = std::fs::read_to_string(dir.path().join("out.txt")).expect("out");
    let lines: Vec<&str> = text.lines().collect();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    let counted = json["nodes"]["a"]["out"].as_u64().expect("a count");
    assert!(counted > 0);
    assert_eq!(
        lines.len() as u64,
        counted,
        "every item counted as output is in the file"
    );
    assert!(
        lines.iter().enumerate().all(|(i, l)| *l == i.to_string()),
        "in order, whole lines"
    );
}

#[test]
fn a_second_signal_cancels_items_in_flight_and_keeps_every_finished_one() {
    let dir = tempfile::tempdir().expect("dir");
    // Slow items on worker processes: a graceful stop would wait for them.
    let file = write(
        dir.path(),
        "slow.toml",
        &format!(
            "[plugins]\nload = [\"math\"]\n[resources.pool]\nkind = \"process\"\nworkers = 2\nstride = 2\n\
             [inputs.n]\nkind = \"range\"\nstart = 0\nend = 1000000000\n\
             [[pipers]]\nname = \"burn\"\nresource = \"pool\"\ninputs = [\"n\"]\n\
             worker = [{{ function = \"math.burn\", args = [100000000] }}]\n\
             [outputs.o]\npiper = \"burn\"\npath = \"{}\"\n",
            dir.path().join("out.txt").display()
        ),
    );
    let child = papy()
        .args(["run", "-q", file.to_str().expect("utf-8")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("papy");
    let _guard = Guard(child.id());
    wait_for_lines(&dir.path().join("out.txt"), 2);
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(50));
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().expect("exit");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let text = std::fs::read_to_string(dir.path().join("out.txt")).expect("out");
    let written = err
        .lines()
        .find_map(|l| l.strip_prefix("papy: cancelled; the "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!(written >= 2, "{err}");
    assert_eq!(
        text.lines().count(),
        written,
        "every finished item is in the file"
    );
    assert!(text.ends_with('\n'), "no half line");
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "stdout.toml",
        "[inputs.n]\nkind = \"range\"\nstart = 0\nend = 1000000000000\n\
         [[pipers]]\nname = \"a\"\ninputs = [\"n\"]\nworker = [\"papy.ipasser\"]\n\
         [outputs.o]\npiper = \"a\"\n",
    );
    let mut child = papy()
        .args(["run", file.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("papy");
    let _guard = Guard(child.id());
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a line");
    assert_eq!(first, "0\n");
    // The reader is gone (dropped with the BufReader), as with `| head -1`.
    let out = child.wait_with_output().expect("exit");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "nothing on stderr"
    );
}

#[test]
fn twenty_thousand_failures_stay_readable_and_rerun_exactly() {
    let dir = tempfile::tempdir().expect("dir");
    let out_path = dir.path().join("out.txt");
    let file = write(
        dir.path(),
        "fail.toml",
        &format!(
            "[plugins]\nload = [\"math\"]\n[resources.pool]\nworkers = 2\n\
             [inputs.n]\nkind = \"range\"\nstart = -20000\nend = 5\n\
             [[pipers]]\nname = \"f\"\nresource = \"pool\"\ninputs = [\"n\"]\nworker = [\"math.fragile\"]\n\
             [outputs.o]\npiper = \"f\"\npath = \"{}\"\n",
            out_path.display()
        ),
    );
    let errors = dir.path().join("errors.jsonl");
    let out = papy()
        .args(["run", file.to_str().expect("utf-8"), "--errors"])
        .arg(&errors)
        .output()
        .expect("papy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().count() <= 30, "a screenful at most:\n{err}");
    assert!(err.contains("20000 failed item(s)"), "{err}");
    assert!(!err.contains("stack backtrace"), "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .expect("errors")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 20000);
    assert_eq!(lines[0]["input"], "n");
    assert_eq!(lines[0]["index"], 0);
    assert_eq!(lines[0]["kind"], "panic");
    assert_eq!(lines[0]["function"], "math.fragile");
    assert_eq!(lines[19999]["index"], 19999);
    // Fix the cause (a function that accepts negative numbers) and rerun
    // exactly the failed items.
    let again = papy()
        .args(["run", "-q", file.to_str().expect("utf-8"), "--retry-failed"])
        .arg(&errors)
        .args(["--set", "pipers.0.worker=[\"math.square\"]"])
        .output()
        .expect("papy");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let got: Vec<i64> = std::fs::read_to_string(&out_path)
        .expect("out")
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect();
    // The rerun's results are added after those of the first run.
    let mut want: Vec<i64> = (0..5).collect();
    want.extend((-20000i64..0).map(|x| x * x));
    assert_eq!(got, want);
}

#[test]
fn a_resumed_run_after_sigterm_writes_each_remaining_item_once() {
    let dir = tempfile::tempdir().expect("dir");
    let file = endless(dir.path(), "2000000");
    let state = dir.path().join("state.json");
    let child = papy()
        .args(["run", "-q", file.to_str().expect("utf-8"), "--resume"])
        .arg(&state)
        .stderr(Stdio::piped())
        .spawn()
        .expect("papy");
    let _guard = Guard(child.id());
    wait_for_lines(&dir.path().join("out.txt"), 1000);
    signal(&child, libc::SIGTERM);
    let first = child.wait_with_output().expect("exit");
    assert_eq!(
        first.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = std::fs::read_to_string(dir.path().join("out.txt"))
        .expect("out")
        .lines()
        .count();
    let second = papy()
        .args(["run", "-q", file.to_str().expect("utf-8"), "--resume"])
        .arg(&state)
        .output()
        .expect("papy");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{before} input item(s) done")),
        "{err}"
    );
    let text = std::fs::read_to_string(dir.path().join("out.txt")).expect("out");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2_000_000);
    assert!(
        lines.iter().enumerate().all(|(i, l)| *l == i.to_string()),
        "no gap, no duplicate"
    );
}

#[test]
fn no_worker_outlives_a_killed_host() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "slow.toml",
        "[plugins]\nload = [\"math\"]\n[resources.pool]\nkind = \"process\"\nworkers = 2\nstride = 2\n\
         [inputs.n]\nkind = \"range\"\nstart = 0\nend = 1000000000\n\
         [[pipers]]\nname = \"burn\"\nresource = \"pool\"\ninputs = [\"n\"]\n\
         worker = [{ function = \"math.burn\", args = [4000000000000000000] }]\n",
    );
    let mut child = papy()
        .args(["run", "-q", file.to_str().expect("utf-8")])
        .stderr(Stdio::null())
        .spawn()
        .expect("papy");
    let _guard = Guard(child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers = loop {
        let kids = children_of(child.id());
        if kids.len() >= 2 {
            break kids;
        }
        assert!(Instant::now() < deadline, "no worker processes appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Wait until both workers are inside their (long) batch: half a second
    // of CPU each, far more than starting up takes. Then kill the host.
    let cpu_ticks = |w: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{w}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit(')').next()?.to_string();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    while workers.iter().any(|w| cpu_ticks(*w) < 50) {
        assert!(Instant::now() < deadline, "the workers never got busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = |w: u32| {
        std::fs::read_to_string(format!("/proc/{w}/stat")).is_ok_and(|s| !s.contains(") Z"))
    };
    while workers.iter().any(|w| alive(*w)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors: Vec<u32> = workers.iter().copied().filter(|w| alive(*w)).collect();
    for w in &survivors {
        // Do not leave them burning CPU for the other tests.
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(i32::try_from(*w).unwrap_or(0), libc::SIGKILL) };
    }
    assert!(
        survivors.is_empty(),
        "workers {survivors:?} outlived their host"
    );
}

#[test]
fn a_stdio_worker_ends_when_its_parent_is_gone() {
    // The worker's parent is a shell that exits at once; the worker's stdin
    // stays open (the test holds it), so only the parent watch can end it.
    let bin = env!("CARGO_BIN_EXE_papy");
    let mut sh = Command::new("sh")
        // A background job's stdin is /dev/null unless redirected: keep
        // the pipe through descriptor 3.
        .args([
            "-c",
            &format!("exec 3<&0; '{bin}' worker --stdio <&3 3<&- >/dev/null & echo $!; sleep 1"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh");
    let mut line = String::new();
    BufReader::new(sh.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the worker's pid");
    let worker: u32 = line.trim().parse().expect("a pid");
    // `wait` would close the shell's stdin (the worker's too): poll instead.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sh.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the shell did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive = |w: u32| {
        std::fs::read_to_string(format!("/proc/{w}/stat")).is_ok_and(|s| !s.contains(") Z"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(worker) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = alive(worker);
    if survived {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(i32::try_from(worker).unwrap_or(0), libc::SIGKILL) };
    }
    assert!(!survived, "worker {worker} outlived its parent");
    drop(sh.stdin.take());
}

#[test]
fn a_function_only_the_workers_hold_runs_when_the_resource_declares_it() {
    let dir = tempfile::tempdir().expect("dir");
    let bin = env!("CARGO_BIN_EXE_papy");
    // The host loads no plugin; the remote workers load `math`.
    let file = |functions: &str, function: &str| {
        write(
            dir.path(),
            "provided.toml",
            &format!(
                "[resources.far]\nkind = \"remote\"\nremote = [{{ command = \"'{bin}' worker --stdio --plugin math\", workers = 1 }}]\n\
                 functions = [\"{functions}\"]\n\
                 [inputs.n]\nkind = \"range\"\nstart = 0\nend = 5\n\
                 [[pipers]]\nname = \"sq\"\nresource = \"far\"\ninputs = [\"n\"]\nworker = [\"{function}\"]\n\
                 [outputs.o]\npiper = \"sq\"\n"
            ),
        )
    };
    let ok = file("math.square", "math.square");
    let check = papy()
        .args(["check", ok.to_str().expect("utf-8")])
        .output()
        .expect("papy");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = papy()
        .args(["run", "-q", ok.to_str().expect("utf-8")])
        .output()
        .expect("papy");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n4\n9\n16\n");
    // Without the declaration the host refuses the name it does not hold.
    let undeclared = write(
        dir.path(),
        "undeclared.toml",
        &std::fs::read_to_string(&ok)
            .expect("file")
            .replace("functions = [\"math.square\"]\n", ""),
    );
    let refused = papy()
        .args(["check", undeclared.to_str().expect("utf-8")])
        .output()
        .expect("papy");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no worker function named `math.square`")
    );
    // A declared function the workers lack stops the workers at start, by name.
    let missing = file("math.nosuch", "math.nosuch");
    let out = papy()
        .args(["run", "-q", missing.to_str().expect("utf-8")])
        .output()
        .expect("papy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("does not provide `math.nosuch`"), "{err}");
}

/// A resource's `init` is declared to its workers with the functions its
/// pipers call (a worker refuses an init its host did not declare), and may
/// name a function of a plugin the file loads (the plugins are loaded before
/// the init is looked up).
#[test]
fn a_resource_init_is_declared_to_its_workers_and_may_name_a_plugin_function() {
    let dir = tempfile::tempdir().expect("dir");
    let bin = env!("CARGO_BIN_EXE_papy");
    let plugins = support::plugin_dir().display().to_string();
    let file = |kind: &str, init: &str| {
        let pool = match kind {
            "remote" => format!(
                "kind = \"remote\"\nremote = [{{ command = \"'{bin}' worker --stdio --plugin-path '{plugins}' --plugin math\", workers = 1 }}]\n"
            ),
            other => format!("kind = \"{other}\"\nworkers = 1\n"),
        };
        write(
            dir.path(),
            "init.toml",
            &format!(
                "[plugins]\nload = [\"math\"]\n[resources.far]\n{pool}init = \"{init}\"\n\
                 [inputs.n]\nkind = \"range\"\nstart = 0\nend = 5\n\
                 [[pipers]]\nname = \"sq\"\nresource = \"far\"\ninputs = [\"n\"]\nworker = [\"math.square\"]\n\
                 [outputs.o]\npiper = \"sq\"\n"
            ),
        )
    };
    // The pipers call only `math.square`: the init is declared too.
    for kind in ["remote", "process"] {
        let ok = file(kind, "papy.ipasser");
        let out = papy()
            .args(["run", "-q", ok.to_str().expect("utf-8")])
            .output()
            .expect("papy");
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).as_ref()
            ),
            (Some(0), "0\n1\n4\n9\n16\n"),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A plugin's function as the init: found, and run (on its nil input,
    // which `math.square` refuses: the start fails with that reason).
    for kind in ["remote", "process", "thread"] {
        let plugin_init = file(kind, "math.square");
        let check = papy()
            .args(["check", plugin_init.to_str().expect("utf-8")])
            .output()
            .expect("papy");
        assert!(
            check.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let out = papy()
            .args(["run", "-q", plugin_init.to_str().expect("utf-8")])
            .output()
            .expect("papy");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("no worker function named"), "{kind}: {err}");
        assert!(
            err.contains("math.square") && err.contains("Expected i64"),
            "{kind}: {err}"
        );
    }
}

/// `(limit, failed in all, at most taken)` from the limit's message.
fn limit_line(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("papy: stopped at the limit of "))
        .unwrap_or_else(|| panic!("no limit line in:\n{stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{line}");
    (numbers[0], numbers[1], numbers[2])
}

#[test]
fn a_failure_limit_stops_taking_items_and_reports_the_final_count_and_its_bound() {
    // 40 000 inputs, the first 20 000 fail: before, --fail-fast ran them
    // all (20 000 failures) and printed a count that was neither the limit
    // nor the final one.
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "fail.toml",
        &format!(
            "[plugins]\nload = [\"math\"]\n[resources.pool]\nworkers = 2\n\
             [inputs.n]\nkind = \"range\"\nstart = -20000\nend = 20000\n\
             [[pipers]]\nname = \"f\"\nresource = \"pool\"\ninputs = [\"n\"]\nworker = [\"math.fragile\"]\n\
             [outputs.o]\npiper = \"f\"\npath = \"{}\"\n",
            dir.path().join("out.txt").display()
        ),
    );
    for (flag, limit) in [(vec!["--fail-fast"], 1u64), (vec!["--max-errors", "5"], 5)] {
        let errors = dir.path().join("errors.jsonl");
        let out = papy()
            .args(["run", "-q", file.to_str().expect("utf-8"), "--errors"])
            .arg(&errors)
            .args(&flag)
            .output()
            .expect("papy");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let (said_limit, total, bound) = limit_line(&err);
        assert_eq!(said_limit, limit, "{err}");
        let recorded = std::fs::read_to_string(&errors)
            .expect("errors")
            .lines()
            .count() as u64;
        assert_eq!(total, recorded, "the final count: {err}");
        assert!(total >= limit, "{err}");
        // Only what was taken when the limit was reached came out after it.
        assert!(total <= limit + bound, "{total} > {limit} + {bound}: {err}");
        assert!(total < 20_000, "the run stopped taking items: {err}");
        assert!(err.contains(&format!("{total} failed item(s)")), "{err}");
    }
}

#[test]
fn a_closed_stderr_is_quiet_too() {
    // `papy run FILE 2>&1 | head -1`: stdout and stderr are one pipe whose
    // reader leaves after a line. Before, papy panicked (exit 101) writing
    // a failure to the closed stderr.
    let dir = tempfile::tempdir().expect("dir");
    let file = write(
        dir.path(),
        "both.toml",
        "[plugins]\nload = [\"math\"]\n[inputs.n]\nkind = \"range\"\nstart = -1000000\nend = 1000000\n\
         [[pipers]]\nname = \"a\"\ninputs = [\"n\"]\nworker = [\"math.fragile\"]\n\
         [outputs.o]\npiper = \"a\"\n",
    );
    for _ in 0..3 {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let mut child = papy()
            .args(["run", file.to_str().expect("utf-8")])
            .stdout(writer.try_clone().expect("clone"))
            .stderr(writer)
            .spawn()
            .expect("papy");
        let _guard = Guard(child.id());
        let mut first = String::new();
        BufReader::new(reader)
            .read_line(&mut first)
            .expect("a line");
        assert!(first.starts_with("papy: failed: "), "{first}");
        // The reader is gone, as with `| head -1`.
        let status = child.wait().expect("exit");
        assert_eq!(status.code(), Some(0), "as for a closed stdout");
    }
}
