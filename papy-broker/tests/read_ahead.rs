//! Workers read entries ahead of the one they run (so that a worker far
//! from Redis does not wait a round trip between entries), on a
//! [`MemoryQueue`]: an entry read ahead is held as the one being run is
//! (reclaimed from a worker that dies, run once), and a worker never holds
//! more entries than its bound. Observed through the queue's pending list,
//! never through wall time.

#[path = "../../tests/common/mod.rs"]
mod common;
mod farm;

use std::time::Duration;

use common::*;
use farm::*;

/// One-item jobs on `farm`'s pool, `n` in flight at once.
fn numap(farm: &Farm, n: usize) -> papy::NuMap {
    papy::NuMap::builder()
        .pool(farm.pool.clone())
        .stride(1)
        .buffer(n)
        .build()
        .unwrap()
}

/// Entries pending with `consumer`.
fn held_by(farm: &Farm, consumer: &str) -> Vec<String> {
    farm.q
        .pending()
        .into_iter()
        .filter(|p| p.consumer == consumer)
        .map(|p| p.id)
        .collect()
}

#[test]
fn entries_a_dead_worker_read_ahead_are_reclaimed_and_run_once() {
    let tag = "ahead-dies";
    // Four one-item entries in flight at once (the task is not measured
    // yet: one entry per planned worker).
    let mut farm = Farm::new("ahead-dies", |b| b.size(4));
    let m = numap(&farm, 4);
    let (mut plumber, out) = start_work(&m, 0, tag, 0..4);
    // The worker runs item 0, which waits, and reads item 1 ahead.
    let link = farm.worker_reading_ahead("doomed", 2);
    wait_for("item 0 to start", || has(&STARTED, tag));
    wait_for("the doomed worker to hold 2 entries", || {
        held_by(&farm, "doomed").len() == 2
    });
    // It dies: cut off from the queue, nothing it does reaches it again.
    link.cut(true);
    release(tag);
    farm.worker("heir");
    farm.q.advance(PAST_CLAIM);
    // The dead worker can complete nothing: its heir took over every entry
    // it held, those read ahead too.
    assert_eq!(finish(&mut plumber, &out), ints(0..4));
    assert!(farm.q.pending().is_empty(), "{:?}", farm.q.pending());
    assert!(farm.q.dead_letters().is_empty());
}

#[test]
fn a_worker_never_holds_more_entries_than_its_read_ahead() {
    let tag = "ahead-bound";
    // Eight one-item entries in flight at once.
    let mut farm = Farm::new("ahead-bound", |b| b.size(8));
    let m = numap(&farm, 8);
    let (mut plumber, out) = start_work(&m, 0, tag, 0..8);
    // The first worker runs item 0, which waits, and reads ahead: 2
    // entries held at most.
    farm.worker_reading_ahead("first", 2);
    wait_for("item 0 to start", || has(&STARTED, tag));
    wait_for("the first worker to hold 2 entries", || {
        held_by(&farm, "first").len() == 2
    });
    // A second worker comes: it finds the 6 others still unread, and runs
    // them while the first still holds its 2.
    farm.worker("second");
    wait_for("items 2 to 7 to run", || (2..8).all(|x| runs(tag, x) == 1));
    assert_eq!(held_by(&farm, "first").len(), 2);
    release(tag);
    assert_eq!(finish(&mut plumber, &out), ints(0..8));
    for x in 0..8 {
        assert_eq!(runs(tag, x), 1, "item {x}");
    }
    assert!(farm.q.pending().is_empty());
}

#[test]
fn entries_a_stopped_worker_read_ahead_and_lost_meanwhile_are_not_run_when_it_resumes() {
    let tag = "ahead-stopped";
    // Real time: the stopped worker's entries must go stale on its clock.
    let mut farm = Farm::new(tag, |b| b.size(4).claim_after(Duration::from_secs(1)));
    let m = numap(&farm, 4);
    let (mut plumber, out) = start_work(&m, 0, tag, 0..4);
    // The worker runs item 0, which waits, and reads item 1 ahead.
    let link = farm.worker_reading_ahead("stopped", 2);
    wait_for("item 0 to start", || has(&STARTED, tag));
    wait_for("the stopped worker to hold 2 entries", || {
        held_by(&farm, "stopped").len() == 2
    });
    let held = held_by(&farm, "stopped");
    // It stops: no heartbeat, no call of it reaches the queue (nor fails).
    link.pause(true);
    farm.worker("heir");
    wait_for("the heir to take over both entries", || {
        held.iter().all(|id| held_by(&farm, "heir").contains(id))
    });
    // It resumes and finishes item 0 (that late result is dropped); item 1,
    // read ahead, is the heir's now: it is not run again.
    link.pause(false);
    release(tag);
    assert_eq!(finish(&mut plumber, &out), ints(0..4));
    drop(farm);
    assert_eq!(runs(tag, 0), 2, "item 0 ran on both");
    assert_eq!(runs(tag, 1), 1, "item 1 ran on the heir only");
}
