//! Process and remote pools: the same output as threads, crashes and kills
//! cost exactly the items in flight, timeouts replace the child, closures
//! are refused, protocol errors are clear, and no child outlives its pool.

mod common;

use common::*;
use papy::{
    Dagger, Error, ErrorKind, NuMap, Piper, Pool, ProcessPool, Value, Worker, WorkerCommand,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

papy::enable_test_support!();

fn process_pool(name: &str, n: usize) -> Arc<ProcessPool> {
    Arc::new(ProcessPool::new(name, n, WorkerCommand::current_exe().unwrap()).unwrap())
}

fn numap_on(pool: &Arc<ProcessPool>, stride: usize) -> NuMap {
    NuMap::builder()
        .pool(pool.clone())
        .stride(stride)
        .build()
        .unwrap()
}

/// This test binary as a worker, as a shell command line (for "remote" pools).
fn self_as_worker_line() -> String {
    WorkerCommand::current_exe().unwrap().line()
}

/// No process with these ids exists any more (reaped, not zombies).
fn assert_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in pids {
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "child {pid} is still there");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn same_output_on_thread_process_mixed_and_remote_pools() {
    let n = 60;
    let reference = run_all(
        fork_join(Resources {
            workers: Some(2),
            stride: 3,
            buffer: None,
        }),
        ints(0..n),
    );
    let mut pids = Vec::new();
    for stride in [1, 3, 7] {
        let procs = process_pool("p", 2);
        let remote = Arc::new(
            ProcessPool::remote("r", vec![(WorkerCommand::shell(&self_as_worker_line()), 2)])
                .unwrap(),
        );
        let threads = NuMap::builder().workers(2).stride(stride).build().unwrap();
        let on_procs = Some(numap_on(&procs, stride));
        let on_remote = Some(numap_on(&remote, stride));
        assert_eq!(
            run_all(fork_join_on(&on_procs, &on_procs), ints(0..n)),
            reference,
            "process, stride {stride}"
        );
        assert_eq!(
            run_all(fork_join_on(&Some(threads), &on_procs), ints(0..n)),
            reference,
            "mixed, stride {stride}"
        );
        assert_eq!(
            run_all(fork_join_on(&on_remote, &on_remote), ints(0..n)),
            reference,
            "remote, stride {stride}"
        );
        pids.extend(procs.pids().values());
        pids.extend(remote.pids().values());
    }
    assert!(pids.len() >= 6, "{pids:?}");
    assert_gone(&pids);
}

#[test]
fn a_killed_child_costs_exactly_its_items_in_flight() {
    let marker = std::env::temp_dir().join(format!("papy-kill-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let pool = process_pool("kill", 2);
    let m = numap_on(&pool, 1);
    let w = Worker::with_args(
        "t_report_pid_on",
        [
            Value::Int(5),
            Value::from(marker.display().to_string()),
            Value::Int(20_000),
        ],
    )
    .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("slow", w).parallel(&m)).unwrap();
    let mut p = papy::Plumber::new(d);
    let out = p.collect("slow").unwrap();
    p.start([("slow", papy::Source::values(0..20i64))]).unwrap();
    p.run().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Ok(s) = std::fs::read_to_string(&marker) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                break pid;
            }
        }
        assert!(Instant::now() < deadline, "item 5 never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        p.wait(Some(Duration::from_secs(60))).unwrap(),
        "the run finished"
    );
    let items = out.take();
    assert_eq!(items.len(), 20);
    for (i, r) in items.iter().enumerate() {
        if i == 5 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WorkerDied);
            assert!(e.message().contains("signal 9"), "{e}");
            assert_eq!(e.index(), Some(5));
        } else {
            assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64), "item {i}");
        }
    }
    let _ = std::fs::remove_file(&marker);
    let live: Vec<u32> = pool.pids().values().copied().collect();
    drop(p);
    drop(m);
    drop(pool);
    assert_gone(&live);
    assert_gone(&[pid]);
}

#[test]
fn an_aborting_input_yields_one_error_item() {
    let pool = process_pool("abort", 2);
    let m = numap_on(&pool, 2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("a", Worker::with_args("t_abort_on", [4]).unwrap()).parallel(&m))
        .unwrap();
    let out = run_all(d, ints(0..10)).remove(0).1;
    assert_eq!(out.len(), 10);
    let errors: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    // Stride 2 on 2 workers: one item per job, so only item 4 was in the aborted child.
    assert_eq!(errors, [4]);
    let e = out[4].as_ref().unwrap_err();
    assert!(e.message().contains("signal 6"), "{e}");
}

#[test]
fn a_timeout_kills_and_replaces_the_child() {
    let pool = process_pool("timeout", 1);
    let first_pid = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(p) = pool.pids().get(&0) {
                break *p;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let m = numap_on(&pool, 1);
    let slow = Worker::with_args("t_sleep_on", [Value::Int(2), Value::Int(30_000)]).unwrap();
    let mut d = Dagger::new();
    d.add_piper(
        Piper::new("s", slow)
            .parallel(&m)
            .timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let started = Instant::now();
    let out = run_all(d, ints(0..5)).remove(0).1;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the slow child was not waited for"
    );
    let e = out[2].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("killed"), "{e}");
    for i in [0, 1, 3, 4] {
        assert_eq!(out[i], Ok(Value::Int(i as i64)));
    }
    assert_ne!(
        pool.pids().get(&0).copied(),
        Some(first_pid),
        "the child was replaced"
    );
    assert_gone(&[first_pid]);
}

#[test]
fn closures_are_refused_by_process_pools() {
    let pool = process_pool("closure", 1);
    let m = numap_on(&pool, 1);
    let err = m
        .add_task(Worker::typed("my_closure", |x: i64| x), 0..3i64)
        .unwrap_err();
    match &err {
        Error::NotPortable { function, pool } => {
            assert_eq!(function, "my_closure");
            assert_eq!(pool, "process");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("#[worker]"));
}

fn fake_worker(bytes: &[u8], name: &str) -> WorkerCommand {
    let path = std::env::temp_dir().join(format!("papy-fake-{name}-{}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    WorkerCommand::shell(&format!("cat '{}'; sleep 2", path.display()))
}

#[test]
fn protocol_mismatch_and_truncated_frames_are_clear_errors() {
    use papy::protocol::{write_frame, Frame, Hello};
    let mut hello = Hello::here(vec![], vec![]);
    hello.major = 99;
    let mut bytes = papy::protocol::GREETING.to_vec();
    write_frame(&mut bytes, &Frame::Hello(hello)).unwrap();
    let mut truncated = papy::protocol::GREETING.to_vec();
    truncated.extend_from_slice(&[0u8, 0, 0, 100, 1, 2, 3]);
    for (cmd, want) in [
        (fake_worker(&bytes, "major"), "protocol version mismatch"),
        (fake_worker(&truncated, "trunc"), "truncated frame"),
        (
            fake_worker(b"Welcome!\n", "nogreeting"),
            "no papy worker greeting",
        ),
    ] {
        let pool = Arc::new(ProcessPool::remote("fake", vec![(cmd, 1)]).unwrap());
        let m = numap_on(&pool, 1);
        let t = m
            .add_task(Worker::with_args("t_add", [1]).unwrap(), 0..2i64)
            .unwrap();
        m.start().unwrap();
        let out: Vec<_> = m.results(t).unwrap().collect();
        assert_eq!(out.len(), 2);
        let e = out[0].as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied);
        assert!(e.message().contains(want), "{e}");
    }
}

#[test]
fn repeated_deaths_make_the_pool_give_up_with_a_clear_error() {
    let pool = Arc::new(
        ProcessPool::remote(
            "dead",
            vec![(WorkerCommand::new("false", Vec::<String>::new()), 1)],
        )
        .unwrap(),
    );
    let m = numap_on(&pool, 1);
    let t = m
        .add_task(Worker::with_args("t_add", [1]).unwrap(), 0..8i64)
        .unwrap();
    m.start().unwrap();
    let out: Vec<_> = m.results(t).unwrap().collect();
    assert_eq!(out.len(), 8);
    assert!(out.iter().all(Result::is_err));
    let last = out[7].as_ref().unwrap_err();
    assert!(
        last.message()
            .contains("gave up after 5 consecutive failed worker starts"),
        "{last}"
    );
}

#[test]
fn retries_rerun_items_whose_worker_died() {
    for retries in [0, 1] {
        let marker =
            std::env::temp_dir().join(format!("papy-retry-{retries}-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let pool = process_pool("retry", 1);
        let m = numap_on(&pool, 1);
        let w = Worker::with_args(
            "t_abort_once_on",
            [Value::Int(2), Value::from(marker.display().to_string())],
        )
        .unwrap();
        let mut d = Dagger::new();
        d.add_piper(
            Piper::new("r", w)
                .parallel(&m)
                .retries(retries, Duration::from_millis(10)),
        )
        .unwrap();
        let out = run_all(d, ints(0..4)).remove(0).1;
        if retries == 0 {
            assert_eq!(out[2].as_ref().unwrap_err().kind(), ErrorKind::WorkerDied);
        } else {
            assert_eq!(out, ints(0..4), "the retry succeeded");
        }
        let _ = std::fs::remove_file(&marker);
    }
}

#[test]
fn thread_process_and_remote_workers_serve_one_numap() {
    let threads: Arc<dyn papy::Pool> = Arc::new(papy::ThreadPool::new("t", 1).unwrap());
    let procs: Arc<dyn papy::Pool> = process_pool("p", 1);
    let remote: Arc<dyn papy::Pool> = Arc::new(
        ProcessPool::remote("r", vec![(WorkerCommand::shell(&self_as_worker_line()), 1)]).unwrap(),
    );
    let mixed = Arc::new(papy::pool::MixedPool::new(vec![threads, procs, remote]).unwrap());
    let m = Some(NuMap::builder().pool(mixed).stride(3).build().unwrap());
    let reference = run_all(
        fork_join(Resources {
            workers: None,
            stride: 1,
            buffer: None,
        }),
        ints(0..90),
    );
    assert_eq!(run_all(fork_join_on(&m, &m), ints(0..90)), reference);
}

#[test]
fn a_worker_that_prints_to_stdout_does_not_corrupt_the_protocol() {
    let pool = process_pool("chatty", 2);
    let m = numap_on(&pool, 3);
    let t = m
        .add_task(Worker::new("t_chatty").unwrap(), 0..20i64)
        .unwrap();
    m.start().unwrap();
    let out: Vec<_> = m.results(t).unwrap().collect();
    assert_eq!(out, ints(0..20));
}

#[test]
fn a_poison_item_with_retries_does_not_take_the_pool_down() {
    let pool = process_pool("poison", 1);
    let m = numap_on(&pool, 1);
    let mut d = Dagger::new();
    let w = Worker::with_args("t_abort_on", [3]).unwrap();
    d.add_piper(
        Piper::new("p", w)
            .parallel(&m)
            .retries(6, Duration::from_millis(1)),
    )
    .unwrap();
    let out = run_all(d, ints(0..8)).remove(0).1;
    for (i, r) in out.iter().enumerate() {
        if i == 3 {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::WorkerDied);
        } else {
            assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64), "item {i}");
        }
    }
}

#[test]
fn dropping_a_pool_with_a_stuck_child_kills_it() {
    let pool = process_pool("stuck", 1);
    let m = numap_on(&pool, 1);
    let w = Worker::with_args("t_sleep_on", [Value::Int(0), Value::Int(60_000)]).unwrap();
    let _t = m.add_task(w, 0..3i64).unwrap();
    m.start().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pids: Vec<u32> = pool.pids().values().copied().collect();
    let started = Instant::now();
    drop(m);
    drop(pool);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the drop did not wait for the stuck call"
    );
    assert_gone(&pids);
}

#[test]
fn a_worker_that_died_while_idle_costs_no_item() {
    let pool = process_pool("idle-death", 1);
    let run = |n: i64| -> Vec<papy::Item> {
        let m = numap_on(&pool, 1);
        let t = m
            .add_task(Worker::new("papy.ipasser").unwrap(), 0..n)
            .unwrap();
        m.start().unwrap();
        m.results(t).unwrap().collect()
    };
    assert!(run(3).iter().all(|r| r.is_ok()));
    let pid = *pool.pids().values().next().expect("a worker");
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait until it has exited for good (every thread: /proc shows a
    // zombie leader earlier), without reaping it: that is the pool's job.
    // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with a valid siginfo_t; WNOWAIT leaves
    // it waitable for the pool.
    let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(rc, 0, "waitid on the worker");
    let items = run(5);
    assert_eq!(items.len(), 5);
    for (i, r) in items.iter().enumerate() {
        assert_eq!(
            r.as_ref().ok(),
            Some(&Value::Int(i as i64)),
            "item {i}: {r:?}"
        );
    }
    assert_ne!(
        pool.pids().values().next(),
        Some(&pid),
        "a new worker took over"
    );
}

/// `[x, the worker's process id]`.
#[papy::worker]
fn t_with_pid(x: i64) -> Vec<i64> {
    vec![x, i64::from(std::process::id())]
}

#[test]
fn recycling_after_n_items_starts_new_workers_and_loses_nothing() {
    let cmd = WorkerCommand::current_exe()
        .unwrap()
        .recycle(papy::pool::Recycle {
            after_items: Some(5),
            above_rss: None,
        });
    let pool = Arc::new(ProcessPool::new("recycled", 1, cmd).unwrap());
    let m = numap_on(&pool, 1);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("p", Worker::new("t_with_pid").unwrap()).parallel(&m))
        .unwrap();
    let items = run_all(d, ints(0..23)).remove(0).1;
    let mut per_pid: std::collections::BTreeMap<i64, usize> = Default::default();
    for (i, item) in items.iter().enumerate() {
        let v = item.as_ref().unwrap();
        assert_eq!(
            v.as_list().and_then(|l| l.first()),
            Some(&Value::Int(i as i64)),
            "item {i} in order"
        );
        *per_pid
            .entry(
                v.as_list()
                    .and_then(|l| l.get(1))
                    .and_then(Value::as_int)
                    .unwrap(),
            )
            .or_default() += 1;
    }
    assert_eq!(items.len(), 23, "nothing lost");
    assert_eq!(
        per_pid.len(),
        5,
        "5 workers for 23 items, 5 each: {per_pid:?}"
    );
    assert!(per_pid.values().all(|&n| n <= 5), "{per_pid:?}");
    assert_eq!(pool.stats().recycled, 4);
}

/// Keeps 16 MiB more of this process's memory (touched, so resident) per
/// call; returns `[x, pid]`.
#[papy::worker]
fn t_leak_16mib(x: i64) -> Vec<i64> {
    static HELD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let block = vec![1u8; 16 << 20];
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(block);
    vec![x, i64::from(std::process::id())]
}

#[test]
fn a_worker_past_its_memory_limit_is_recycled_and_nothing_is_lost() {
    let cmd = WorkerCommand::current_exe()
        .unwrap()
        .recycle(papy::pool::Recycle {
            after_items: None,
            above_rss: Some(96 << 20),
        });
    let pool = Arc::new(ProcessPool::new("leaky", 1, cmd).unwrap());
    let m = numap_on(&pool, 1);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("p", Worker::new("t_leak_16mib").unwrap()).parallel(&m))
        .unwrap();
    let items = run_all(d, ints(0..20)).remove(0).1;
    assert_eq!(items.len(), 20);
    let mut pids = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let v = item.as_ref().unwrap();
        let l = v.as_list().unwrap();
        assert_eq!(l[0], Value::Int(i as i64));
        pids.insert(l[1].as_int().unwrap());
    }
    // 20 x 16 MiB = 320 MiB: no worker may hold more than 96 MiB (+ one batch).
    let recycled = pool.stats().recycled;
    assert!(recycled >= 2, "recycled {recycled} times");
    assert_eq!(pids.len() as u64, recycled + 1);
}

/// The list reversed.
#[papy::worker]
fn t_reverse(xs: Vec<i64>) -> Vec<i64> {
    xs.into_iter().rev().collect()
}

/// Frames larger than a pipe both ways, pipelined: two tasks on one
/// worker, so a job of one task is sent while the worker writes the other
/// task's Result (a job of another task ends a merged group and goes next),
/// and the worker reads no input until that write ends. A host that only
/// wrote while waiting would wait forever; the proxy reads the worker's
/// answer meanwhile (`pool/process/pipe.rs`).
#[test]
fn large_frames_both_ways_do_not_hold_a_pipelined_worker() {
    let pool = process_pool("large-frames", 1);
    let lists = |task: i64| -> Vec<Vec<i64>> {
        (0..12i64)
            .map(|i| {
                (0..16_000)
                    .map(|j| (task << 40) + i * 100_000 + j)
                    .collect()
            })
            .collect()
    };
    let (a, b) = (lists(1), lists(2));
    let want = [a.clone(), b.clone()];
    let (tx, rx) = std::sync::mpsc::channel();
    let run = std::thread::spawn(move || {
        let m = numap_on(&pool, 1);
        let as_values = |l: Vec<Vec<i64>>| {
            l.into_iter()
                .map(|v| Value::list(v.into_iter().map(Value::Int)))
                .collect::<Vec<_>>()
        };
        let reverse = Worker::new("t_reverse").unwrap();
        let ta = m.add_task(reverse.clone(), as_values(a)).unwrap();
        let tb = m.add_task(reverse, as_values(b)).unwrap();
        m.start().unwrap();
        let (ra, rb) = (m.results(ta).unwrap(), m.results(tb).unwrap());
        // Read in turns, as the tasks are fed.
        let mut got = [Vec::new(), Vec::new()];
        for (x, y) in ra.zip(rb) {
            got[0].push(x);
            got[1].push(y);
        }
        let _ = tx.send(got);
    });
    let got = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the run ended (a proxy waiting on a full pipe never does)");
    run.join().unwrap();
    for (task, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got.len(), want.len(), "task {task}");
        for (i, (r, w)) in got.iter().zip(want).enumerate() {
            let back = Value::list(w.iter().rev().map(|&x| Value::Int(x)));
            assert!(
                r.as_ref().ok() == Some(&back),
                "task {task}, item {i} differs"
            );
        }
    }
}
