//! How the host sizes and groups its entries, on a [`MemoryQueue`] with a
//! worker played by the test: from the time workers report they spent on
//! entries (not the round trip, which from far away is mostly distance),
//! and never merging jobs whose time is unknown. Entry sizes are observed,
//! never wall time.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use papy::{Dagger, NuMap, Piper, Plumber, Source, Worker};
use papy_broker::seal::{Role, Sealer};
use papy_broker::{BrokerPool, Entry, MemoryQueue, Queue};
use papy_core::protocol::serve::TaskRunner;
use papy_core::protocol::{Frame, WireResults};
use papy_core::{Collector, Pool};

const KEY: &str = "pace-memory-queue-key-0123456789";

/// A host pool planned for one worker, on a fresh memory queue.
fn pool(run: &str) -> (MemoryQueue, Arc<BrokerPool>) {
    let q = MemoryQueue::new();
    let pool = BrokerPool::builder(run, "memory:")
        .key(KEY)
        .size(1)
        .claim_after(Duration::from_secs(30))
        .keep_for(Duration::from_secs(60))
        .build_on(Arc::new(q.clone()))
        .unwrap();
    (q, Arc::new(pool))
}

/// `t_add(x, 10)` on `m` over `input`, started.
fn start(m: &NuMap, input: std::ops::Range<i64>) -> (Plumber, Collector) {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [10]).unwrap()).parallel(m))
        .unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("add").unwrap();
    plumber.start([("add", Source::values(input))]).unwrap();
    plumber.run().unwrap();
    (plumber, out)
}

/// The worker the test plays: runs entry `e` and completes it, reporting
/// `busy` as the time it spent on it; returns how many items it held.
fn answer(
    q: &mut MemoryQueue,
    sealer: &Sealer,
    runner: &mut TaskRunner,
    e: &Entry,
    busy: Duration,
) -> usize {
    let payload = sealer.open(Role::Task, &e.session, &e.payload).unwrap();
    let Frame::Task {
        id,
        chain,
        node,
        indices,
        inboxes,
    } = papy_broker::codec::decode(&e.id, payload).unwrap()
    else {
        panic!("not a task");
    };
    let n = indices.len();
    let results = WireResults::from_items(&runner.run(chain, &node, &indices, inboxes));
    let bytes = papy_broker::codec::encode(&Frame::Result { id, results }).unwrap();
    q.complete(e, &sealer.seal(Role::Result, &e.session, bytes), busy)
        .unwrap();
    n
}

#[test]
fn jobs_grow_from_afar_when_the_worker_reports_a_short_busy_time() {
    let (q, pool) = pool("afar");
    let sealer = Sealer::new(KEY, pool.run_id()).unwrap();
    // Adaptive batching: jobs of one item until items are measured, then
    // as many as the pool's job target (20 ms) holds.
    let m = NuMap::builder().pool(pool.clone()).build().unwrap();
    let n = 600;
    let (mut plumber, out) = start(&m, 0..n);
    let (mut q, mut runner) = (q.clone(), TaskRunner::default());
    let (mut entries, mut largest) = (0, 0);
    // Timed by the round trip, every item looks slower than the job
    // target (20 ms), even in an entry of 8: jobs stay at one item, and
    // with one worker at most 8 of them are in flight (eight visits of
    // buffer room), so no entry holds more than 8 items and the run takes
    // `n / 8` entries or more.
    while out.len() < n as usize && entries < 40 {
        for e in q.read_tasks("far", 1, Duration::from_millis(50)).unwrap() {
            // Every round trip takes longer than 8 job targets (the
            // worker is far away), but the worker was busy 1 us.
            std::thread::sleep(Duration::from_millis(200));
            let busy = Duration::from_micros(1);
            largest = largest.max(answer(&mut q, &sealer, &mut runner, &e, busy));
            entries += 1;
        }
    }
    if entries >= 40 {
        // What is in flight fails, so that the run ends.
        pool.shutdown();
        panic!("{entries} entries, the largest of {largest} items: jobs never grew");
    }
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    assert_eq!(out.take(), ints(10..n + 10));
    assert!(largest > 8, "the largest entry held {largest} items");
}

/// The items of a task entry.
fn items(sealer: &Sealer, e: &Entry) -> Vec<u64> {
    let payload = sealer.open(Role::Task, &e.session, &e.payload).unwrap();
    match papy_broker::codec::decode(&e.id, payload).unwrap() {
        Frame::Task { indices, .. } => indices,
        _ => panic!("not a task"),
    }
}

#[test]
fn jobs_of_a_task_not_measured_yet_go_alone_one_per_worker_then_merged() {
    let (q, pool) = pool("unmeasured");
    let sealer = Sealer::new(KEY, pool.run_id()).unwrap();
    // Jobs of one item, 64 of them in flight at once.
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(1)
        .buffer(64)
        .build()
        .unwrap();
    let n = 64;
    let (mut plumber, out) = start(&m, 0..n);
    let mut q = q.clone();
    // Nothing answered: the task is not measured, so its first job goes
    // alone (no result waits behind a job of unknown length), and, with
    // one worker, no other is sent before it comes back.
    let mut first = Vec::new();
    while first.is_empty() {
        first = q
            .read_tasks("near", 100, Duration::from_millis(50))
            .unwrap();
    }
    let more = q
        .read_tasks("near", 100, Duration::from_millis(200))
        .unwrap();
    let sizes: Vec<usize> = first
        .iter()
        .chain(&more)
        .map(|e| items(&sealer, e).len())
        .collect();
    if sizes != [1] {
        // What is in flight fails, so that the run ends.
        pool.shutdown();
        panic!("entries of an unmeasured task: {sizes:?} items");
    }
    // Answered in 1 us: the task is fast, and the jobs held back are
    // merged into fewer entries than jobs.
    let mut runner = TaskRunner::default();
    answer(
        &mut q,
        &sealer,
        &mut runner,
        &first[0],
        Duration::from_micros(1),
    );
    let mut entries = 0;
    while out.len() < n as usize {
        for e in q
            .read_tasks("near", 100, Duration::from_millis(50))
            .unwrap()
        {
            answer(&mut q, &sealer, &mut runner, &e, Duration::from_micros(1));
            entries += 1;
        }
    }
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    assert_eq!(out.take(), ints(10..n + 10));
    assert!(entries < n - 1, "{entries} entries for {} jobs", n - 1);
}
