//! What the memory-queue tests share: a host pool and in-process workers
//! on one [`MemoryQueue`], and a worker function that records its runs and
//! waits, on a chosen item, until the test releases it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use papy::{Dagger, Item, NuMap, Piper, Plumber, Source, Value, Worker};
use papy_broker::seal::{Role, Sealer};
use papy_broker::{
    BrokerPool, BrokerPoolBuilder, Connect, Entry, MemoryQueue, Queue, ServeOptions,
};
use papy_core::protocol::Frame;
use papy_core::Pool;

pub(crate) const KEY: &str = "memory-queue-key-0123456789";
/// Long enough that nothing is reclaimed unless the test moves the clock.
pub(crate) const CLAIM_AFTER: Duration = Duration::from_secs(30);
/// Moves every entry past `CLAIM_AFTER`.
pub(crate) const PAST_CLAIM: Duration = Duration::from_secs(31);

static RUNS: Mutex<Vec<(String, i64)>> = Mutex::new(Vec::new());
pub(crate) static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static RELEASED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub(crate) fn has(list: &Mutex<Vec<String>>, tag: &str) -> bool {
    list.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|t| t == tag)
}

/// Records that it ran on `x` (under `tag`); on item `k`, says it started
/// and waits until the test releases `tag`.
#[papy::worker]
pub(crate) fn m_work(x: i64, k: i64, tag: String) -> i64 {
    RUNS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((tag.clone(), x));
    if x == k {
        STARTED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tag.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !has(&RELEASED, &tag) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    x
}

/// How many times `m_work` ran on `x` under `tag`.
pub(crate) fn runs(tag: &str, x: i64) -> usize {
    RUNS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(t, y)| t == tag && *y == x)
        .count()
}

pub(crate) fn release(tag: &str) {
    RELEASED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(tag.into());
}

pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A host pool and in-process workers on one memory queue.
pub(crate) struct Farm {
    pub(crate) q: MemoryQueue,
    pub(crate) pool: Arc<BrokerPool>,
    workers: Vec<JoinHandle<papy_broker::Result<()>>>,
    links: Vec<MemoryQueue>,
}

impl Farm {
    pub(crate) fn new(run: &str, f: impl FnOnce(BrokerPoolBuilder) -> BrokerPoolBuilder) -> Farm {
        let q = MemoryQueue::new();
        let b = BrokerPool::builder(run, "memory:")
            .key(KEY)
            .claim_after(CLAIM_AFTER)
            .keep_for(Duration::from_secs(60));
        let pool = Arc::new(f(b).build_on(Arc::new(q.clone())).unwrap());
        Farm {
            q,
            pool,
            workers: Vec::new(),
            links: Vec::new(),
        }
    }

    /// Starts a worker named `name` on its own link (returned: cut it to
    /// cut the worker off).
    pub(crate) fn worker(&mut self, name: &str) -> MemoryQueue {
        self.worker_reading_ahead(name, papy_broker::READ_AHEAD)
    }

    /// As [`worker`](Self::worker), holding at most `read_ahead` entries.
    pub(crate) fn worker_reading_ahead(&mut self, name: &str, read_ahead: usize) -> MemoryQueue {
        let link = self.q.link();
        let mut opts = ServeOptions::new(self.pool.run_id());
        opts.read_ahead = read_ahead;
        opts.consumer = Some(name.into());
        opts.until_done = true;
        opts.key = Some(KEY.into());
        opts.max_backoff = Duration::from_millis(50);
        let connect: Arc<dyn Connect> = Arc::new(link.clone());
        self.workers.push(std::thread::spawn(move || {
            papy_broker::serve_on(connect, &opts)
        }));
        self.links.push(link.clone());
        link
    }

    pub(crate) fn numap(&self, stride: usize) -> NuMap {
        NuMap::builder()
            .pool(self.pool.clone())
            .stride(stride)
            .build()
            .unwrap()
    }

    pub(crate) fn session(&self) -> String {
        self.q.clone().settings().unwrap().unwrap().session
    }

    pub(crate) fn sealer(&self) -> Sealer {
        Sealer::new(KEY, self.pool.run_id()).unwrap()
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.pool.shutdown();
        for l in &self.links {
            l.cut(false);
        }
        for w in self.workers.drain(..) {
            let r = w.join();
            if !std::thread::panicking() {
                assert!(matches!(r, Ok(Ok(()))), "a worker failed: {r:?}");
            }
        }
    }
}

/// `m_work` under `tag`, waiting on item `k`, on `m`, started on `input`.
pub(crate) fn start_work(
    m: &NuMap,
    k: i64,
    tag: &str,
    input: std::ops::Range<i64>,
) -> (Plumber, papy_core::Collector) {
    let w = Worker::with_args("m_work", [Value::Int(k), Value::from(tag)]).unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("work", w).parallel(m)).unwrap();
    let mut plumber = Plumber::new(d);
    let out = plumber.collect("work").unwrap();
    plumber.start([("work", Source::values(input))]).unwrap();
    plumber.run().unwrap();
    (plumber, out)
}

pub(crate) fn finish(plumber: &mut Plumber, out: &papy_core::Collector) -> Vec<Item> {
    assert!(plumber.wait(Some(Duration::from_secs(60))).unwrap());
    out.take()
}

/// A task entry opened and decoded.
pub(crate) fn open_task(sealer: &Sealer, e: &Entry) -> Frame {
    let payload = sealer.open(Role::Task, &e.session, &e.payload).unwrap();
    papy_broker::codec::decode(&e.id, payload).unwrap()
}

/// Reads task entries as `consumer` until at least one comes.
pub(crate) fn take_some(q: &MemoryQueue, consumer: &str, count: usize) -> Vec<Entry> {
    let mut q = q.clone();
    let mut got = Vec::new();
    wait_for("a task entry", || {
        got = q
            .read_tasks(consumer, count, Duration::from_millis(50))
            .unwrap();
        !got.is_empty()
    });
    got
}
