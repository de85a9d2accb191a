//! The scheduling core is exact and fair: no item is lost at start-up, an
//! idle worker gets work before a busy one, one slow item holds back
//! nothing behind it, chained items are forwarded as they arrive, and a
//! worker crash costs only the items whose own evaluation kills a worker.
//! (Each test failed on the engine before these were fixed.)

mod common;

use common::*;
use papy::{
    worker, Dagger, ErrorKind, NuMap, Piper, Plumber, ProcessPool, Source, TaskOptions, Value,
    Worker, WorkerCommand,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

papy::enable_test_support!();

/// Sleeps `x` milliseconds and returns `x`.
#[worker]
fn s_sleep(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(x.max(0) as u64));
    x
}

/// Sleeps `x` milliseconds and returns this process's id.
#[worker]
fn s_pid_after(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(x.max(0) as u64));
    i64::from(std::process::id())
}

/// Aborts the worker process on positive multiples of `k`.
#[worker]
fn s_abort_on_multiple(x: i64, k: i64) -> i64 {
    if x > 0 && x % k == 0 {
        std::process::abort();
    }
    x
}

fn values(items: impl IntoIterator<Item = papy::Item>) -> Vec<i64> {
    items
        .into_iter()
        .map(|r| r.expect("a value").as_int().expect("an int"))
        .collect()
}

fn process_pool(name: &str, n: usize) -> Arc<ProcessPool> {
    Arc::new(ProcessPool::new(name, n, WorkerCommand::current_exe().unwrap()).unwrap())
}

#[test]
fn a_dependent_task_reading_a_numap_started_later_yields_every_item() {
    let x = NuMap::builder().workers(2).stride(4).build().unwrap();
    let tx = x
        .add_task(Worker::typed("id", |v: i64| v), 0..500i64)
        .unwrap();
    let y = NuMap::builder().workers(2).stride(4).build().unwrap();
    let dependent = TaskOptions {
        dependent: true,
        ..TaskOptions::default()
    };
    let ty = y
        .add_task_with(
            Worker::typed("inc", |v: i64| v + 1),
            x.results(tx).unwrap(),
            dependent,
        )
        .unwrap();
    // The reader of X starts first; X starts a moment later.
    y.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    x.start().unwrap();
    let out = values(y.results(ty).unwrap());
    assert_eq!(out, (1..=500).collect::<Vec<i64>>());
}

#[test]
fn reading_before_the_start_waits_for_it_instead_of_ending() {
    let m = NuMap::builder().workers(2).build().unwrap();
    let t = m
        .add_task(Worker::typed("id", |v: i64| v), 0..10i64)
        .unwrap();
    let mut early = m.results(t).unwrap();
    assert_eq!(
        early.next_timeout(Duration::from_millis(50)),
        papy::numap::Next::TimedOut,
        "not started: nothing yet, and not the end"
    );
    m.start().unwrap();
    assert_eq!(values(early), (0..10).collect::<Vec<i64>>());
}

/// a -> b -> c with a and c on NuMap X and b on NuMap Y.
fn sandwich() -> Dagger {
    let x = NuMap::builder()
        .name("X")
        .workers(2)
        .stride(3)
        .build()
        .unwrap();
    let y = NuMap::builder()
        .name("Y")
        .workers(2)
        .stride(2)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("a", Worker::with_args("t_add", [1]).unwrap()).parallel(&x))
        .unwrap();
    d.add_piper(Piper::new("b", Worker::with_args("t_mul", [2]).unwrap()).parallel(&y))
        .unwrap();
    d.add_piper(Piper::new("c", Worker::with_args("t_add", [5]).unwrap()).parallel(&x))
        .unwrap();
    d.add_pipe(["a", "b", "c"]).unwrap();
    d
}

#[test]
fn the_x_y_x_sandwich_loses_nothing_in_300_runs() {
    let want: Vec<i64> = (0..40).map(|v| (v + 1) * 2 + 5).collect();
    for run in 0..300 {
        let out = run_all(sandwich(), ints(0..40)).remove(0).1;
        assert_eq!(values(out), want, "run {run}");
    }
}

#[test]
fn three_warm_processes_run_three_equal_sleeps_on_three_distinct_pids() {
    let pool = process_pool("warm3", 3);
    // Warm up: every worker started and shook hands.
    let warm = NuMap::builder().pool(pool.clone()).build().unwrap();
    let t = warm
        .add_task(Worker::new("s_pid_after").unwrap(), vec![0i64; 30])
        .unwrap();
    warm.start().unwrap();
    assert_eq!(warm.results(t).unwrap().filter(Result::is_ok).count(), 30);
    for _ in 0..100 {
        if pool.pids().len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pool.pids().len(), 3, "three live workers");
    for round in 0..4 {
        let m = NuMap::builder()
            .pool(pool.clone())
            .ordered(false)
            .build()
            .unwrap();
        let t = m
            .add_task(Worker::new("s_pid_after").unwrap(), vec![300i64; 3])
            .unwrap();
        m.start().unwrap();
        let pids: BTreeSet<i64> = values(m.results(t).unwrap()).into_iter().collect();
        assert_eq!(
            pids.len(),
            3,
            "round {round}: one sleep per process, got {pids:?}"
        );
    }
}

fn fast_ones_pass_the_slow_one(m: &NuMap) {
    let t = m
        .add_task(Worker::new("s_sleep").unwrap(), vec![1000i64, 50, 50, 50])
        .unwrap();
    m.start().unwrap();
    let out = values(m.results(t).unwrap());
    assert_eq!(out, [50, 50, 50, 1000], "the fast items come first");
}

#[test]
fn unordered_fast_items_are_not_held_behind_a_slow_one_on_threads() {
    let m = NuMap::builder().workers(2).ordered(false).build().unwrap();
    fast_ones_pass_the_slow_one(&m);
}

#[test]
fn unordered_fast_items_are_not_held_behind_a_slow_one_on_processes() {
    let pool = process_pool("unordered2", 2);
    let m = NuMap::builder().pool(pool).ordered(false).build().unwrap();
    fast_ones_pass_the_slow_one(&m);
}

static SLOW_STAGE_DONE: AtomicBool = AtomicBool::new(false);

#[test]
fn a_chain_delivers_its_first_result_before_a_slow_item_behind_it_finishes() {
    // Three stages on one NuMap; item 1 is slow at stage 1. Item 0 must
    // come out of stage 3 without waiting for it (no stride-sized batches
    // between stages).
    let stage = |name: &'static str| {
        Worker::typed(name, |v: i64| {
            std::thread::sleep(Duration::from_millis(v as u64));
            if v >= 1000 {
                SLOW_STAGE_DONE.store(true, Ordering::SeqCst);
            }
            v
        })
    };
    let m = NuMap::builder().workers(2).stride(2).build().unwrap();
    let s1 = m.add_task(stage("s1"), vec![10i64, 1500, 10, 10]).unwrap();
    let s2 = m
        .add_chained(stage("s2"), s1, TaskOptions::default())
        .unwrap();
    let s3 = m
        .add_chained(stage("s3"), s2, TaskOptions::default())
        .unwrap();
    m.start().unwrap();
    let mut out = m.results(s3).unwrap();
    let first = out.next().expect("a first result").expect("a value");
    assert_eq!(first, Value::Int(10));
    assert!(
        !SLOW_STAGE_DONE.load(Ordering::SeqCst),
        "the first result waited for the slow item"
    );
    assert_eq!(values(out), [1500, 10, 10]);
}

fn poison_run(retries: u32) -> (Vec<u64>, usize) {
    let pool = process_pool("poison", 2);
    let m = NuMap::builder().pool(pool).stride(16).build().unwrap();
    let options = TaskOptions {
        retries,
        ..TaskOptions::default()
    };
    let t = m
        .add_task_with(
            Worker::with_args("s_abort_on_multiple", [100]).unwrap(),
            0..800i64,
            options,
        )
        .unwrap();
    m.start().unwrap();
    let mut errors = Vec::new();
    let mut ok = 0;
    for (i, r) in m.results(t).unwrap().enumerate() {
        match r {
            Ok(v) => {
                assert_eq!(v, Value::Int(i as i64));
                ok += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
                assert_eq!(e.index(), Some(i as u64));
                errors.push(i as u64);
            }
        }
    }
    (errors, ok)
}

#[test]
fn a_poison_item_fails_alone_and_its_batch_mates_succeed() {
    let poison: Vec<u64> = (1..8).map(|k| k * 100).collect();
    for retries in [0, 2] {
        let (errors, ok) = poison_run(retries);
        assert_eq!(errors, poison, "retries = {retries}");
        assert_eq!(ok, 800 - poison.len(), "retries = {retries}");
    }
}

#[test]
fn stride_without_workers_sets_the_worker_count() {
    let m = NuMap::builder().stride(3).build().unwrap();
    assert_eq!((m.workers(), m.stride()), (3, 3));
}

#[test]
fn a_task_can_be_added_after_a_finished_run() {
    let m = NuMap::builder().workers(2).build().unwrap();
    let t = m
        .add_task(Worker::typed("id", |v: i64| v), 0..5i64)
        .unwrap();
    m.start().unwrap();
    assert_eq!(values(m.results(t).unwrap()), [0, 1, 2, 3, 4]);
    let u = m
        .add_task(Worker::typed("neg", |v: i64| -v), 0..3i64)
        .expect("a finished NuMap takes new tasks");
    m.start().unwrap();
    assert_eq!(values(m.results(u).unwrap()), [0, -1, -2]);
}

#[test]
fn papy_sequence_start_run_wait_pause_stop_works() {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("a", Worker::with_args("t_add", [1]).unwrap()))
        .unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("a").unwrap();
    p.start([("a", Source::values(0..3i64))]).unwrap();
    p.run().unwrap();
    assert!(p.wait(None).unwrap());
    p.pause().expect("pausing a finished run does nothing");
    p.stop().unwrap();
    assert_eq!(values(out.take()), [1, 2, 3]);
}

/// PaPy's order with a full buffer: tasks take turns in a fixed cycle, and
/// a round that ends where it began goes on from there (no task takes two
/// turns while another waits). Three tasks on one worker with a buffer of
/// three items, read in turn with uneven pauses (and random delays at the
/// hand-offs when `PAPY_CHAOS` is set): the worker evaluates the items in
/// the exact cycle A B C A B C...
#[test]
fn tasks_take_turns_in_a_fixed_cycle_when_the_buffer_is_full() {
    for round in 0..20u64 {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = NuMap::builder()
            .workers(1)
            .stride(1)
            .buffer(3)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..3i64)
            .map(|t| {
                let log = log.clone();
                let w = Worker::typed("s_logged", move |x: i64| {
                    log.lock().unwrap().push(x);
                    x
                });
                m.add_task(w, (0..12i64).map(move |i| t * 100 + i)).unwrap()
            })
            .collect();
        m.start().unwrap();
        let mut readers: Vec<_> = tasks.iter().map(|&t| m.results(t).unwrap()).collect();
        for i in 0..12 {
            for (k, r) in readers.iter_mut().enumerate() {
                if (i + k as u64 + round) % 4 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let v = r.next().expect("an item").expect("a value");
                assert_eq!(v.as_int(), Some(k as i64 * 100 + i as i64));
            }
        }
        let expected: Vec<i64> = (0..12)
            .flat_map(|i| (0..3).map(move |t| t * 100 + i))
            .collect();
        assert_eq!(*log.lock().unwrap(), expected, "round {round}");
    }
}
