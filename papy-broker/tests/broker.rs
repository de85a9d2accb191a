//! The broker pool end to end, on a throw-away Redis server: the same output
//! as threads, a killed worker loses nothing and duplicates nothing, a poison
//! batch ends in the dead-letter stream as one error item, long batches of
//! live workers are not reclaimed, and duplicate results are dropped.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use papy::{Dagger, ErrorKind, NuMap, Piper, Plumber, PlumberFile, Source, Value, Worker};
use papy_broker::{BrokerPool, Queue, RedisQueue};
use support::RedisServer;

papy_broker::enable_test_support!();

fn pool(server: &RedisServer, run: &str, workers: usize) -> papy_broker::BrokerPoolBuilder {
    BrokerPool::builder(run, &server.url())
        .local_workers(workers, papy_broker::test_worker_command().unwrap())
        .keep_for(Duration::from_secs(60))
}

fn numap_on(pool: &Arc<BrokerPool>, stride: usize) -> NuMap {
    NuMap::builder()
        .pool(pool.clone())
        .stride(stride)
        .build()
        .unwrap()
}

/// A run on a keyed broker pool without workers, its node `add` (`t_add`
/// with 10) started over `inputs`: the test plays the worker by hand,
/// reading the task entries from `q` and opening them with `sealer`.
struct ByHand {
    sealer: papy_broker::seal::Sealer,
    pool: Arc<BrokerPool>,
    plumber: Plumber,
    out: papy_core::Collector,
    q: RedisQueue,
}

fn by_hand(server: &RedisServer, run: &str, stride: usize, inputs: std::ops::Range<i64>) -> ByHand {
    let key = format!("{run}-key-0123456789");
    let sealer = papy_broker::seal::Sealer::new(&key, run).unwrap();
    let pool = Arc::new(
        BrokerPool::builder(run, &server.url())
            .key(&key)
            .build()
            .unwrap(),
    );
    let m = numap_on(&pool, stride);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [10]).unwrap()).parallel(&m))
        .unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("add").unwrap();
    plumber.start([("add", Source::values(inputs))]).unwrap();
    plumber.run().unwrap();
    let q = RedisQueue::connect(&server.url(), run).unwrap();
    ByHand {
        sealer,
        pool,
        plumber,
        out,
        q,
    }
}

/// A task entry read by hand: opened with `sealer` and decoded.
fn open_task(
    sealer: &papy_broker::seal::Sealer,
    e: &papy_broker::Entry,
) -> papy_core::protocol::Frame {
    let payload = sealer
        .open(papy_broker::seal::Role::Task, &e.session, &e.payload)
        .unwrap();
    papy_broker::codec::decode(&e.id, payload).unwrap()
}

#[test]
fn the_determinism_pipelines_give_the_same_output_on_three_broker_workers() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let n = 60;
    let reference = run_all(
        fork_join(Resources {
            workers: Some(2),
            stride: 3,
            buffer: None,
        }),
        ints(0..n),
    );
    let p = Arc::new(pool(&server, "determinism", 3).build().unwrap());
    for stride in [1, 3, 7] {
        let on_broker = Some(numap_on(&p, stride));
        assert_eq!(
            run_all(fork_join_on(&on_broker, &on_broker), ints(0..n)),
            reference,
            "broker, stride {stride}"
        );
        let threads = Some(NuMap::builder().workers(2).stride(stride).build().unwrap());
        assert_eq!(
            run_all(fork_join_on(&threads, &on_broker), ints(0..n)),
            reference,
            "threads and broker mixed, stride {stride}"
        );
    }
    assert_eq!(p.pids().len(), 3, "three local workers");
    assert_eq!(p.duplicates(), 0);
}

/// Waits for `path` to hold a pid.
fn pid_in(path: &std::path::Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "the item never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let marker = std::env::temp_dir().join(format!("papy-broker-kill-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let p = Arc::new(
        pool(&server, "kill", 3)
            .claim_after(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    // A deep buffer: several entries are in flight when the worker dies.
    let m = NuMap::builder()
        .pool(p.clone())
        .stride(1)
        .buffer(16)
        .build()
        .unwrap();
    // Item 5 records the pid of the worker that takes it, then works for 3 s:
    // longer than claim_after, so only heartbeats keep it from being reclaimed.
    let w = Worker::with_args(
        "t_report_pid_on",
        [
            Value::Int(5),
            Value::from(marker.display().to_string()),
            Value::Int(3000),
        ],
    )
    .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("slow", w).parallel(&m)).unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("slow").unwrap();
    plumber.start([("slow", Source::values(0..40i64))]).unwrap();
    plumber.run().unwrap();
    let victim = pid_in(&marker);
    // The pool records a local worker's pid just after starting it; on a
    // busy machine the worker can reach item 5 first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.pids().values().any(|&pid| pid == victim) {
        assert!(
            Instant::now() < deadline,
            "{victim} is not one of the pool's workers"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&marker);
    let status = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(plumber.wait(Some(Duration::from_secs(120))).unwrap());
    let items = out.take();
    assert_eq!(items.len(), 40, "every input yields exactly one output");
    for (i, r) in items.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64), "item {i}");
    }
    // Another worker took item 5 over after the kill.
    let second = pid_in(&marker);
    assert_ne!(second, victim);
    let _ = std::fs::remove_file(&marker);
    assert_eq!(pending(&server, "kill"), 0, "every entry acknowledged");
    let dead: i64 = redis::cmd("XLEN")
        .arg("papy:kill:dead")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(dead, 0, "nothing dead-lettered");
}

/// Entries of run `run` delivered and not acknowledged.
fn pending(server: &RedisServer, run: &str) -> usize {
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(format!("papy:{run}:tasks"))
        .arg(papy_broker::GROUP)
        .query(&mut server.connection())
        .unwrap();
    pending.count()
}

#[test]
fn a_poison_batch_ends_in_the_dead_letter_stream_as_one_error_item() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let p = Arc::new(
        pool(&server, "poison", 3)
            .max_attempts(2)
            .claim_after(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    let m = numap_on(&p, 1);
    let w = Worker::with_args("t_abort_on", [7]).unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("poisoned", w).parallel(&m)).unwrap();
    let items = run_all(d, ints(0..20)).remove(0).1;
    assert_eq!(items.len(), 20);
    for (i, r) in items.iter().enumerate() {
        if i == 7 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WorkerDied);
            assert!(
                e.message().contains("dead-lettered after 3 deliveries")
                    && e.message().contains("max_attempts = 2"),
                "{e}"
            );
            assert_eq!(e.index(), Some(7));
        } else {
            assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64), "item {i}");
        }
    }
    let mut con = server.connection();
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("papy:poison:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(dead.ids.len(), 1, "one dead letter");
    let n: String = redis::from_redis_value(&dead.ids[0].map["n"]).unwrap();
    assert_eq!(n, "3");
    // Nothing is left pending in the task stream.
    assert_eq!(pending(&server, "poison"), 0);
}

/// On item `k`, appends a line to `path` (one per run), then sleeps `ms`.
#[papy::worker]
fn b_count_runs_on(x: i64, k: i64, path: String, ms: u64) -> i64 {
    if x == k {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "run");
        }
        std::thread::sleep(Duration::from_millis(ms));
    }
    x
}

#[test]
fn heartbeats_keep_a_long_batch_of_a_live_worker_from_being_reclaimed() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let runs = std::env::temp_dir().join(format!("papy-broker-runs-{}", std::process::id()));
    let _ = std::fs::remove_file(&runs);
    let p = Arc::new(
        pool(&server, "heartbeat", 2)
            .claim_after(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    let m = numap_on(&p, 1);
    // Item 3 works for 5 s, 2.5 times claim_after (heartbeats every 0.5 s):
    // without them the other worker would take it over and run it a second
    // time meanwhile.
    let w = Worker::with_args(
        "b_count_runs_on",
        [
            Value::Int(3),
            Value::from(runs.display().to_string()),
            Value::Int(5000),
        ],
    )
    .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("long", w).parallel(&m)).unwrap();
    let items = run_all(d, ints(0..6)).remove(0).1;
    assert_eq!(items, ints(0..6));
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(count, 1, "the long batch ran once");
    assert_eq!(p.duplicates(), 0);
    let _ = std::fs::remove_file(&runs);
}

#[test]
fn a_result_that_arrives_twice_is_delivered_once() {
    let _serial = support::serial();
    let server = RedisServer::start();
    // No workers: this test plays the worker by hand and answers twice.
    let ByHand {
        sealer,
        pool: p,
        mut plumber,
        out,
        mut q,
    } = by_hand(&server, "twice", 4, 0..4i64);
    let mut runner = papy_core::protocol::serve::TaskRunner::default();
    let mut entries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while entries.is_empty() {
        assert!(Instant::now() < deadline, "no task entry appeared");
        entries = q
            .read_tasks("by-hand", 10, Duration::from_millis(200))
            .unwrap();
    }
    for e in &entries {
        let papy_core::protocol::Frame::Task {
            id,
            chain,
            node,
            indices,
            inboxes,
        } = open_task(&sealer, e)
        else {
            panic!("not a task");
        };
        let results = papy_core::protocol::WireResults::from_items(
            &runner.run(chain, &node, &indices, inboxes),
        );
        let bytes = papy_broker::codec::encode(&papy_core::protocol::Frame::Result { id, results })
            .unwrap();
        let bytes = sealer.seal(papy_broker::seal::Role::Result, &e.session, bytes);
        q.complete(e, &bytes, Duration::ZERO).unwrap();
        q.complete(e, &bytes, Duration::ZERO).unwrap();
    }
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    assert_eq!(out.take(), ints(10..14));
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.duplicates() < entries.len() as u64 {
        assert!(Instant::now() < deadline, "duplicates were not seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(p.duplicates(), entries.len() as u64);
}

#[test]
fn run_keys_expire_after_the_run() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let p = Arc::new(
        pool(&server, "hygiene", 1)
            .keep_for(Duration::from_secs(120))
            .build()
            .unwrap(),
    );
    let m = numap_on(&p, 2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    assert_eq!(run_all(d, ints(0..5)).remove(0).1, ints(1..6));
    let mut con = server.connection();
    // While the host runs, every key has a lease: keep_for plus a minute.
    for key in [
        "papy:hygiene:tasks",
        "papy:hygiene:results",
        "papy:hygiene:run",
    ] {
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut con).unwrap();
        assert!(ttl > 120 && ttl <= 180, "{key}: lease {ttl}");
    }
    papy::Pool::shutdown(&*p);
    for key in [
        "papy:hygiene:tasks",
        "papy:hygiene:results",
        "papy:hygiene:run",
    ] {
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut con).unwrap();
        assert!(ttl > 0 && ttl <= 120, "{key}: ttl {ttl}");
    }
    let state: String = redis::cmd("HGET")
        .arg("papy:hygiene:run")
        .arg("state")
        .query(&mut con)
        .unwrap();
    assert_eq!(state, "done");
    assert!(p.pids().is_empty(), "local workers stopped");
}

/// A run keeps in Redis what is in flight, not what is done: every task
/// entry answered is deleted with its acknowledgement, and the results the
/// host has read are trimmed before it reads on (here 300 task entries).
#[test]
fn answered_tasks_and_read_results_leave_redis_during_the_run() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let p = Arc::new(pool(&server, "trim", 2).build().unwrap());
    let m = numap_on(&p, 2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    assert_eq!(run_all(d, ints(0..300)).remove(0).1, ints(1..301));
    let mut con = server.connection();
    let len = |con: &mut redis::Connection, key: &str| -> usize {
        redis::cmd("XLEN").arg(key).query(con).unwrap()
    };
    assert_eq!(
        len(&mut con, "papy:trim:tasks"),
        0,
        "every answered task entry went"
    );
    // The host trims what it read at its next read (it reads on every
    // 100 ms while the pool lives): the last result read stays.
    let deadline = Instant::now() + Duration::from_secs(10);
    while len(&mut con, "papy:trim:results") > 1 {
        assert!(
            Instant::now() < deadline,
            "results left: {}",
            len(&mut con, "papy:trim:results")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.duplicates(), 0);
}

/// Only the run's own host drops the results it has read: a host that
/// another one replaced on the same run id (it reads on until it stops)
/// leaves the new host's results alone, read or not.
#[test]
fn a_replaced_host_does_not_drop_the_new_hosts_results() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let mut new_host = RedisQueue::connect(&server.url(), "taken").unwrap();
    new_host
        .start_run(&papy_broker::RunSettings {
            session: "new".into(),
            max_attempts: 3,
            claim_after: Duration::from_secs(30),
            done: false,
            lease: Duration::from_secs(60),
            key_check: String::new(),
        })
        .unwrap();
    new_host
        .add_tasks("new", &[(1, b"a".to_vec()), (2, b"b".to_vec())])
        .unwrap();
    let entries = new_host
        .read_tasks("w", 2, Duration::from_millis(100))
        .unwrap();
    let done: Vec<papy_broker::Done<'_>> = entries
        .iter()
        .map(|entry| papy_broker::Done {
            entry,
            result: b"r",
            busy: Duration::ZERO,
        })
        .collect();
    new_host.complete_all(&done).unwrap();
    let results = |server: &RedisServer| -> usize {
        redis::cmd("XLEN")
            .arg("papy:taken:results")
            .query(&mut server.connection())
            .unwrap()
    };
    // The old host reads both results (and ignores them: not its session),
    // then reads again, which is when a host drops what it has read.
    let mut old_host = RedisQueue::connect(&server.url(), "taken").unwrap();
    let mut old = papy_broker::Cursor::of("old");
    let seen = old_host
        .read_outcomes(&mut old, 10, Duration::from_millis(100))
        .unwrap();
    assert_eq!(seen.len(), 2);
    old_host
        .read_outcomes(&mut old, 10, Duration::from_millis(10))
        .unwrap();
    assert_eq!(results(&server), 2, "the new host's results are all there");
    // The new host's own reading drops them, but for the last one read.
    let mut mine = papy_broker::Cursor::of("new");
    assert_eq!(
        new_host
            .read_outcomes(&mut mine, 10, Duration::from_millis(100))
            .unwrap()
            .len(),
        2
    );
    new_host
        .read_outcomes(&mut mine, 10, Duration::from_millis(10))
        .unwrap();
    assert_eq!(results(&server), 1);
}

#[test]
fn an_unreachable_broker_is_a_clear_error_without_the_password() {
    let e = BrokerPool::builder("nowhere", "redis://:hunter2@127.0.0.1:1")
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot connect to redis://***@127.0.0.1:1"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn closures_are_refused() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let p = Arc::new(
        BrokerPool::builder("closures", &server.url())
            .build()
            .unwrap(),
    );
    let m = numap_on(&p, 1);
    let err = m
        .add_task(Worker::typed("my_closure", |x: i64| x), 0..3i64)
        .unwrap_err();
    match &err {
        papy::Error::NotPortable { function, pool } => {
            assert_eq!(function, "my_closure");
            assert_eq!(pool, "redis");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_poison_item_grouped_with_others_costs_only_its_own_item() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let p = Arc::new(
        pool(&server, "grouped", 2)
            .max_attempts(1)
            .claim_after(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    // A deep buffer: many stride-1 jobs queue up and travel grouped in
    // entries, so item 13 first fails with companions.
    let m = NuMap::builder()
        .pool(p.clone())
        .stride(1)
        .buffer(64)
        .build()
        .unwrap();
    let w = Worker::with_args("t_abort_on", [13]).unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("poisoned", w).parallel(&m)).unwrap();
    let items = run_all(d, ints(0..64)).remove(0).1;
    assert_eq!(items.len(), 64);
    for (i, r) in items.iter().enumerate() {
        if i == 13 {
            let e = r.as_ref().unwrap_err();
            assert!(
                e.message().contains("dead-lettered after 2 deliveries"),
                "{e}"
            );
        } else {
            assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64), "item {i}");
        }
    }
    // The last dead letter is the poison item's own entry.
    let mut con = server.connection();
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("papy:grouped:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let last = dead.ids.last().expect("a dead letter");
    let frame: Vec<u8> = redis::from_redis_value(&last.map["f"]).unwrap();
    // The dead letter keeps the task's payload, tag included.
    let frame = &frame[..frame.len() - 32];
    let papy_core::protocol::Frame::Task { indices, .. } =
        papy_broker::codec::decode(&last.id, frame).unwrap()
    else {
        panic!("not a task");
    };
    assert_eq!(indices, vec![13]);
}

#[test]
fn a_redis_restart_without_persistence_sends_the_items_in_flight_again_and_the_run_goes_on() {
    let _serial = support::serial();
    let mut server = RedisServer::start();
    let marker = std::env::temp_dir().join(format!("papy-broker-restart-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let p = Arc::new(
        pool(&server, "restart", 2)
            .claim_after(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    // Stride 1, default buffer: one item in flight at a time; item 3 works
    // for 1.5 s, during which Redis restarts and forgets everything.
    let m = numap_on(&p, 1);
    let w = Worker::with_args(
        "t_report_pid_on",
        [
            Value::Int(3),
            Value::from(marker.display().to_string()),
            Value::Int(1500),
        ],
    )
    .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("slow", w).parallel(&m)).unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("slow").unwrap();
    plumber.start([("slow", Source::values(0..10i64))]).unwrap();
    plumber.run().unwrap();
    pid_in(&marker);
    server.restart();
    assert!(plumber.wait(Some(Duration::from_secs(120))).unwrap());
    // The host found its run gone, started it again and appended the
    // entry in flight again: nothing is lost.
    assert_eq!(out.take(), ints(0..10));
    let _ = std::fs::remove_file(&marker);
}

/// A pool without workers whose plumber has items in flight.
fn stalled(server: &RedisServer, pool: BrokerPool, n: i64) -> (Plumber, papy_core::Collector) {
    let p = Arc::new(pool);
    let m = numap_on(&p, 1);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("add").unwrap();
    plumber.start([("add", Source::values(0..n))]).unwrap();
    plumber.run().unwrap();
    // Wait until the host has appended entries.
    let run = p.run_id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let len: i64 = redis::cmd("XLEN")
            .arg(format!("papy:{run}:tasks"))
            .query(&mut server.connection())
            .unwrap();
        if len > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no task entry appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    (plumber, out)
}

#[test]
fn a_host_whose_redis_goes_away_fails_the_items_in_flight_instead_of_hanging() {
    let _serial = support::serial();
    let mut server = RedisServer::start();
    let pool = BrokerPool::builder("gone", &server.url())
        .unreachable_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let (mut plumber, out) = stalled(&server, pool, 4);
    // Nothing more to send: only the reader can notice.
    server.stop();
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    let items = out.take();
    assert_eq!(items.len(), 4);
    for r in &items {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied);
        assert!(
            e.message().contains("has not answered") || e.message().contains("unreachable"),
            "{e}"
        );
    }
}

#[test]
fn local_workers_that_cannot_start_end_the_run_with_a_clear_error() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let pool = BrokerPool::builder("nostart", &server.url())
        .local_workers(
            2,
            papy_core::WorkerCommand::new("/nonexistent/papy-broker-worker", ["worker"]),
        )
        .build()
        .unwrap();
    let (mut plumber, out) = stalled(&server, pool, 4);
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    let items = out.take();
    assert_eq!(items.len(), 4);
    for r in &items {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied);
        assert!(e.message().contains("giving up"), "{e}");
    }
}

#[test]
fn a_second_host_on_the_same_run_id_fails_the_first_loudly() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let first = BrokerPool::builder("first", &server.url())
        .run_id("shared")
        .build()
        .unwrap();
    let (mut plumber, out) = stalled(&server, first, 3);
    let _second = BrokerPool::builder("second", &server.url())
        .run_id("shared")
        .build()
        .unwrap();
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    drop(plumber);
    // The first host's shutdown leaves the second one's run alone.
    let state: String = redis::cmd("HGET")
        .arg("papy:shared:run")
        .arg("state")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(state, "running");
    let items = out.take();
    assert_eq!(items.len(), 3);
    for r in &items {
        let e = r.as_ref().unwrap_err();
        assert!(
            e.message().contains("another host took over run `shared`"),
            "{e}"
        );
    }
}

#[test]
fn a_redis_resource_survives_save_and_load() {
    let _serial = support::serial();
    let server = RedisServer::start();
    papy_broker::install();
    let text = format!(
        r#"
[resources.farm]
kind = "redis"
url = "{}"
run_id = "saved"
max_attempts = 5
claim_after = 2.5
stride = 2
command = "exec python3 w.py"
functions = ["py.load", "py.f"]
recycle_after = 50
recycle_above_mb = 300
init = {{ function = "py.load", args = ["model.bin", 3] }}

[[pipers]]
name = "add"
resource = "farm"
worker = [{{ function = "t_add", args = [1] }}]
"#,
        server.url()
    );
    let saved = Plumber::from_toml(&text).unwrap().save_string().unwrap();
    for line in [
        "kind = \"redis\"".to_string(),
        format!("url = \"{}\"", server.url()),
        "run_id = \"saved\"".into(),
        "max_attempts = 5".into(),
        "claim_after = 2.5".into(),
        "workers = 0".into(),
        // The relay's keys (a redis resource's `command`, as a remote one's).
        "command = \"exec python3 w.py\"".into(),
        "functions = [\"py.load\", \"py.f\"]".into(),
        "recycle_after = 50".into(),
        "recycle_above_mb = 300".into(),
        "function = \"py.load\"".into(),
        "args = [\"model.bin\", 3]".into(),
    ] {
        assert!(saved.contains(&line), "{line} in\n{saved}");
    }
    let again = Plumber::from_toml(&saved).unwrap().save_string().unwrap();
    assert_eq!(again, saved);
}

#[test]
fn a_tls_url_is_understood_and_an_unreachable_server_is_an_error() {
    // rediss:// needs the TLS support compiled in (rustls): an unreachable
    // server is a connection error, not "feature not enabled" or a panic.
    let e = RedisQueue::connect("rediss://:pw@127.0.0.1:1", "tls")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("cannot connect to rediss://***@127.0.0.1:1"),
        "{e}"
    );
    assert!(!e.to_lowercase().contains("feature"), "{e}");
}

#[test]
fn an_unreadable_result_fails_its_own_job_and_the_rest_is_still_read() {
    let _serial = support::serial();
    let server = RedisServer::start();
    // No workers: this test plays the worker by hand.
    let ByHand {
        sealer,
        pool: _,
        mut plumber,
        out,
        mut q,
    } = by_hand(&server, "unreadable", 1, 0..6i64);
    let mut runner = papy_core::protocol::serve::TaskRunner::default();
    let mut spoiled: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the run did not end");
        for e in q
            .read_tasks("by-hand", 10, Duration::from_millis(100))
            .unwrap()
        {
            let papy_core::protocol::Frame::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            } = open_task(&sealer, &e)
            else {
                panic!("not a task");
            };
            if spoiled.is_empty() {
                // A result entry without any field, then one whose payload
                // is no frame but whose job id is readable.
                spoiled = indices.clone();
                let _: String = redis::cmd("XADD")
                    .arg("papy:unreadable:results")
                    .arg("*")
                    .arg("s")
                    .arg(&e.session)
                    .query(q.connection())
                    .unwrap();
                q.complete(
                    &e,
                    &sealer.seal(
                        papy_broker::seal::Role::Result,
                        &e.session,
                        b"not a frame".to_vec(),
                    ),
                    Duration::ZERO,
                )
                .unwrap();
                continue;
            }
            let results = papy_core::protocol::WireResults::from_items(
                &runner.run(chain, &node, &indices, inboxes),
            );
            let bytes =
                papy_broker::codec::encode(&papy_core::protocol::Frame::Result { id, results })
                    .unwrap();
            q.complete(
                &e,
                &sealer.seal(papy_broker::seal::Role::Result, &e.session, bytes),
                Duration::ZERO,
            )
            .unwrap();
        }
        if plumber.wait(Some(Duration::from_millis(10))).unwrap() {
            break;
        }
    }
    let items = out.take();
    assert_eq!(items.len(), 6);
    assert!(!spoiled.is_empty());
    for (i, r) in items.iter().enumerate() {
        if spoiled.contains(&(i as u64)) {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WorkerDied);
            assert!(e.message().contains("unreadable"), "{e}");
        } else {
            assert_eq!(r.as_ref().unwrap(), &Value::Int(i as i64 + 10), "item {i}");
        }
    }
}

#[test]
fn a_malformed_task_entry_is_dead_lettered_and_the_run_goes_on() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let p = Arc::new(pool(&server, "malformed", 1).build().unwrap());
    let mut con = server.connection();
    let session: String = redis::cmd("HGET")
        .arg("papy:malformed:run")
        .arg("session")
        .query(&mut con)
        .unwrap();
    // A task entry without its frame, for a job the host never sent.
    let _: String = redis::cmd("XADD")
        .arg("papy:malformed:tasks")
        .arg("*")
        .arg("s")
        .arg(&session)
        .arg("j")
        .arg(999_999)
        .query(&mut con)
        .unwrap();
    let m = numap_on(&p, 2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    assert_eq!(run_all(d, ints(0..8)).remove(0).1, ints(1..9));
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("papy:malformed:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(dead.ids.len(), 1, "the malformed entry is dead-lettered");
    let job: String = redis::from_redis_value(&dead.ids[0].map["j"]).unwrap();
    assert_eq!(job, "999999");
    assert_eq!(pending(&server, "malformed"), 0);
}

#[test]
fn a_worker_does_not_recreate_the_streams_of_a_run_that_is_gone() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let mut q = RedisQueue::connect(&server.url(), "expired").unwrap();
    assert!(q
        .read_tasks("w", 1, Duration::from_millis(50))
        .unwrap()
        .is_empty());
    assert!(q
        .reclaim("w", Duration::from_millis(10), 1)
        .unwrap()
        .is_empty());
    let exists: i64 = redis::cmd("EXISTS")
        .arg("papy:expired:tasks")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(exists, 0, "no stream without a run");
}

#[test]
fn the_host_dead_letters_a_poison_batch_when_no_worker_is_left_to_reclaim_it() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let pool = BrokerPool::builder("orphan", &server.url())
        .max_attempts(1)
        .claim_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let (mut plumber, out) = stalled(&server, pool, 1);
    // A "worker" takes the entry and dies (it never acknowledges), and no
    // other worker exists: only the host can end the batch.
    let mut q = RedisQueue::connect(&server.url(), "orphan").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while q
        .read_tasks("dies", 1, Duration::from_millis(100))
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no task entry appeared");
    }
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    let items = out.take();
    assert_eq!(items.len(), 1);
    let e = items[0].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied);
    assert!(
        e.message().contains("dead-lettered after 2 deliveries"),
        "{e}"
    );
    assert_eq!(pending(&server, "orphan"), 0);
}

#[test]
fn a_heartbeat_never_takes_an_entry_back_from_the_worker_that_reclaimed_it() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let mut q = RedisQueue::connect(&server.url(), "steal").unwrap();
    q.start_run(&papy_broker::RunSettings {
        session: "s".into(),
        max_attempts: 3,
        claim_after: Duration::from_millis(10),
        done: false,
        lease: Duration::from_secs(60),
        key_check: String::new(),
    })
    .unwrap();
    q.add_tasks("s", &[(1, b"x".to_vec())]).unwrap();
    let first = q.read_tasks("a", 1, Duration::from_millis(100)).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].job, Some(1));
    std::thread::sleep(Duration::from_millis(50));
    let taken = q.reclaim("b", Duration::from_millis(10), 1).unwrap();
    assert_eq!(taken.len(), 1, "b took the idle entry over");
    // The stalled worker wakes up and beats for the entry it lost: it
    // learns it lost it.
    let id = first[0].id.clone();
    assert_eq!(
        q.touch("a", std::slice::from_ref(&id)).unwrap(),
        [id.as_str()]
    );
    let owner: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg("papy:steal:tasks")
        .arg(papy_broker::GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(owner.ids.len(), 1);
    assert_eq!(owner.ids[0].consumer, "b", "the heartbeat stole nothing");
    // Its own entry's heartbeat works (resets the idle time, no delivery).
    assert!(q.touch("b", std::slice::from_ref(&id)).unwrap().is_empty());
    let again: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg("papy:steal:tasks")
        .arg(papy_broker::GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(again.ids[0].consumer, "b");
    assert_eq!(again.ids[0].times_delivered, 2);
}

// A scenario read top to bottom: its steps share state and splitting them
// would hide the order the test checks.
#[allow(clippy::too_many_lines)]
#[test]
fn a_forged_task_entry_is_dead_lettered_counted_and_never_run() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let key = "this-run-key-0123456789";
    let p = Arc::new(pool(&server, "forged", 1).key(key).build().unwrap());
    let mut con = server.connection();
    let session: String = redis::cmd("HGET")
        .arg("papy:forged:run")
        .arg("session")
        .query(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // A task the host never sent, which would write `marker` if it ran:
    // once without a tag, once sealed with another key.
    let frame = papy_core::protocol::Frame::Task {
        id: 4242,
        chain: vec![papy_core::protocol::Call {
            function: "b_count_runs_on".into(),
            args: vec![
                Value::Int(1),
                Value::from(marker.display().to_string()),
                Value::Int(0),
            ],
        }],
        node: "forged".into(),
        indices: vec![1],
        inboxes: papy_core::protocol::WireInboxes::Single(vec![Value::Int(1)]),
    };
    let bytes = papy_broker::codec::encode(&frame).unwrap();
    let other = papy_broker::seal::Sealer::new("another-key-0123456789", "forged").unwrap();
    for payload in [
        bytes.clone(),
        other.seal(papy_broker::seal::Role::Task, &session, bytes),
    ] {
        let _: String = redis::cmd("XADD")
            .arg("papy:forged:tasks")
            .arg("*")
            .arg("s")
            .arg(&session)
            .arg("j")
            .arg(4242)
            .arg("f")
            .arg(payload)
            .query(&mut con)
            .unwrap();
    }
    // A result sealed with the run's key for another session (a replay of
    // an earlier run's result) is not taken for this run's job 0.
    let mine = papy_broker::seal::Sealer::new(key, "forged").unwrap();
    let old_result = papy_broker::codec::encode(&papy_core::protocol::Frame::Result {
        id: 0,
        results: papy_core::protocol::WireResults::from_items(&[Ok(Value::Int(-1))]),
    })
    .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("papy:forged:results")
        .arg("*")
        .arg("s")
        .arg(&session)
        .arg("j")
        .arg(0)
        .arg("f")
        .arg(mine.seal(
            papy_broker::seal::Role::Result,
            "an-earlier-session",
            old_result,
        ))
        .query(&mut con)
        .unwrap();
    // The run itself goes on, on the same worker.
    let m = numap_on(&p, 2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    assert_eq!(run_all(d, ints(0..8)).remove(0).1, ints(1..9));
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("papy:forged:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(dead.ids.len(), 2, "both forged entries are dead-lettered");
    for e in &dead.ids {
        let why: String = redis::from_redis_value(&e.map["why"]).unwrap();
        assert!(why.contains("unauthenticated entry"), "{why}");
        // The worker's letter names no job: the forger's `j` fails nothing.
        let job: String = redis::from_redis_value(&e.map["job"]).unwrap();
        assert_eq!(job, "");
    }
    assert!(!marker.exists(), "a forged entry ran");
    // The host read the workers' two dead letters (sealed, naming no job:
    // refused entries) and the replayed result (which it could not open).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (p.forged() < 1 || p.refused() < 2) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.forged(), 1);
    assert_eq!(p.refused(), 2);
}

#[test]
fn a_worker_with_another_key_stops_instead_of_serving() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let _p = pool(&server, "keyed", 0)
        .key("the-hosts-key-0123456789")
        .build()
        .unwrap();
    let out = papy_broker::test_worker_command()
        .unwrap()
        .to_command()
        .env(papy_core::pool::WORKER_ENV, "redis")
        .env(papy_broker::URL_ENV, server.url())
        .env(papy_broker::RUN_ENV, "keyed")
        .env(papy_broker::seal::KEY_ENV, "not-the-hosts-key-0123")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not the one run `keyed` was started with"),
        "{stderr}"
    );
    // And one with no key at all does not start.
    let out = papy_broker::test_worker_command()
        .unwrap()
        .to_command()
        .env(papy_core::pool::WORKER_ENV, "redis")
        .env(papy_broker::URL_ENV, server.url())
        .env(papy_broker::RUN_ENV, "keyed")
        .env_remove(papy_broker::seal::KEY_ENV)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no broker key"), "{stderr}");
}

/// Appends a copy of entry `e` (its `s`, `j` and `f` fields, plus `extra`)
/// to `stream`, as anyone who can write to the run's streams could.
fn copy_entry(
    con: &mut redis::Connection,
    stream: &str,
    e: &papy_broker::Entry,
    extra: &[(&str, Vec<u8>)],
) {
    let mut c = redis::cmd("XADD");
    c.arg(stream)
        .arg("*")
        .arg("s")
        .arg(&e.session)
        .arg("j")
        .arg(e.job.map(|j| j.to_string()).unwrap_or_default())
        .arg("f")
        .arg(e.payload.as_slice());
    for (k, v) in extra {
        c.arg(*k).arg(v.as_slice());
    }
    let _: String = c.query(con).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// A scenario read top to bottom: its steps share state and splitting them
// would hide the order the test checks.
#[allow(clippy::too_many_lines)]
#[test]
fn a_task_entry_or_result_copied_into_the_dead_letter_stream_fails_nothing() {
    let _serial = support::serial();
    let server = RedisServer::start();
    // No workers: this test plays the worker, and the forger, by hand.
    let ByHand {
        sealer,
        pool: p,
        mut plumber,
        out,
        mut q,
    } = by_hand(&server, "letters", 1, 0..4i64);
    let mut con = server.connection();
    let mut runner = papy_core::protocol::serve::TaskRunner::default();
    // 50 KB of text of the forger's choosing.
    let chosen = "FORGED reason ".repeat(50_000 / 14);
    let (mut seen, mut forged, mut last) = (0u64, 0u64, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the run did not end");
        for e in q
            .read_tasks("by-hand", 10, Duration::from_millis(100))
            .unwrap()
        {
            let papy_core::protocol::Frame::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            } = open_task(&sealer, &e)
            else {
                panic!("not a task");
            };
            seen += 1;
            if indices == [3] {
                // The last item: answered below with a real dead letter.
                last = Some((e, id));
                continue;
            }
            let job = id.to_string().into_bytes();
            let letter = |t: Vec<u8>, why: &str| {
                vec![
                    ("entry", e.id.clone().into_bytes()),
                    ("n", b"1".to_vec()),
                    ("why", why.as_bytes().to_vec()),
                    ("job", job.clone()),
                    ("t", t),
                ]
            };
            // The sealed task entry itself, without a tag of its own, then
            // with the task's tag, then a sealed result with the result's
            // tag, then a real dead letter's tag over another reason.
            let task_tag = hex(&e.payload[e.payload.len() - 32..]).into_bytes();
            let result = sealer.seal(papy_broker::seal::Role::Result, &e.session, Vec::new());
            let real = sealer.dead_letter(&e.session, Some(id), &e.id, 1, "a real reason");
            let mut as_result = e.clone();
            as_result.payload = result.clone();
            copy_entry(
                &mut con,
                "papy:letters:dead",
                &e,
                &letter(Vec::new(), &chosen),
            );
            copy_entry(
                &mut con,
                "papy:letters:dead",
                &e,
                &letter(task_tag, &chosen),
            );
            copy_entry(
                &mut con,
                "papy:letters:dead",
                &as_result,
                &letter(hex(&result).into_bytes(), &chosen),
            );
            copy_entry(
                &mut con,
                "papy:letters:dead",
                &e,
                &letter(real.tag.into_bytes(), &chosen),
            );
            forged += 4;
            // Before the real result, give the host time to read them
            // (without the fix, the first fails the job at once).
            let wait = Instant::now() + Duration::from_secs(5);
            while p.forged() < forged && Instant::now() < wait {
                std::thread::sleep(Duration::from_millis(10));
            }
            let results = papy_core::protocol::WireResults::from_items(
                &runner.run(chain, &node, &indices, inboxes),
            );
            let bytes = papy_core::protocol::Frame::Result { id, results };
            let bytes = papy_broker::codec::encode(&bytes).unwrap();
            q.complete(
                &e,
                &sealer.seal(papy_broker::seal::Role::Result, &e.session, bytes),
                Duration::ZERO,
            )
            .unwrap();
        }
        if let Some((e, id)) = last.take() {
            // A sealed letter naming no job fails nothing (it reports a
            // refused entry); the real one fails its job, its reason quoted.
            let none = sealer.dead_letter(&e.session, None, &e.id, 1, "not the run's");
            let mut copy = e.clone();
            copy.id = "0-1".into();
            q.dead_letter(&copy, &none).unwrap();
            let wait = Instant::now() + Duration::from_secs(10);
            while p.refused() < 1 && Instant::now() < wait {
                std::thread::sleep(Duration::from_millis(10));
            }
            let real = sealer.dead_letter(&e.session, Some(id), &e.id, 4, &"long ".repeat(200_000));
            q.dead_letter(&e, &real).unwrap();
        }
        if plumber.wait(Some(Duration::from_millis(10))).unwrap() {
            break;
        }
    }
    assert_eq!(seen, 4);
    let items = out.take();
    assert_eq!(items.len(), 4);
    for (i, r) in items.iter().enumerate().take(3) {
        assert_eq!(r, &Ok(Value::Int(i as i64 + 10)), "item {i}");
    }
    let e = items[3].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied);
    assert!(
        e.message()
            .starts_with("dead-lettered after 4 deliveries: long long"),
        "{e}"
    );
    assert!(e.message().len() < 1200, "{} bytes", e.message().len());
    assert_eq!(p.forged(), forged);
    assert_eq!(forged, 12);
    assert_eq!(p.refused(), 1);
}

#[test]
fn a_sealed_task_entry_appended_again_runs_once() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let key = "replays-key-0123456789";
    let sealer = papy_broker::seal::Sealer::new(key, "replay").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let p = Arc::new(pool(&server, "replay", 2).key(key).build().unwrap());
    // Stride 1, default buffer: one entry in flight at a time. Item 2 works
    // for 1.5 s (one line per run in `runs`), while the other worker idles.
    let m = numap_on(&p, 1);
    let w = Worker::with_args(
        "b_count_runs_on",
        [
            Value::Int(2),
            Value::from(runs.display().to_string()),
            Value::Int(1500),
        ],
    )
    .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("count", w).parallel(&m)).unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("count").unwrap();
    plumber.start([("count", Source::values(0..5i64))]).unwrap();
    plumber.run().unwrap();
    let mut con = server.connection();
    // As soon as item 2's entry is on the stream, append it 5 times more,
    // fields and tag unchanged (new entry ids).
    let deadline = Instant::now() + Duration::from_secs(60);
    let original = loop {
        assert!(Instant::now() < deadline, "item 2's entry never appeared");
        let all: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("papy:replay:tasks")
            .arg("-")
            .arg("+")
            .query(&mut con)
            .unwrap();
        let found = all.ids.iter().find_map(|e| {
            let entry = papy_broker::Entry {
                id: e.id.clone(),
                session: redis::from_redis_value(&e.map["s"]).unwrap(),
                job: redis::from_redis_value::<String>(&e.map["j"])
                    .unwrap()
                    .parse()
                    .ok(),
                payload: redis::from_redis_value(&e.map["f"]).unwrap(),
                deliveries: 1,
            };
            match open_task(&sealer, &entry) {
                papy_core::protocol::Frame::Task { indices, .. } if indices == [2] => Some(entry),
                _ => None,
            }
        });
        if let Some(e) = found {
            break e;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    for _ in 0..5 {
        copy_entry(&mut con, "papy:replay:tasks", &original, &[]);
    }
    assert!(plumber.wait(Some(Duration::from_secs(120))).unwrap());
    assert_eq!(out.take(), ints(0..5));
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(count, 1, "item 2 ran once, not once per copy");
    assert_eq!(p.replays(), 5, "each copy counted as a replay");
    assert_eq!(pending(&server, "replay"), 0, "the copies are acknowledged");
    let dead: i64 = redis::cmd("XLEN")
        .arg("papy:replay:dead")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        dead, 0,
        "a replay is not dead-lettered (it would fail the real job)"
    );
}

#[test]
fn a_reclaimed_entry_still_holds_its_job_and_a_copy_of_it_does_not() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let mut q = RedisQueue::connect(&server.url(), "claims").unwrap();
    q.start_run(&papy_broker::RunSettings {
        session: "s".into(),
        max_attempts: 3,
        claim_after: Duration::from_millis(10),
        done: false,
        lease: Duration::from_secs(60),
        key_check: String::new(),
    })
    .unwrap();
    q.add_tasks("s", &[(1, b"x".to_vec()), (1, b"x".to_vec())])
        .unwrap();
    let read = q.read_tasks("a", 2, Duration::from_millis(100)).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(q.claim_job(&read[0], 1).unwrap(), papy_broker::Claim::Mine);
    // Worker a dies; b reclaims the entry: a redelivery runs again.
    std::thread::sleep(Duration::from_millis(50));
    let taken = q.reclaim("b", Duration::from_millis(10), 1).unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, read[0].id);
    assert_eq!(q.claim_job(&taken[0], 1).unwrap(), papy_broker::Claim::Mine);
    // The second entry carries the same job: a replay, acknowledged.
    assert_eq!(
        q.claim_job(&read[1], 1).unwrap(),
        papy_broker::Claim::Replay
    );
    // So is an entry of another session, even for a job nobody holds.
    let mut old = read[1].clone();
    old.session = "an-earlier-session".into();
    assert_eq!(q.claim_job(&old, 2).unwrap(), papy_broker::Claim::Replay);
    assert_eq!(q.replays().unwrap(), 2);
    let owner: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
        .arg("papy:claims:tasks")
        .arg(papy_broker::GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut server.connection())
        .unwrap();
    let ids: Vec<&str> = owner.ids.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [read[0].id.as_str()],
        "only the holder is still pending"
    );
    // A run that is gone writes nothing and runs nothing.
    let _: () = redis::cmd("DEL")
        .arg("papy:claims:run")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(
        q.claim_job(&taken[0], 1).unwrap(),
        papy_broker::Claim::RunGone
    );
}
