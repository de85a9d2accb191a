//! Per-worker initialisation (issue 18): an init function runs exactly once
//! per worker (thread or process, recycled workers included), its result is
//! the state every call on that worker reads, and a failing init fails the
//! worker's start with its error.

mod common;

use common::*;
use papy::protocol::Call;
use papy::{Dagger, NuMap, Piper, Pool, ProcessPool, ThreadPool, Value, Worker, WorkerCommand};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

papy::enable_test_support!();

static THREAD_INITS: AtomicUsize = AtomicUsize::new(0);

/// A thread init: counted, returns the thread's name.
#[papy::worker]
fn t_init_thread(_: Value) -> String {
    THREAD_INITS.fetch_add(1, Ordering::SeqCst);
    std::thread::current().name().unwrap_or("?").to_string()
}

/// A process init: appends this process's id to `path`, returns it.
#[papy::worker]
fn t_init_process(_: Value, path: String) -> i64 {
    use std::io::Write;
    let pid = std::process::id();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        // One write per line: workers append to the same file at once.
        let _ = f.write_all(format!("{pid}\n").as_bytes());
    }
    i64::from(pid)
}

/// An init that fails.
#[papy::worker]
fn t_init_fails(_: Value) -> Result<i64, String> {
    Err("no database at db.invalid".into())
}

/// `[x, this worker's state]`.
#[papy::worker]
fn t_with_state(x: i64) -> Vec<Value> {
    vec![Value::Int(x), papy::worker_state().unwrap_or(Value::Null)]
}

fn run_on(m: &NuMap, n: i64) -> Vec<Value> {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("p", Worker::new("t_with_state").unwrap()).parallel(m))
        .unwrap();
    run_all(d, ints(0..n))
        .remove(0)
        .1
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

fn states(out: &[Value]) -> Vec<Value> {
    out.iter()
        .map(|v| {
            v.as_list()
                .and_then(|l| l.get(1))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect()
}

#[test]
fn each_thread_runs_its_init_once_and_its_calls_see_the_result() {
    let before = THREAD_INITS.load(Ordering::SeqCst);
    let pool = ThreadPool::with_init("inits", 3, Worker::new("t_init_thread").unwrap()).unwrap();
    assert_eq!(
        THREAD_INITS.load(Ordering::SeqCst) - before,
        3,
        "once per thread"
    );
    let m = NuMap::builder()
        .pool(Arc::new(pool))
        .stride(2)
        .build()
        .unwrap();
    let out = run_on(&m, 40);
    assert_eq!(out.len(), 40);
    for s in states(&out) {
        let s = s.as_str().unwrap_or_default().to_string();
        assert!(s.starts_with("inits-worker-"), "{s}");
    }
    assert_eq!(
        THREAD_INITS.load(Ordering::SeqCst) - before,
        3,
        "and never again"
    );
}

#[test]
fn a_failing_thread_init_fails_the_pool_with_its_error() {
    let err = ThreadPool::with_init("bad", 2, Worker::new("t_init_fails").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("init `") && err.contains("no database at db.invalid"),
        "{err}"
    );
}

fn process_init(path: &std::path::Path) -> Call {
    Call {
        function: "t_init_process".into(),
        args: vec![Value::from(path.display().to_string())],
    }
}

#[test]
fn each_worker_process_runs_its_init_once_recycled_ones_included() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("inits");
    let cmd = WorkerCommand::current_exe()
        .unwrap()
        .init(process_init(&log));
    let pool = Arc::new(ProcessPool::new("inits", 2, cmd).unwrap());
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(4)
        .build()
        .unwrap();
    let out = run_on(&m, 60);
    // Every worker started has run its init by the time the pool is gone
    // (a second worker may not have started before one finished the run).
    drop(m);
    drop(pool);
    let lines = std::fs::read_to_string(&log).unwrap();
    let pids: Vec<i64> = lines.lines().map(|l| l.parse().unwrap()).collect();
    let distinct: std::collections::BTreeSet<i64> = pids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        pids.len(),
        "an init ran twice in a worker: {pids:?}"
    );
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
    for s in states(&out) {
        assert!(
            pids.contains(&s.as_int().unwrap()),
            "the state is its worker's init's"
        );
    }
    // Recycled workers are new workers: each runs the init once.
    let log = dir.path().join("recycled");
    let cmd = WorkerCommand::current_exe()
        .unwrap()
        .init(process_init(&log))
        .recycle(papy::pool::Recycle {
            after_items: Some(10),
            above_rss: None,
        });
    let pool = Arc::new(ProcessPool::new("recycled-inits", 1, cmd).unwrap());
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(1)
        .build()
        .unwrap();
    let out = run_on(&m, 35);
    assert_eq!(out.len(), 35);
    let inits = std::fs::read_to_string(&log).unwrap().lines().count();
    let recycled = pool.stats().recycled;
    assert_eq!(inits as u64, recycled + 1, "one init per worker started");
    assert_eq!(inits, 4, "35 items, 10 per worker");
}

#[test]
fn a_failing_process_init_fails_the_workers_start_with_its_error() {
    let cmd = WorkerCommand::current_exe().unwrap().init(Call {
        function: "t_init_fails".into(),
        args: vec![],
    });
    let pool = Arc::new(ProcessPool::new("bad-inits", 1, cmd).unwrap());
    let m = NuMap::builder().pool(pool).stride(1).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("p", Worker::new("t_with_state").unwrap()).parallel(&m))
        .unwrap();
    let items = run_all(d, ints(0..2)).remove(0).1;
    for item in items {
        let e = item.unwrap_err();
        assert!(
            e.message()
                .contains("init `t_init_fails` failed: no database at db.invalid"),
            "{e}"
        );
    }
}

static FLAKY_INITS: AtomicUsize = AtomicUsize::new(0);

/// An init that succeeds the first time only.
#[papy::worker]
fn t_init_once(_: Value) -> Result<i64, String> {
    match FLAKY_INITS.fetch_add(1, Ordering::SeqCst) {
        0 => Ok(1),
        n => Err(format!("init attempt {n} refused")),
    }
}

#[test]
fn a_replacement_thread_whose_init_fails_fails_its_items_instead_of_leaving_them_waiting() {
    // Item 0 overruns its timeout: the thread is abandoned and a
    // replacement started, whose init fails.
    let items = run_with_timeout("t_init_once", 1, [2000, 0], 4);
    assert_eq!(items.len(), 4, "every item comes back");
    assert_eq!(
        items[0].as_ref().unwrap_err().kind(),
        papy::ErrorKind::Timeout
    );
    for item in &items[1..] {
        let e = item.as_ref().unwrap_err();
        assert!(e.message().contains("init attempt 1 refused"), "{e}");
    }
}

/// Runs `t_slow` (item 0 sleeps `ms[0]`, the others `ms[1]`) with a 200 ms
/// timeout per item on `threads` threads whose init is `init`.
fn run_with_timeout(init: &str, threads: usize, ms: [i64; 2], n: i64) -> Vec<papy::Item> {
    let pool = ThreadPool::with_init(init, threads, Worker::new(init).unwrap()).unwrap();
    let m = NuMap::builder()
        .pool(Arc::new(pool))
        .stride(1)
        .build()
        .unwrap();
    let opts = papy::TaskOptions {
        timeout: Some(std::time::Duration::from_millis(200)),
        ..papy::TaskOptions::default()
    };
    let w = Worker::with_args("t_slow", ms.map(Value::Int)).unwrap();
    let t = m
        .add_task_with(w, (0..n).map(Value::Int).collect::<Vec<_>>(), opts)
        .unwrap();
    m.start().unwrap();
    m.results(t).unwrap().collect()
}

static TWICE_INITS: AtomicUsize = AtomicUsize::new(0);

/// An init that succeeds twice, then fails.
#[papy::worker]
fn t_init_twice(_: Value) -> Result<i64, String> {
    match TWICE_INITS.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Ok(1),
        n => Err(format!("init attempt {n} refused")),
    }
}

/// Sleeps `first_ms` on item 0 and `rest_ms` on the others.
#[papy::worker]
fn t_slow(x: i64, first_ms: u64, rest_ms: u64) -> i64 {
    let ms = if x == 0 { first_ms } else { rest_ms };
    std::thread::sleep(std::time::Duration::from_millis(ms));
    x
}

#[test]
fn a_replacement_whose_init_fails_leaves_the_work_to_the_healthy_threads() {
    // Item 0 overruns; the others keep the healthy thread busy well past
    // the moment the replacement (whose init fails) starts.
    let items = run_with_timeout("t_init_twice", 2, [1000, 20], 30);
    assert_eq!(items.len(), 30);
    assert_eq!(
        items[0].as_ref().unwrap_err().kind(),
        papy::ErrorKind::Timeout
    );
    for (i, item) in items.iter().enumerate().skip(1) {
        assert_eq!(
            item.as_ref().ok(),
            Some(&Value::Int(i as i64)),
            "item {i}: {item:?}"
        );
    }
}
