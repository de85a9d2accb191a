//! The broker's delivery rules on a [`MemoryQueue`], without a server: the
//! host pool and its workers (threads of this process, `serve_on`) share one
//! in-memory queue. A "dead" worker is a consumer that reads entries and
//! never answers, or a worker whose link to the queue is cut; the queue's
//! clock is moved forward to make entries idle at once.

#[path = "../../tests/common/mod.rs"]
mod common;
mod farm;

use std::time::Duration;

use common::*;
use farm::*;
use papy::{Dagger, ErrorKind, Piper, Plumber, Source, Value, Worker};
use papy_broker::seal::{Role, Sealer};
use papy_broker::{Claim, MemoryQueue, Outcome, Queue, RunSettings};
use papy_core::protocol::serve::TaskRunner;
use papy_core::protocol::{Frame, WireResults};

#[test]
fn memory_workers_give_the_same_output_as_threads() {
    let n = 40;
    let reference = run_all(
        fork_join(Resources {
            workers: Some(2),
            stride: 3,
            buffer: None,
        }),
        ints(0..n),
    );
    let mut farm = Farm::new("same", |b| b.size(2));
    farm.worker("a");
    farm.worker("b");
    for stride in [1, 3, 7] {
        let on_broker = Some(farm.numap(stride));
        assert_eq!(
            run_all(fork_join_on(&on_broker, &on_broker), ints(0..n)),
            reference,
            "stride {stride}"
        );
    }
    assert_eq!(farm.pool.duplicates(), 0);
    assert!(farm.q.pending().is_empty(), "every entry acknowledged");
    assert!(farm.q.dead_letters().is_empty());
}

#[test]
fn an_entry_a_dead_worker_held_is_run_again_once_after_claim_after() {
    let tag = "reclaim";
    let mut farm = Farm::new("reclaim", |b| b);
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, -1, tag, 0..6);
    // A worker takes an entry and dies before it runs anything.
    let lost = take_some(&farm.q, "ghost", 1);
    let lost_items = match open_task(&farm.sealer(), &lost[0]) {
        Frame::Task { indices, .. } => indices,
        _ => panic!("not a task"),
    };
    farm.worker("live");
    // Within claim_after the entry stays with the dead worker.
    std::thread::sleep(Duration::from_millis(600));
    let pending = farm.q.pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (pending[0].consumer.as_str(), pending[0].deliveries),
        ("ghost", 1)
    );
    for &i in &lost_items {
        assert_eq!(runs(tag, i as i64), 0);
    }
    farm.q.advance(PAST_CLAIM);
    assert_eq!(finish(&mut plumber, &out), ints(0..6));
    for i in 0..6 {
        assert_eq!(runs(tag, i), 1, "item {i} ran once");
    }
    assert!(farm.q.pending().is_empty());
    assert!(farm.q.dead_letters().is_empty());
    assert_eq!(farm.pool.duplicates(), 0);
}

#[test]
fn a_worker_cut_off_mid_batch_loses_nothing_and_delivers_once() {
    let tag = "cut";
    let mut farm = Farm::new("cut", |b| b);
    let a = farm.worker("a");
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, 2, tag, 0..6);
    wait_for("item 2 to start", || has(&STARTED, tag));
    // Worker a dies while it runs item 2: no heartbeat, no result.
    a.cut(true);
    farm.worker("b");
    release(tag);
    farm.q.advance(PAST_CLAIM);
    assert_eq!(finish(&mut plumber, &out), ints(0..6));
    assert_eq!(runs(tag, 2), 2, "item 2 ran again on worker b");
    for i in [0, 1, 3, 4, 5] {
        assert_eq!(runs(tag, i), 1, "item {i}");
    }
    assert_eq!(farm.pool.duplicates(), 0, "a's result never arrived");
    assert!(farm.q.pending().is_empty(), "nothing left pending");
    assert!(farm.q.dead_letters().is_empty());
}

#[test]
fn a_result_that_arrives_twice_is_delivered_once() {
    // No workers: the test plays one and answers every entry twice.
    let farm = Farm::new("twice", |b| b);
    let sealer = farm.sealer();
    let m = farm.numap(2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [10]).unwrap()).parallel(&m))
        .unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("add").unwrap();
    plumber.start([("add", Source::values(0..4i64))]).unwrap();
    plumber.run().unwrap();
    let mut q = farm.q.clone();
    let mut runner = TaskRunner::default();
    let mut answered = 0;
    while out.len() < 4 {
        for e in q
            .read_tasks("by-hand", 10, Duration::from_millis(50))
            .unwrap()
        {
            let Frame::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            } = open_task(&sealer, &e)
            else {
                panic!("not a task");
            };
            let results = WireResults::from_items(&runner.run(chain, &node, &indices, inboxes));
            let bytes = papy_broker::codec::encode(&Frame::Result { id, results }).unwrap();
            let bytes = sealer.seal(Role::Result, &e.session, bytes);
            q.complete(&e, &bytes, Duration::ZERO).unwrap();
            q.complete(&e, &bytes, Duration::ZERO).unwrap();
            answered += 1;
        }
    }
    assert_eq!(finish(&mut plumber, &out), ints(10..14));
    wait_for("the duplicates", || farm.pool.duplicates() >= answered);
    assert_eq!(farm.pool.duplicates(), answered);
    assert_eq!(farm.q.results().len() as u64, 2 * answered);
}

#[test]
fn an_entry_delivered_more_than_max_attempts_is_dead_lettered_and_only_its_item_fails() {
    let tag = "attempts";
    let mut farm = Farm::new("attempts", |b| b.max_attempts(2));
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, -1, tag, 0..4);
    // Two workers in turn take the entry and die.
    let first = take_some(&farm.q, "ghost-1", 1);
    farm.q.advance(PAST_CLAIM);
    let again = farm.q.clone().reclaim("ghost-2", CLAIM_AFTER, 1).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].deliveries),
        (first[0].id.as_str(), 2)
    );
    farm.q.advance(PAST_CLAIM);
    // The third delivery (to a worker, or to the host's sweep) gives up.
    farm.worker("live");
    let items = finish(&mut plumber, &out);
    assert_eq!(items.len(), 4);
    let failed: Vec<usize> = (0..4).filter(|&i| items[i].is_err()).collect();
    assert_eq!(failed.len(), 1, "{items:?}");
    let i = failed[0];
    let e = items[i].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied);
    assert!(
        e.message().contains("dead-lettered after 3 deliveries")
            && e.message().contains("max_attempts = 2"),
        "{e}"
    );
    assert_eq!(e.index(), Some(i as u64));
    assert_eq!(runs(tag, i as i64), 0, "the poison entry never ran");
    for k in (0..4).filter(|&k| k != i) {
        assert_eq!(items[k], Ok(Value::Int(k as i64)));
    }
    let dead = farm.q.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].entry.as_str(), dead[0].deliveries),
        (first[0].id.as_str(), 3)
    );
    assert!(dead[0].job.is_some(), "the letter names its job");
    assert!(farm.q.pending().is_empty());
}

#[test]
fn the_host_dead_letters_a_stale_entry_when_no_worker_is_left() {
    let farm = Farm::new("sweep", |b| b.max_attempts(1));
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, -1, "sweep", 0..1);
    take_some(&farm.q, "ghost", 1);
    farm.q.advance(PAST_CLAIM);
    // No worker at all: the host's own sweep ends the run.
    let items = finish(&mut plumber, &out);
    let e = items[0].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WorkerDied);
    assert!(
        e.message().contains("dead-lettered after 2 deliveries"),
        "{e}"
    );
    assert_eq!(runs("sweep", 0), 0);
    assert_eq!(farm.q.dead_letters().len(), 1);
    assert!(farm.q.pending().is_empty());
}

#[test]
fn a_forged_task_entry_is_refused_counted_and_never_run() {
    let mut farm = Farm::new("forged", |b| b);
    farm.worker("w");
    let session = farm.session();
    // A task the host never sent, which would record a run under "forger"
    // if it ran: once without a tag, once sealed with another key.
    let frame = Frame::Task {
        id: 4242,
        chain: vec![papy_core::protocol::Call {
            function: "m_work".into(),
            args: vec![Value::Int(-1), Value::from("forger")],
        }],
        node: "forged".into(),
        indices: vec![1],
        inboxes: papy_core::protocol::WireInboxes::Single(vec![Value::Int(1)]),
    };
    let bytes = papy_broker::codec::encode(&frame).unwrap();
    let other = Sealer::new("another-key-0123456789", farm.pool.run_id()).unwrap();
    let sealed = other.seal(Role::Task, &session, bytes.clone());
    farm.q
        .clone()
        .add_tasks(&session, &[(4242, bytes), (4242, sealed)])
        .unwrap();
    // The run itself goes on.
    let m = farm.numap(2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    assert_eq!(run_all(d, ints(0..6)).remove(0).1, ints(1..7));
    wait_for("two refusals", || farm.pool.refused() >= 2);
    assert_eq!(farm.pool.refused(), 2);
    assert_eq!(runs("forger", 1), 0, "a forged entry ran");
    let dead = farm.q.dead_letters();
    assert_eq!(dead.len(), 2);
    for d in &dead {
        assert_eq!(d.job, None, "the forger's job number fails nothing");
        assert!(d.reason.contains("unauthenticated entry"), "{}", d.reason);
    }
    assert!(farm.q.pending().is_empty());
}

#[test]
fn forged_results_and_dead_letters_are_ignored_and_counted() {
    let mut farm = Farm::new("outcomes", |b| b);
    let session = farm.session();
    let sealer = farm.sealer();
    // Before any job runs: a result for job 0 sealed for another session,
    // a dead letter for job 0 with no valid tag, and one whose reason was
    // changed after sealing.
    let result = papy_broker::codec::encode(&Frame::Result {
        id: 0,
        results: WireResults::from_items(&[Ok(Value::Int(-1)), Ok(Value::Int(-1))]),
    })
    .unwrap();
    farm.q.append_outcome(Outcome::Result {
        session: session.clone(),
        job: Some(0),
        payload: sealer.seal(Role::Result, "an-earlier-session", result),
        busy: None,
    });
    let mut letter = sealer.dead_letter(&session, Some(0), "1-0", 9, "forged");
    letter.tag = "00".repeat(32);
    farm.q.append_outcome(Outcome::Dead {
        session: session.clone(),
        letter,
    });
    let mut changed = sealer.dead_letter(&session, Some(0), "1-0", 9, "real");
    changed.reason = "chosen".into();
    farm.q.append_outcome(Outcome::Dead {
        session,
        letter: changed,
    });
    wait_for("three forgeries", || farm.pool.forged() >= 3);
    farm.worker("w");
    let m = farm.numap(2);
    let mut d = Dagger::new();
    d.add_piper(Piper::new("add", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    assert_eq!(
        run_all(d, ints(0..4)).remove(0).1,
        ints(1..5),
        "job 0 unharmed"
    );
    assert_eq!(farm.pool.forged(), 3);
    assert_eq!(farm.pool.refused(), 0);
}

#[test]
fn a_same_session_replay_is_acknowledged_and_not_run() {
    let tag = "replay";
    let mut farm = Farm::new("replay", |b| b);
    farm.worker("w");
    let sealer = farm.sealer();
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, 2, tag, 0..5);
    wait_for("item 2 to start", || has(&STARTED, tag));
    // Item 2's entry, sealed, appended again three times (new entry ids).
    let original = farm
        .q
        .tasks()
        .into_iter()
        .find(|e| matches!(open_task(&sealer, e), Frame::Task { indices, .. } if indices == [2]))
        .unwrap();
    let copies = vec![(original.job.unwrap(), original.payload.clone()); 3];
    farm.q
        .clone()
        .add_tasks(&original.session, &copies)
        .unwrap();
    release(tag);
    assert_eq!(finish(&mut plumber, &out), ints(0..5));
    wait_for("the replays to be counted", || farm.pool.replays() >= 3);
    assert_eq!(farm.pool.replays(), 3);
    assert_eq!(runs(tag, 2), 1, "item 2 ran once, not once per copy");
    assert!(farm.q.pending().is_empty(), "the copies are acknowledged");
    assert!(farm.q.tasks().is_empty(), "and deleted, as on Redis");
    assert!(farm.q.dead_letters().is_empty(), "a replay fails nothing");
    assert_eq!(farm.pool.duplicates(), 0);
}

#[test]
fn heartbeats_keep_a_long_batch_of_a_live_worker_from_being_reclaimed() {
    let tag = "heartbeat";
    let mut farm = Farm::new("heartbeat", |b| {
        // Long enough that a heartbeat delayed by a busy machine still
        // comes in time (they are sent several times per claim_after).
        b.claim_after(Duration::from_millis(1500)).size(2)
    });
    farm.worker("a");
    farm.worker("b");
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, 1, tag, 0..4);
    wait_for("item 1 to start", || has(&STARTED, tag));
    // Three times claim_after; the other worker is idle all along.
    std::thread::sleep(Duration::from_millis(4500));
    release(tag);
    assert_eq!(finish(&mut plumber, &out), ints(0..4));
    assert_eq!(runs(tag, 1), 1, "the long batch ran once");
    assert_eq!(farm.pool.duplicates(), 0);
}

#[test]
fn a_host_whose_broker_goes_down_fails_the_items_in_flight() {
    let farm = Farm::new("down", |b| b.unreachable_after(Duration::from_millis(300)));
    let m = farm.numap(1);
    let (mut plumber, out) = start_work(&m, -1, "down", 0..3);
    wait_for("a task entry", || !farm.q.tasks().is_empty());
    farm.q.set_down(true);
    let items = finish(&mut plumber, &out);
    farm.q.set_down(false);
    assert_eq!(items.len(), 3);
    for r in &items {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
    }
}

fn settings(session: &str, claim_after: Duration) -> RunSettings {
    RunSettings {
        session: session.into(),
        max_attempts: 3,
        claim_after,
        done: false,
        lease: Duration::from_secs(60),
        key_check: String::new(),
    }
}

/// The same steps as the Redis test of that name, on the memory queue.
#[test]
fn a_reclaimed_entry_still_holds_its_job_and_a_copy_of_it_does_not() {
    let mut q = MemoryQueue::new();
    q.start_run(&settings("s", Duration::from_millis(10)))
        .unwrap();
    q.add_tasks("s", &[(1, b"x".to_vec()), (1, b"x".to_vec())])
        .unwrap();
    let read = q.read_tasks("a", 2, Duration::from_millis(100)).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(q.claim_job(&read[0], 1).unwrap(), Claim::Mine);
    // Worker a dies; b reclaims the entry: a redelivery runs again.
    q.advance(Duration::from_millis(50));
    let taken = q.reclaim("b", Duration::from_millis(10), 1).unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].id.as_str(), taken[0].deliveries),
        (read[0].id.as_str(), 2)
    );
    assert_eq!(q.claim_job(&taken[0], 1).unwrap(), Claim::Mine);
    // The second entry carries the same job: a replay, acknowledged.
    assert_eq!(q.claim_job(&read[1], 1).unwrap(), Claim::Replay);
    // So is an entry of another session, even for a job nobody holds.
    let mut old = read[1].clone();
    old.session = "an-earlier-session".into();
    assert_eq!(q.claim_job(&old, 2).unwrap(), Claim::Replay);
    assert_eq!(q.replays().unwrap(), 2);
    let ids: Vec<String> = q.pending().into_iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [read[0].id.clone()],
        "only the holder is still pending"
    );
    // A run that is gone writes nothing and runs nothing.
    q.lose_everything();
    assert_eq!(q.claim_job(&taken[0], 1).unwrap(), Claim::RunGone);
}

#[test]
fn a_heartbeat_touches_only_what_its_consumer_still_holds() {
    let mut q = MemoryQueue::new();
    q.start_run(&settings("s", CLAIM_AFTER)).unwrap();
    q.add_tasks("s", &[(0, b"x".to_vec())]).unwrap();
    let first = q.read_tasks("a", 1, Duration::ZERO).unwrap();
    q.advance(PAST_CLAIM);
    // a's heartbeat keeps its entry from being reclaimed.
    let id = first[0].id.clone();
    assert!(
        q.touch("a", std::slice::from_ref(&id)).unwrap().is_empty(),
        "a holds it"
    );
    assert!(q.reclaim("b", CLAIM_AFTER, 1).unwrap().is_empty());
    q.advance(PAST_CLAIM);
    let taken = q.reclaim("b", CLAIM_AFTER, 1).unwrap();
    assert_eq!(taken.len(), 1);
    // a's late heartbeat does not take it back, nor count a delivery; it
    // says a lost it.
    assert_eq!(
        q.touch("a", std::slice::from_ref(&id)).unwrap(),
        [id.as_str()]
    );
    let p = q.pending();
    assert_eq!((p[0].consumer.as_str(), p[0].deliveries), ("b", 2));
    // Nor does it keep b's hold fresh: only b's own heartbeat does.
    q.advance(PAST_CLAIM);
    q.touch("a", std::slice::from_ref(&id)).unwrap();
    assert_eq!(q.reclaim("c", CLAIM_AFTER, 1).unwrap().len(), 1);
    // An acknowledged entry is reclaimed by nobody.
    q.complete(&taken[0], b"r", Duration::ZERO).unwrap();
    q.advance(PAST_CLAIM);
    assert!(q.reclaim("d", Duration::ZERO, 10).unwrap().is_empty());
    assert!(q.pending().is_empty());
}

#[test]
fn a_worker_never_recreates_the_group_of_a_run_that_is_gone() {
    let mut q = MemoryQueue::new();
    q.add_tasks("s", &[(0, b"x".to_vec())]).unwrap();
    // No settings: nothing is read, nothing becomes pending.
    assert!(q
        .read_tasks("w", 1, Duration::from_millis(20))
        .unwrap()
        .is_empty());
    assert!(q.reclaim("w", Duration::ZERO, 1).unwrap().is_empty());
    assert!(q.pending().is_empty());
    // Once a host starts the run, its new entries are read.
    q.start_run(&settings("s", CLAIM_AFTER)).unwrap();
    q.add_tasks("s", &[(1, b"y".to_vec())]).unwrap();
    let got = q.read_tasks("w", 5, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job, Some(1));
}
