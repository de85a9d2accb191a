use super::*;
use crate::error::ErrorKind;
use crate::pool::{Pool, ThreadPool};
use crate::value::Value;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

fn ints(r: TaskResults) -> Vec<i64> {
    r.map(|x| x.expect("value").as_int().expect("int"))
        .collect()
}

fn add(n: i64) -> Worker {
    Worker::typed(format!("add{n}"), move |x: i64| x + n)
}

#[test]
fn single_task_ordered_for_many_settings() {
    for workers in [1, 2, 4] {
        for stride in [1, 2, 3, 7, 100] {
            let m = NuMap::builder()
                .workers(workers)
                .stride(stride)
                .build()
                .unwrap();
            let t = m.add_task(add(1), 0..500i64).unwrap();
            m.start().unwrap();
            assert_eq!(
                ints(m.results(t).unwrap()),
                (1..501).collect::<Vec<_>>(),
                "w{workers} s{stride}"
            );
        }
    }
}

#[test]
fn unordered_returns_every_result_once() {
    let slow_odd = Worker::typed("slow_odd", |x: i64| {
        if x % 2 == 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        x
    });
    let m = NuMap::builder()
        .workers(3)
        .stride(1)
        .ordered(false)
        .build()
        .unwrap();
    let t = m.add_task(slow_odd, 0..60i64).unwrap();
    m.start().unwrap();
    let mut got = ints(m.results(t).unwrap());
    got.sort_unstable();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
}

#[test]
fn buffer_smaller_than_stride_is_refused() {
    let err = NuMap::builder()
        .workers(1)
        .stride(4)
        .buffer(3)
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("buffer (3)") && msg.contains("stride (4)"),
        "{msg}"
    );
    assert!(NuMap::builder().workers(0).build().is_err());
    assert!(NuMap::builder().stride(0).build().is_err());
}

#[test]
fn chained_four_tasks_with_buffer_equal_to_stride() {
    for stride in [1, 3, 4] {
        let m = NuMap::builder()
            .workers(2)
            .stride(stride)
            .buffer(stride)
            .build()
            .unwrap();
        let t0 = m.add_task(add(1), 0..100i64).unwrap();
        let t1 = m.add_chained(add(10), t0, TaskOptions::default()).unwrap();
        let t2 = m.add_chained(add(100), t1, TaskOptions::default()).unwrap();
        let t3 = m
            .add_chained(add(1000), t2, TaskOptions::default())
            .unwrap();
        m.start().unwrap();
        assert_eq!(
            ints(m.results(t3).unwrap()),
            (1111..1211).collect::<Vec<_>>()
        );
    }
}

#[test]
fn weave_visits_tasks_in_order_with_stride_items() {
    // One worker, stride 2: submission (= evaluation) order is a0 a1 b0 b1 c0 c1 a2 a3 c2 a4.
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = |name: &'static str| {
        let log = log.clone();
        Worker::from_fn(name, move |inbox: &[Value]| {
            log.lock().unwrap().push(format!("{name}{}", inbox[0]));
            Ok::<_, String>(inbox[0].clone())
        })
    };
    let m = NuMap::builder()
        .workers(1)
        .stride(2)
        .buffer(100)
        .build()
        .unwrap();
    let a = m.add_task(mk("a"), 0..5i64).unwrap();
    let b = m.add_task(mk("b"), 0..2i64).unwrap();
    let c = m.add_task(mk("c"), 0..3i64).unwrap();
    m.start().unwrap();
    let (ra, rb, rc) = (
        m.results(a).unwrap(),
        m.results(b).unwrap(),
        m.results(c).unwrap(),
    );
    assert_eq!(ints(ra).len() + ints(rb).len() + ints(rc).len(), 10);
    assert_eq!(
        log.lock().unwrap().join(" "),
        "a0 a1 b0 b1 c0 c1 a2 a3 c2 a4"
    );
}

#[test]
fn buffer_bounds_unretrieved_items() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let w = Worker::from_fn("count", move |i: &[Value]| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(i[0].clone())
    });
    let m = NuMap::builder()
        .workers(2)
        .stride(2)
        .buffer(6)
        .build()
        .unwrap();
    let t = m.add_task(w, 0..1000i64).unwrap();
    m.start().unwrap();
    let settle = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::SeqCst) < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Give the feeder time to overshoot, if it were going to.
        std::thread::sleep(Duration::from_millis(50));
        calls.load(Ordering::SeqCst)
    };
    assert_eq!(settle(6), 6, "evaluation must pause at the buffer");
    let mut r = m.results(t).unwrap();
    assert_eq!(r.next().unwrap().unwrap(), Value::Int(0));
    assert_eq!(r.next().unwrap().unwrap(), Value::Int(1));
    // Two results taken free one stride (two items).
    assert_eq!(settle(8), 8);
    assert_eq!(r.count(), 998);
}

#[test]
fn timeout_becomes_error_item_and_late_result_is_discarded() {
    let w = Worker::typed("sleepy", |x: i64| {
        if x == 3 {
            std::thread::sleep(Duration::from_millis(400));
        }
        x
    });
    let m = NuMap::builder().workers(2).stride(2).build().unwrap();
    let opts = TaskOptions {
        timeout: Some(Duration::from_millis(100)),
        ..TaskOptions::default()
    };
    let t = m.add_task_with(w, 0..8i64, opts).unwrap();
    m.start().unwrap();
    let out: Vec<Item> = m.results(t).unwrap().collect();
    assert_eq!(out.len(), 8, "no extra item for the late result");
    for (i, r) in out.iter().enumerate() {
        if i == 3 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Timeout);
            assert_eq!(e.index(), Some(3));
        } else {
            assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64));
        }
    }
}

#[test]
fn stop_mid_unbounded_input_then_restart_loses_and_repeats_nothing() {
    let m = NuMap::builder().workers(2).stride(3).build().unwrap();
    let t = m.add_task(add(0), 0i64..).unwrap();
    m.start().unwrap();
    let mut seen = Vec::new();
    let mut r = m.results(t).unwrap();
    seen.extend(r.by_ref().take(10).map(|x| x.unwrap().as_int().unwrap()));
    m.stop();
    seen.extend(r.map(|x| x.unwrap().as_int().unwrap()));
    let first_run = seen.len();
    assert!(
        first_run >= 10 && first_run % 3 == 0,
        "stops at a stride boundary: {first_run}"
    );
    assert!(
        !m.is_running() || {
            std::thread::sleep(Duration::from_millis(50));
            !m.is_running()
        }
    );
    m.start().unwrap();
    let mut r = m.results(t).unwrap();
    seen.extend(r.by_ref().take(7).map(|x| x.unwrap().as_int().unwrap()));
    m.stop();
    seen.extend(r.map(|x| x.unwrap().as_int().unwrap()));
    assert_eq!(seen, (0..seen.len() as i64).collect::<Vec<_>>());
    assert!(seen.len() > first_run);
}

#[test]
fn restart_refused_while_running_or_with_unread_results() {
    let m = NuMap::builder().workers(1).stride(1).build().unwrap();
    let t = m.add_task(add(0), 0..100i64).unwrap();
    m.start().unwrap();
    assert!(matches!(m.start(), Err(Error::State { .. })));
    assert!(matches!(
        m.add_task(add(0), 0..1i64),
        Err(Error::State { .. })
    ));
    assert_eq!(m.results(t).unwrap().count(), 100);
}

#[test]
fn panicking_input_iterator_becomes_an_error_item() {
    let m = NuMap::builder().workers(1).stride(2).build().unwrap();
    let input = (0..5i64).map(|x| if x == 3 { panic!("bad input") } else { x });
    let t = m.add_task(add(0), input).unwrap();
    m.start().unwrap();
    let out: Vec<Item> = m.results(t).unwrap().collect();
    assert_eq!(out.len(), 4);
    let e = out[3].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Input);
    assert!(e.message().contains("bad input"));
}

#[test]
fn an_input_that_panics_anywhere_in_a_stride_gives_its_items_then_one_error_at_its_index() {
    // Stride 10 over 2 workers (jobs of 5) with a buffer of 13: visits are
    // granted 10, then what the reader frees, so a stride is cut between
    // jobs and the part not granted waits for credit. Wherever the input
    // panics (inside a job, at a stride's start, in the part that waits),
    // the items before it come out as they were, then one error with the
    // panic's index, then the end.
    for at in [3i64, 10, 13, 15, 19] {
        let m = NuMap::builder()
            .workers(2)
            .stride(10)
            .buffer(13)
            .build()
            .unwrap();
        let input = (0..40i64).map(move |x| if x == at { panic!("bad input {x}") } else { x });
        let t = m.add_task(add(0), input).unwrap();
        m.start().unwrap();
        let out: Vec<Item> = m.results(t).unwrap().collect();
        assert_eq!(out.len() as i64, at + 1, "panic at {at}");
        for (i, r) in out[..at as usize].iter().enumerate() {
            assert_eq!(
                r.as_ref().ok(),
                Some(&Value::Int(i as i64)),
                "panic at {at}"
            );
        }
        let e = out[at as usize].as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Input);
        assert_eq!(e.index(), Some(at as u64), "panic at {at}");
        assert!(e.message().contains(&format!("bad input {at}")));
    }
}

#[test]
fn adaptive_batching_bounds_the_bytes_pulled_ahead_not_only_the_items() {
    // 1 MiB items through a function that costs nothing: by pace alone the
    // jobs would grow to thousands of items and the buffer to 16 384; the
    // bytes measured keep the buffer near 64 MiB of input.
    let big: Arc<str> = Arc::from("x".repeat(1 << 20));
    let pulled = Arc::new(AtomicUsize::new(0));
    let (b, p) = (big.clone(), pulled.clone());
    let input = (0..400).map(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
        Value::Str(b.clone())
    });
    let pass = Worker::from_fn("pass", |i: &[Value]| Ok::<_, String>(i[0].clone()));
    let m = NuMap::builder().workers(2).build().unwrap();
    let t = m.add_task(pass, input).unwrap();
    m.start().unwrap();
    // Nothing is read for a while: the NuMap fills its buffer and waits.
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ahead = pulled.load(Ordering::SeqCst);
    assert!(
        ahead <= 100,
        "{ahead} items of 1 MiB pulled ahead of a reader that read nothing"
    );
    let out: Vec<Item> = m.results(t).unwrap().collect();
    assert_eq!(out.len(), 400);
    assert!(out
        .iter()
        .all(|r| r.as_ref().ok().and_then(Value::as_str).map(str::len) == Some(1 << 20)));
}

#[test]
fn drop_joins_threads_even_with_unread_results() {
    let before = Instant::now();
    {
        let m = NuMap::builder().workers(2).stride(2).build().unwrap();
        let _t = m.add_task(add(0), 0i64..).unwrap();
        m.start().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(before.elapsed() < Duration::from_secs(5));
}

#[test]
fn tracking_records_retrieved_results() {
    let m = NuMap::builder().workers(2).stride(2).build().unwrap();
    let opts = TaskOptions {
        track: true,
        ..TaskOptions::default()
    };
    let t = m.add_task_with(add(5), 0..4i64, opts).unwrap();
    m.start().unwrap();
    assert_eq!(m.results(t).unwrap().count(), 4);
    let tracked = m.tracked(t).unwrap();
    assert_eq!(tracked.len(), 4);
    assert_eq!(tracked[&2], Ok(Value::Int(7)));
}

#[test]
fn result_timeout_does_not_lose_the_result() {
    let w = Worker::typed("slow", |x: i64| {
        std::thread::sleep(Duration::from_millis(150));
        x
    });
    let m = NuMap::builder().workers(1).stride(1).build().unwrap();
    let t = m.add_task(w, 0..1i64).unwrap();
    m.start().unwrap();
    let mut r = m.results(t).unwrap();
    assert_eq!(r.next_timeout(Duration::from_millis(1)), Next::TimedOut);
    assert_eq!(
        r.next_timeout(Duration::from_secs(5)),
        Next::Item(Ok(Value::Int(0)))
    );
    assert_eq!(r.next_timeout(Duration::from_secs(5)), Next::End);
}

#[test]
fn default_stride_spreads_one_task_over_every_worker() {
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let s = seen.clone();
    let w = Worker::from_fn("who", move |i: &[Value]| {
        std::thread::sleep(Duration::from_millis(20));
        let name = std::thread::current().name().unwrap_or("").to_string();
        s.lock().unwrap().insert(name);
        Ok::<_, String>(i[0].clone())
    });
    let m = NuMap::builder().workers(2).build().unwrap();
    let t = m.add_task(w, 0..8i64).unwrap();
    m.start().unwrap();
    assert_eq!(m.results(t).unwrap().count(), 8);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "both workers took items: {:?}",
        seen.lock().unwrap()
    );
}

#[test]
fn reading_tasks_out_of_weave_order_does_not_deadlock() {
    // PaPy L-2: reading task 1 before task 0 stalls with the default buffer.
    let m = NuMap::builder().workers(1).stride(2).build().unwrap();
    let a = m.add_task(add(0), 0..50i64).unwrap();
    let b = m.add_task(add(100), 0..50i64).unwrap();
    m.start().unwrap();
    assert_eq!(ints(m.results(b).unwrap()), (100..150).collect::<Vec<_>>());
    assert_eq!(ints(m.results(a).unwrap()), (0..50).collect::<Vec<_>>());
}

#[test]
fn a_shared_pool_outlives_the_numaps_that_use_it() {
    let pool: Arc<dyn Pool> = Arc::new(ThreadPool::new("shared", 2).unwrap());
    for round in 0..3 {
        let m = NuMap::builder()
            .pool(pool.clone())
            .stride(4)
            .build()
            .unwrap();
        let t = m.add_task(add(round), 0..20i64).unwrap();
        m.start().unwrap();
        assert_eq!(
            ints(m.results(t).unwrap()),
            (round..20 + round).collect::<Vec<_>>(),
            "round {round}"
        );
    }
}

#[test]
fn restart_with_a_chained_task_continues_both_tasks() {
    let m = NuMap::builder().workers(2).stride(2).build().unwrap();
    let a = m.add_task(add(0), 0i64..).unwrap();
    let b = m.add_chained(add(1000), a, TaskOptions::default()).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        m.start().unwrap();
        let mut r = m.results(b).unwrap();
        seen.extend(r.by_ref().take(6).map(|x| x.unwrap().as_int().unwrap()));
        m.stop();
        seen.extend(r.map(|x| x.unwrap().as_int().unwrap()));
    }
    assert!(seen.len() >= 12, "{seen:?}");
    assert_eq!(seen, (1000..1000 + seen.len() as i64).collect::<Vec<_>>());
}

#[test]
fn dropping_a_numap_does_not_wait_for_timed_out_calls() {
    let w = Worker::typed("stuck", |x: i64| {
        if x >= 1 {
            std::thread::sleep(Duration::from_secs(30));
        }
        x
    });
    let m = NuMap::builder()
        .workers(1)
        .stride(1)
        .buffer(4)
        .build()
        .unwrap();
    let opts = TaskOptions {
        timeout: Some(Duration::from_millis(200)),
        ..TaskOptions::default()
    };
    let t = m.add_task_with(w, 0..10i64, opts).unwrap();
    m.start().unwrap();
    let mut r = m.results(t).unwrap();
    assert_eq!(r.next(), Some(Ok(Value::Int(0))));
    let started = Instant::now();
    drop(r);
    drop(m);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drop took {:?}",
        started.elapsed()
    );
}

/// A thread pool that records the size of every job it is given.
struct Recording {
    inner: ThreadPool,
    sizes: std::sync::Mutex<Vec<usize>>,
}

impl Recording {
    fn new(workers: usize) -> Arc<Recording> {
        Arc::new(Recording {
            inner: ThreadPool::new("rec", workers).unwrap(),
            sizes: Default::default(),
        })
    }
}

impl Pool for Recording {
    fn kind(&self) -> &'static str {
        "thread"
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn submit(&self, job: crate::job::Job) {
        self.sizes.lock().unwrap().push(job.len());
        self.inner.submit(job);
    }
    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

#[test]
fn a_short_input_is_shared_among_the_workers_whatever_the_stride() {
    // 5 items, a stride of 10 on 2 workers: before, one job of 5 (a
    // stride's share per worker), and one worker idle.
    let pool = Recording::new(2);
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(10)
        .build()
        .unwrap();
    let t = m.add_task(add(1), 0..5i64).unwrap();
    m.start().unwrap();
    assert_eq!(ints(m.results(t).unwrap()), vec![1, 2, 3, 4, 5]);
    assert_eq!(*pool.sizes.lock().unwrap(), vec![3, 2]);
    // A long input keeps its jobs: a stride's share per worker.
    let pool = Recording::new(2);
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(10)
        .build()
        .unwrap();
    let t = m.add_task(add(1), 0..40i64).unwrap();
    m.start().unwrap();
    assert_eq!(ints(m.results(t).unwrap()), (1..41).collect::<Vec<_>>());
    // (The end of the input may be found on a visit that submits only the
    // rest of the last stride, 5 items: those are then shared, 3 and 2.)
    let sizes = pool.sizes.lock().unwrap().clone();
    let (head, tail) = sizes.split_at(sizes.len() - 2);
    assert!(head.iter().all(|&s| s == 5), "{sizes:?}");
    assert!(tail == [5, 5] || tail == [3, 2], "{sizes:?}");
}

/// The order in which 1 worker starts the items of a chain of two tasks
/// (stride 1) that sleep their input in milliseconds (issue 28: PaPy's
/// [1.0, 0.5, 0.25] s, scaled down).
fn chain_start_order() -> Vec<(usize, i64)> {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sleeper = |task: usize| {
        let log = log.clone();
        Worker::typed(format!("sleep{task}"), move |ms: i64| {
            log.lock().unwrap().push((task, ms));
            std::thread::sleep(Duration::from_millis(ms.unsigned_abs()));
            ms
        })
    };
    let m = NuMap::builder().workers(1).stride(1).build().unwrap();
    let t0 = m.add_task(sleeper(0), vec![4i64, 2, 1]).unwrap();
    let t1 = m
        .add_chained(sleeper(1), t0, TaskOptions::default())
        .unwrap();
    m.start().unwrap();
    assert_eq!(ints(m.results(t1).unwrap()), vec![4, 2, 1]);
    let order = log.lock().unwrap().clone();
    order
}

#[test]
fn downstream_work_goes_first_whatever_the_timing() {
    // PaPy's order: t0[0], t1[0], t0[1], t1[1], ... (before: t0[1] and
    // t0[2], queued first, sometimes ran before t1[1]). The same runs
    // under random delays in `tests/schedule_fuzz.rs`.
    let papy: Vec<(usize, i64)> = [4, 2, 1].iter().flat_map(|&x| [(0, x), (1, x)]).collect();
    for round in 0..6 {
        assert_eq!(chain_start_order(), papy, "round {round}");
    }
}
