//! Unit tests of the proxy with a fake worker (no process): poison
//! isolation by halves, retries, at-most-once, recycling and which jobs
//! share a frame, as tables of runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::link::{Failure, Link, StartError};
use super::proxy::Proxy;
use super::*;
use crate::error::{ErrorKind, Item};
use crate::job::batch::Wire;
use crate::job::{Inbox, TaskCtx, WorkerTask};
use crate::protocol::{read_frame, write_frame_with, Frame, WireInboxes, MAX_FRAME};
use crate::value::Value;
use crate::worker::Worker;

/// What the fake workers of one run did: the frames each ran (by pid, as
/// the values they held) and how many were started.
#[derive(Default)]
struct Log {
    frames: Vec<(u32, Vec<i64>)>,
    starts: u32,
    /// Frames not answered yet when each frame was sent.
    ahead: Vec<usize>,
}

/// A worker that answers `10 * x` for each item `x`, and dies on a frame
/// holding one of the `poison` items (the frames sent after it are lost).
struct Fake {
    pid: u32,
    poison: Vec<i64>,
    log: Arc<Mutex<Log>>,
    answers: VecDeque<(u64, Option<Vec<Item>>)>,
    dead: bool,
}

/// The values a wire carries, read back as a worker reads its frame.
fn values_of(wire: &Wire<'_>) -> Vec<i64> {
    let mut bytes = Vec::new();
    write_frame_with(&mut bytes, &mut Vec::new(), &wire.frame(0, &[], "n")).unwrap();
    match read_frame(&mut bytes.as_slice(), MAX_FRAME).unwrap() {
        Frame::Task {
            inboxes: WireInboxes::Single(v),
            ..
        } => v.iter().map(|v| v.as_int().unwrap()).collect(),
        other => panic!("a task of single values expected, got {other:?}"),
    }
}

impl Link for Fake {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn functions(&self) -> &[String] {
        &[]
    }
    fn send(
        &mut self,
        _: &Job,
        wire: &Wire<'_>,
        id: u64,
        _: Option<Instant>,
    ) -> Result<(), Failure> {
        if self.dead {
            self.answers.push_back((id, None));
            return Ok(());
        }
        let values = values_of(wire);
        let mut log = self.log.lock().unwrap();
        log.frames.push((self.pid, values.clone()));
        log.ahead.push(self.answers.len());
        drop(log);
        self.dead = values.iter().any(|v| self.poison.contains(v));
        let answer = (!self.dead).then(|| values.iter().map(|v| Ok(Value::Int(v * 10))).collect());
        self.answers.push_back((id, answer));
        Ok(())
    }
    fn receive(&mut self, id: u64, n: usize, _: Option<Duration>) -> Result<Vec<Item>, Failure> {
        match self.answers.pop_front() {
            Some((aid, Some(items))) if aid == id && items.len() == n => Ok(items),
            _ => Err(Failure::Died("worker process died: signal 9".into())),
        }
    }
    fn exited(&mut self) -> bool {
        false
    }
    fn kill(&mut self) -> String {
        "signal 9".into()
    }
    fn reap(&mut self) -> String {
        "signal 9".into()
    }
    fn shutdown(self) {}
}

/// How a run is set up.
#[derive(Clone, Default)]
struct Setup {
    /// Items per job, in order (item values are their indices).
    jobs: Vec<usize>,
    poison: Vec<i64>,
    retries: u32,
    once: bool,
    recycle_after: Option<u64>,
    /// The task's measured time per item before the run (`None`: unknown).
    pace: Option<Duration>,
    /// What the chain took per item in an earlier run of the pool.
    recent: Option<Duration>,
    /// Workers the pool has (one proxy runs, as its slot 0); 0 means 1.
    workers: usize,
    /// Of the other workers, how many are idle throughout.
    idle: usize,
}

/// What a run gave: every item's result by index, the frames, and the
/// pool's counters (started, died, recycled).
struct Outcome {
    results: BTreeMap<u64, Item>,
    frames: Vec<(u32, Vec<i64>)>,
    /// Frames not answered yet when each frame was sent.
    ahead: Vec<usize>,
    counts: (usize, usize, usize),
}

fn run(s: &Setup) -> Outcome {
    let f = WorkerTask::new(Worker::typed("fake", |x: i64| x), "node");
    let mut ctx = TaskCtx::new(0, Arc::new(f), None, None, false);
    (ctx.retries, ctx.once) = (s.retries, s.once);
    if let Some(t) = s.pace {
        ctx.pace.record(1, t);
    }
    let ctx = Arc::new(ctx);
    let sh = Shared::new("fake", "process", s.workers.max(1));
    if let Some(t) = s.recent {
        lock(&sh.recent).insert("fake".into(), t);
    }
    sh.idle.store(s.idle, Ordering::SeqCst);
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut first = 0;
    for &n in &s.jobs {
        let inboxes = (first..first + n as i64).map(|i| Inbox::One(Ok(Value::Int(i))));
        tx.send(Job::new(ctx.clone(), first as u64, inboxes.collect()))
            .unwrap();
        first += n as i64;
    }
    drop(tx);
    let cmd = WorkerCommand::new("fake", Vec::<String>::new()).recycle(Recycle {
        after_items: s.recycle_after,
        above_rss: None,
    });
    let log = Arc::new(Mutex::new(Log::default()));
    let start = || -> Result<Fake, StartError> {
        let mut l = log.lock().unwrap();
        l.starts += 1;
        Ok(Fake {
            pid: l.starts,
            poison: s.poison.clone(),
            log: log.clone(),
            answers: VecDeque::new(),
            dead: false,
        })
    };
    Proxy::new(0, &cmd, &start, &rx, &sh).run();
    ctx.queue.close();
    let mut results = BTreeMap::new();
    while let crate::job::Take::Batch(first, items) = ctx.queue.take(Some(Duration::ZERO)) {
        for (k, item) in items.into_iter().enumerate() {
            assert!(
                results.insert(first + k as u64, item).is_none(),
                "delivered twice"
            );
        }
    }
    let count = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed);
    let frames = std::mem::take(&mut log.lock().unwrap().frames);
    let ahead = std::mem::take(&mut log.lock().unwrap().ahead);
    assert_eq!(count(&sh.started) as u32, log.lock().unwrap().starts);
    Outcome {
        results,
        frames,
        ahead,
        counts: (count(&sh.started), count(&sh.died), count(&sh.recycled)),
    }
}

/// The items that failed, by index, and every other item's value checked.
fn failed(o: &Outcome, items: u64) -> Vec<u64> {
    assert_eq!(o.results.len() as u64, items, "every item delivered once");
    let mut bad = Vec::new();
    for (&i, r) in &o.results {
        match r {
            Ok(v) => assert_eq!(v, &Value::Int(i as i64 * 10)),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::WorkerDied);
                assert_eq!(e.index(), Some(i), "the error names its item");
                bad.push(i);
            }
        }
    }
    bad
}

fn values(frames: &[(u32, Vec<i64>)]) -> Vec<Vec<i64>> {
    frames.iter().map(|(_, v)| v.clone()).collect()
}

/// The items of each frame run, in order.
type Frames = &'static [&'static [i64]];

/// Slow enough that no two jobs share a frame and nothing is pipelined.
const SLOW: Option<Duration> = Some(Duration::from_secs(1));

#[test]
fn poison_items_are_isolated_by_halves_and_charged_alone() {
    // (poison, retries, failed items, frames run, workers started, died)
    type Row = (&'static [i64], u32, &'static [u64], Frames, usize, usize);
    let table: &[Row] = &[
        (&[], 0, &[], &[&[0, 1, 2, 3, 4, 5, 6, 7]], 1, 0),
        (
            &[5],
            0,
            &[5],
            &[
                &[0, 1, 2, 3, 4, 5, 6, 7],
                &[0, 1, 2, 3],
                &[4, 5, 6, 7],
                &[4, 5],
                &[4],
                &[5],
                &[6, 7],
            ],
            5,
            4,
        ),
        (
            &[5],
            2,
            &[5],
            &[
                &[0, 1, 2, 3, 4, 5, 6, 7],
                &[0, 1, 2, 3],
                &[4, 5, 6, 7],
                &[4, 5],
                &[4],
                &[5],
                &[5],
                &[5],
                &[6, 7],
            ],
            7,
            6,
        ),
        (
            &[0, 7],
            0,
            &[0, 7],
            &[
                &[0, 1, 2, 3, 4, 5, 6, 7],
                &[0, 1, 2, 3],
                &[0, 1],
                &[0],
                &[1],
                &[2, 3],
                &[4, 5, 6, 7],
                &[4, 5],
                &[6, 7],
                &[6],
                &[7],
            ],
            7,
            7,
        ),
    ];
    for (poison, retries, bad, frames, started, died) in table {
        let o = run(&Setup {
            jobs: vec![8],
            poison: poison.to_vec(),
            retries: *retries,
            pace: SLOW,
            ..Setup::default()
        });
        let case = format!("poison {poison:?}, retries {retries}");
        assert_eq!(failed(&o, 8), *bad, "{case}");
        assert_eq!(values(&o.frames), *frames, "{case}");
        assert_eq!((o.counts.0, o.counts.1), (*started, *died), "{case}");
    }
}

#[test]
fn jobs_merged_for_speed_run_again_one_by_one_when_their_worker_dies() {
    // Known fast: the three jobs go as one frame; item 3 kills it.
    let o = run(&Setup {
        jobs: vec![2, 2, 2],
        poison: vec![3],
        pace: Some(Duration::from_nanos(1)),
        ..Setup::default()
    });
    assert_eq!(failed(&o, 6), [3]);
    let want: &[&[i64]] = &[&[0, 1, 2, 3, 4, 5], &[0, 1], &[2, 3], &[2], &[3], &[4, 5]];
    assert_eq!(values(&o.frames), want);
}

#[test]
fn an_item_run_at_most_once_fails_with_its_whole_frame() {
    let o = run(&Setup {
        jobs: vec![4, 2],
        poison: vec![1],
        once: true,
        pace: SLOW,
        ..Setup::default()
    });
    assert_eq!(failed(&o, 6), [0, 1, 2, 3]);
    let e = o.results[&0].as_ref().unwrap_err();
    assert!(e.message().contains("at most once"), "{}", e.message());
    // The next job runs on a new worker.
    assert_eq!(o.frames, [(1, vec![0, 1, 2, 3]), (2, vec![4, 5])]);
}

#[test]
fn a_worker_is_recycled_once_it_served_its_share_and_nothing_is_lost() {
    // (items per job, recycle after, the worker of each frame, recycled)
    let table: &[(&[usize], u64, &[u32], usize)] = &[
        (&[3, 3, 3], 4, &[1, 1, 2], 1),
        (&[2, 2, 2, 2], 2, &[1, 2, 3, 4], 3),
        (&[5, 1], 10, &[1, 1], 0),
    ];
    for (jobs, after, pids, recycled) in table {
        let o = run(&Setup {
            jobs: jobs.to_vec(),
            recycle_after: Some(*after),
            pace: SLOW,
            ..Setup::default()
        });
        let items = jobs.iter().sum::<usize>() as u64;
        assert!(failed(&o, items).is_empty());
        let got: Vec<u32> = o.frames.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            (got.as_slice(), o.counts.2),
            (*pids, *recycled),
            "jobs {jobs:?}, after {after}"
        );
    }
}

/// Issue 28: a task whose pace is not measured yet is never merged, even
/// when its chain ran fast here before (another run's pace is no guide):
/// the first item's result must not wait for the items queued behind it.
#[test]
fn jobs_of_an_unmeasured_task_are_not_merged_whatever_the_chain_took_before() {
    let o = run(&Setup {
        jobs: vec![1, 1, 1, 1],
        recent: Some(Duration::from_nanos(1)),
        ..Setup::default()
    });
    assert!(failed(&o, 4).is_empty());
    assert_eq!(o.frames[0].1, [0], "the first job travels alone");
}

/// A worker whose frame is in flight does not take, frame after pipelined
/// frame, the jobs another worker of the pool would start: its merges stop
/// at its share of the jobs it sees (in flight here included), and it
/// pipelines no job while it holds its share: 12 jobs for 2 workers, 6
/// here, so the 7th waits for a free worker. The CPU-bound bench sent 16
/// of 20 jobs to one of 2 workers before; then 11 (a job pipelined
/// behind the share of 9 it held).
#[test]
fn a_worker_ahead_merges_no_more_than_its_share_of_the_queue() {
    let o = run(&Setup {
        jobs: vec![1; 12],
        pace: Some(Duration::from_nanos(1)),
        workers: 2,
        ..Setup::default()
    });
    assert!(failed(&o, 12).is_empty());
    let want: &[&[i64]] = &[&[0, 1, 2, 3, 4, 5], &[6, 7, 8], &[9, 10], &[11]];
    assert_eq!(values(&o.frames), want);
    assert_eq!(o.ahead, [0, 0, 0, 0], "nothing pipelined beyond the share");
}

/// A busy worker pipelines a queued job while another worker is idle only
/// when the queue holds one for the idle worker besides: the bench's runs
/// started with one worker's second frame sent only after its first result.
#[test]
fn a_busy_worker_pipelines_the_jobs_beyond_one_for_each_idle_worker() {
    let o = run(&Setup {
        jobs: vec![1; 4],
        recent: Some(Duration::from_nanos(1)),
        workers: 2,
        idle: 1,
        ..Setup::default()
    });
    assert!(failed(&o, 4).is_empty());
    // Job 1 is sent behind job 0 (3 queued, 1 idle worker), job 2 behind
    // job 1; job 3 is the idle worker's, so it waits for a free worker.
    assert_eq!(o.ahead, [0, 1, 1, 0]);
}

/// A remote pool's saved settings keep its recycling, as a process pool's do.
#[test]
fn a_remote_pool_saves_its_recycling() {
    use crate::pool::Pool;
    let cmd = WorkerCommand::shell("exec true").recycle(Recycle {
        after_items: Some(7),
        above_rss: Some(300 << 20),
    });
    let pool = ProcessPool::remote("far", vec![(cmd, 1)]).unwrap();
    let settings = pool.settings().unwrap();
    let map = settings.as_map().unwrap();
    assert_eq!(map.get(&Value::from("recycle_after")), Some(&Value::Int(7)));
    assert_eq!(
        map.get(&Value::from("recycle_above_mb")),
        Some(&Value::Int(300))
    );
}
