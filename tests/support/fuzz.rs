//! Schedule fuzzing harness, shared by `tests/schedule_fuzz.rs` (a few
//! hundred cases in CI) and `examples/soak.rs` (thousands).
//!
//! A case is a random DAG (joins, produce, consume, spawn, chained nodes on
//! shared NuMaps) on random resources (thread, process and mixed pools,
//! strides, buffers) run with random delays at every hand-off of the engine
//! (`papy::chaos`). The property: every output node gives exactly the items
//! of the same DAG evaluated linearly (one output or error per input item,
//! in input order), and the run ends.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use papy::pool::MixedPool;
use papy::{
    worker, Dagger, ErrorKind, Item, NuMap, Piper, Plumber, Pool, ProcessPool, Source, ThreadPool,
    Value, Worker, WorkerCommand,
};

/// Sums every int of the inbox (lists summed) and adds `k`; fails when the
/// sum is a multiple of 13.
#[worker]
fn fz_sum(inbox: &[Value], k: i64) -> Result<i64, String> {
    fn total(v: &Value) -> i64 {
        match v {
            Value::Int(i) => *i,
            Value::List(l) => l.iter().map(total).sum(),
            _ => 0,
        }
    }
    let s: i64 = inbox.iter().map(total).sum::<i64>() + k;
    if s % 13 == 0 {
        Err(format!("{s} is unlucky"))
    } else {
        Ok(s)
    }
}

/// Splits the inbox's sum `s` into `[s, s + k]` (for produce = 2).
#[worker]
fn fz_split(inbox: &[Value], k: i64) -> Vec<i64> {
    let s: i64 = inbox.iter().filter_map(Value::as_int).sum();
    vec![s, s + k]
}

/// A small deterministic generator (xorshift64*), so a case is its seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// In `lo..hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Thread,
    Process,
    Mixed,
}

#[derive(Debug, Clone)]
struct NuMapSpec {
    kind: Kind,
    workers: usize,
    /// `None`: adaptive batching (the default).
    stride: Option<usize>,
    buffer: Option<usize>,
}

#[derive(Debug, Clone)]
struct NodeSpec {
    ups: Vec<usize>,
    numap: Option<usize>,
    spawn: usize,
    produce: bool,
    consume: usize,
}

/// One generated case.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub seed: u64,
    numaps: Vec<NuMapSpec>,
    nodes: Vec<NodeSpec>,
    items: i64,
}

impl Case {
    /// The case of `seed`; `processes` allows process and mixed pools.
    pub(crate) fn generate(seed: u64, processes: bool) -> Case {
        let mut r = Rng::new(seed);
        let numaps = (0..r.range(1, 4))
            .map(|_| {
                let kind = match (processes, r.range(0, 4)) {
                    (true, 0) => Kind::Process,
                    (true, 1) => Kind::Mixed,
                    _ => Kind::Thread,
                };
                // Two cases in five use the default (adaptive) batching.
                let stride = (!r.chance(40)).then(|| r.range(1, 6));
                let buffer = r.chance(30).then(|| stride.unwrap_or(1) * r.range(1, 4));
                NuMapSpec {
                    kind,
                    workers: r.range(1, 4),
                    stride,
                    buffer,
                }
            })
            .collect::<Vec<_>>();
        let n = r.range(1, 7);
        let nodes = (0..n)
            .map(|i| {
                let ups = if i == 0 {
                    Vec::new()
                } else {
                    let mut u = vec![r.range(0, i)];
                    if i >= 2 && r.chance(30) {
                        let v = r.range(0, i);
                        if v != u[0] {
                            u.push(v);
                            u.sort_unstable();
                        }
                    }
                    u
                };
                NodeSpec {
                    ups,
                    numap: r.chance(75).then(|| r.range(0, numaps.len())),
                    spawn: if r.chance(25) { 2 } else { 1 },
                    produce: r.chance(15),
                    consume: if r.chance(15) { 2 } else { 1 },
                }
            })
            .collect();
        Case {
            seed,
            numaps,
            nodes,
            items: r.range(0, 60) as i64,
        }
    }
}

/// The one process pool all cases share (workers are this binary).
fn shared_processes() -> Arc<dyn Pool> {
    static POOL: OnceLock<Arc<dyn Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cmd = WorkerCommand::current_exe().expect("this executable");
        Arc::new(ProcessPool::new("fuzz-procs", 2, cmd).expect("a process pool"))
    })
    .clone()
}

fn build_numap(spec: &NuMapSpec, name: String) -> NuMap {
    let mut b = NuMap::builder().name(name.clone());
    if let Some(s) = spec.stride {
        b = b.stride(s);
    }
    if let Some(buf) = spec.buffer {
        b = b.buffer(buf);
    }
    b = match spec.kind {
        Kind::Thread => b.workers(spec.workers),
        Kind::Process => b.pool(shared_processes()),
        Kind::Mixed => {
            let threads: Arc<dyn Pool> =
                Arc::new(ThreadPool::new(&name, spec.workers).expect("threads"));
            let mixed = MixedPool::new(vec![threads, shared_processes()]).expect("mixed");
            b.pool(Arc::new(mixed))
        }
    };
    b.build().expect("a valid NuMap")
}

fn dagger(case: &Case, numaps: Option<&[NuMap]>) -> Dagger {
    let mut d = Dagger::new();
    for (i, n) in case.nodes.iter().enumerate() {
        let w = if n.produce {
            Worker::with_args("fz_split", [i as i64]).expect("registered")
        } else {
            Worker::with_args("fz_sum", [i as i64]).expect("registered")
        };
        let mut p = Piper::new(format!("n{i}"), w);
        if n.produce {
            p = p.produce(2);
        }
        if n.consume > 1 {
            p = p.consume(n.consume);
        }
        if let (Some(numaps), Some(j)) = (numaps, n.numap) {
            p = p.parallel(&numaps[j]).spawn(n.spawn);
        }
        d.add_piper(p).expect("piper");
    }
    for (i, n) in case.nodes.iter().enumerate() {
        for u in &n.ups {
            d.add_pipe([format!("n{u}"), format!("n{i}")])
                .expect("pipe");
        }
    }
    d
}

/// An item as compared: its value, or its error's kind and index.
type Seen = Result<Value, (ErrorKind, Option<u64>)>;

fn seen(i: Item) -> Seen {
    i.map_err(|e| (e.kind(), e.index()))
}

fn run(d: Dagger, items: i64) -> Result<Vec<(String, Vec<Seen>)>, String> {
    let outputs: Vec<String> = d.outputs().iter().map(|p| p.name().to_string()).collect();
    let mut p = Plumber::new(d);
    let cols: Vec<_> = outputs
        .iter()
        .map(|o| p.collect(o).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    p.start([("n0", Source::values(0..items))])
        .map_err(|e| e.to_string())?;
    p.run().map_err(|e| e.to_string())?;
    let finished = p
        .wait(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    if !finished {
        return Err("the run did not finish within 120 s (a hang)".into());
    }
    Ok(outputs
        .into_iter()
        .zip(
            cols.iter()
                .map(|c| c.take().into_iter().map(seen).collect()),
        )
        .collect())
}

/// Runs `case` linearly and on its resources under chaos; `Err` describes
/// the first difference.
pub(crate) fn check(case: &Case) -> Result<(), String> {
    papy::chaos::disable();
    let want = run(dagger(case, None), case.items)?;
    papy::chaos::enable(case.seed, Duration::from_micros(300));
    let numaps: Vec<NuMap> = case
        .numaps
        .iter()
        .enumerate()
        .map(|(j, s)| build_numap(s, format!("fz{}_{j}", case.seed)))
        .collect();
    let got = run(dagger(case, Some(&numaps)), case.items);
    papy::chaos::disable();
    let got = got?;
    for ((node, w), (_, g)) in want.iter().zip(&got) {
        if w.len() != g.len() {
            return Err(format!(
                "node {node}: {} items, expected {} (linear run)",
                g.len(),
                w.len()
            ));
        }
        if let Some(k) = (0..w.len()).find(|&k| w[k] != g[k]) {
            return Err(format!(
                "node {node}, item {k}: {:?}, expected {:?}",
                g[k], w[k]
            ));
        }
    }
    Ok(())
}

/// Checks the cases `first..first + n`; panics with every failing case.
pub(crate) fn check_many(first: u64, n: u64, processes: bool) {
    let mut failures = Vec::new();
    for seed in first..first + n {
        let case = Case::generate(seed, processes);
        if let Err(e) = check(&case) {
            failures.push(format!("seed {seed}: {e}\n  case: {case:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
