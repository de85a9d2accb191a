//! Redis failing under a run (issue 29), each test on its own redis-server:
//! restarted with `appendonly yes`, every item arrives exactly once; a
//! worker cut off (SIGSTOP) longer than `claim_after` has its batch taken
//! over by another and its late result dropped; at its `maxmemory` the run
//! ends with errors naming the cause instead of hanging. (Redis killed for
//! good, then `papy run --resume` on a new one: papy-cli/tests/broker_faults.rs.)

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use papy::{Dagger, NuMap, Piper, Plumber, Source, Value, Worker};
use papy_broker::BrokerPool;
use support::RedisServer;

papy_broker::enable_test_support!();

fn pool(server: &RedisServer, run: &str, workers: usize) -> papy_broker::BrokerPoolBuilder {
    BrokerPool::builder(run, &server.url())
        .local_workers(workers, papy_broker::test_worker_command().unwrap())
        .keep_for(Duration::from_secs(60))
}

/// A run of `inputs` through `worker` on `pool` (stride 1, a buffer of 8:
/// several entries in flight), started.
fn started(
    pool: &Arc<BrokerPool>,
    worker: Worker,
    inputs: std::ops::Range<i64>,
) -> (Plumber, papy_core::Collector) {
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(1)
        .buffer(8)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("node", worker).parallel(&m))
        .unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("node").unwrap();
    plumber.start([("node", Source::values(inputs))]).unwrap();
    plumber.run().unwrap();
    (plumber, out)
}

/// `t_report_pid_on` item `k`: records the pid of the worker that runs it
/// in `marker`, then works `ms`.
fn slow_on(k: i64, marker: &std::path::Path, ms: i64) -> Worker {
    Worker::with_args(
        "t_report_pid_on",
        [
            Value::Int(k),
            Value::from(marker.display().to_string()),
            Value::Int(ms),
        ],
    )
    .unwrap()
}

fn marker(name: &str) -> std::path::PathBuf {
    let m = std::env::temp_dir().join(format!("papy-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&m);
    m
}

/// Waits for `path` to hold a pid (a hang guard, not a timing).
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

/// Entries of `run` delivered and not acknowledged, and dead letters.
fn pending_and_dead(server: &RedisServer, run: &str) -> (usize, i64) {
    let mut con = server.connection();
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(format!("papy:{run}:tasks"))
        .arg(papy_broker::GROUP)
        .query(&mut con)
        .unwrap();
    let dead: i64 = redis::cmd("XLEN")
        .arg(format!("papy:{run}:dead"))
        .query(&mut con)
        .unwrap();
    (pending.count(), dead)
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

#[test]
fn a_redis_restarted_with_appendonly_gives_every_item_exactly_once() {
    let _serial = support::serial();
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let marker = marker("aof");
    let p = Arc::new(
        pool(&server, "aof", 2)
            .claim_after(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    // Item 7 works for 1.5 s, during which Redis is killed and restarted:
    // it reads its log back, entries pending and results unread included.
    let (mut plumber, out) = started(&p, slow_on(7, &marker, 1500), 0..40);
    pid_in(&marker);
    server.restart();
    assert!(plumber.wait(Some(Duration::from_secs(120))).unwrap());
    assert_eq!(out.take(), ints(0..40), "every item exactly once, in order");
    assert_eq!(pending_and_dead(&server, "aof"), (0, 0));
    // The log kept the run: the host found it and did not start it again.
    // (Its entries, all answered, are deleted: the stream remembers the
    // last id it gave.)
    let mut con = server.connection();
    let info: redis::streams::StreamInfoStreamReply = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("papy:aof:tasks")
        .query(&mut con)
        .unwrap();
    assert_ne!(
        info.last_generated_id, "0-0",
        "the task stream survived the restart"
    );
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn a_worker_cut_off_longer_than_claim_after_loses_its_batch_and_its_late_result() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let marker = marker("stop");
    let p = Arc::new(
        pool(&server, "stop", 2)
            .claim_after(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    // Item 5 works for 2 s on whichever worker takes it; that worker is
    // stopped (no heartbeats, no result) until the run is over.
    let (mut plumber, out) = started(&p, slow_on(5, &marker, 2000), 0..30);
    let victim = pid_in(&marker);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.pids().values().any(|&pid| pid == victim) {
        assert!(
            Instant::now() < deadline,
            "{victim} is not one of the pool's workers"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&marker);
    signal(victim, "-STOP");
    let finished = plumber.wait(Some(Duration::from_secs(120)));
    let items = out.take();
    // Resume it before asserting, so a failure never leaves it stopped.
    signal(victim, "-CONT");
    assert!(
        finished.unwrap(),
        "the run finished without the stopped worker"
    );
    assert_eq!(items, ints(0..30), "every item exactly once, in order");
    let second = pid_in(&marker);
    assert_ne!(second, victim, "another worker took item 5 over");
    // Resumed, the cut-off worker finishes item 5's batch and appends its
    // result: the host drops it (it delivered the job already).
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.duplicates() == 0 {
        assert!(Instant::now() < deadline, "the late result never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Any entry it had read ahead was taken over too: it learns so before
    // it runs it, and does not (`read_ahead.rs` makes sure it had one).
    // Once the run is over and its workers gone, every entry has one
    // result, that batch two.
    drop(plumber);
    papy_core::Pool::shutdown(&*p);
    let mut con = server.connection();
    let mut len = |stream: &str| -> i64 {
        let key = format!("papy:stop:{stream}");
        redis::cmd("XLEN").arg(key).query(&mut con).unwrap()
    };
    assert_eq!(len("results"), len("tasks") + 1, "one late result");
    assert_eq!(p.duplicates(), 1);
    assert_eq!(pending_and_dead(&server, "stop"), (0, 0));
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn a_redis_at_its_maxmemory_ends_the_run_with_errors_naming_it() {
    let _serial = support::serial();
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let marker = marker("full");
    let p = Arc::new(
        pool(&server, "full", 2)
            .unreachable_after(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    let (mut plumber, out) = started(&p, slow_on(4, &marker, 500), 0..16);
    pid_in(&marker);
    // From now on every write is refused: Redis is over its limit.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut server.connection())
        .unwrap();
    assert!(plumber.wait(Some(Duration::from_secs(120))).unwrap());
    let items = out.take();
    assert_eq!(
        items.len(),
        16,
        "every item answered, as a value or an error"
    );
    let failed: Vec<_> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!failed.is_empty(), "a full Redis fails items");
    for e in &failed {
        assert!(e.message().contains("maxmemory"), "{e}");
    }
    for (i, r) in items.iter().enumerate() {
        if let Ok(v) = r {
            assert_eq!(v, &Value::Int(i as i64));
        }
    }
    let _ = std::fs::remove_file(&marker);
}
