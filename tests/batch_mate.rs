//! Issue 28's "a slow item's result is held for its batch-mate", on a real
//! worker process: jobs of a task whose pace is not measured yet never share
//! a frame, even when their function chain ran fast on this pool before, so
//! an item's result never waits for an item queued behind it. Item 1 blocks
//! until the test has read item 0's result: merged into one frame, item 0's
//! result could only come once item 1 gave up waiting. Under the schedule
//! fuzzing (random delays at every hand-off) too.

use papy::{worker, NuMap, ProcessPool, Worker, WorkerCommand};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

papy::enable_test_support!();

/// Waits until the file `path` exists (at most 30 s): `"released"`, or
/// `"gave up"`.
#[worker]
fn bm_gate(path: String) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(&path).exists() {
        if Instant::now() > deadline {
            return "gave up".into();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    "released".into()
}

fn run_once(pool: &Arc<ProcessPool>, dir: &Path, round: usize) {
    let open = dir.join("open");
    let gate = dir.join(format!("gate-{round}"));
    let path = |p: &Path| p.display().to_string();
    let items = vec![path(&open), path(&gate), path(&open)];
    let m = NuMap::builder().pool(pool.clone()).build().unwrap();
    let t = m.add_task(Worker::new("bm_gate").unwrap(), items).unwrap();
    m.start().unwrap();
    let mut out = m.results(t).unwrap();
    let first = out.next().expect("a first result").expect("a value");
    assert_eq!(first.as_str(), Some("released"), "round {round}");
    // Item 1 may finish only now.
    std::fs::write(&gate, b"").unwrap();
    let rest: Vec<String> = out
        .map(|r| r.expect("a value").as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        rest,
        ["released", "released"],
        "round {round}: item 1 was held in one frame with item 0"
    );
}

#[test]
fn a_result_is_never_held_for_an_item_queued_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("open"), b"").unwrap();
    let pool =
        Arc::new(ProcessPool::new("mates", 1, WorkerCommand::current_exe().unwrap()).unwrap());
    // The chain runs fast here first: the pool remembers its pace.
    let warm = NuMap::builder().pool(pool.clone()).build().unwrap();
    let open = dir.path().join("open").display().to_string();
    let t = warm
        .add_task(Worker::new("bm_gate").unwrap(), vec![open; 64])
        .unwrap();
    warm.start().unwrap();
    assert_eq!(warm.results(t).unwrap().count(), 64);
    for round in 0..3 {
        run_once(&pool, dir.path(), round);
    }
    for seed in 0..5 {
        papy::chaos::enable(seed, Duration::from_micros(300));
        run_once(&pool, dir.path(), 3 + seed as usize);
        papy::chaos::disable();
    }
}
