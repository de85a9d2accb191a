//! Shared helpers for the integration tests: worker functions and pipeline builders.
#![allow(dead_code)]

use papy::{worker, Dagger, Item, NuMap, Piper, Plumber, Source, Value, Worker};
use std::time::Duration;

/// Adds `n`.
#[worker]
pub(crate) fn t_add(x: i64, n: i64) -> i64 {
    x + n
}

/// Multiplies by `n`.
#[worker]
pub(crate) fn t_mul(x: i64, n: i64) -> i64 {
    x * n
}

/// Splits x into [x, -x].
#[worker]
pub(crate) fn t_pair(x: i64) -> Vec<i64> {
    vec![x, -x]
}

/// Sums a consumed batch.
#[worker]
pub(crate) fn t_sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

/// Joins two inputs: a * 1000 + b.
#[worker]
pub(crate) fn t_join((a, b): (i64, i64)) -> i64 {
    a * 1000 + b
}

/// Fails on multiples of `k`.
#[worker]
pub(crate) fn t_fail_on(x: i64, k: i64) -> Result<i64, String> {
    if x % k == 0 {
        Err(format!("{x} is a multiple of {k}"))
    } else {
        Ok(x)
    }
}

/// Panics on `k`.
#[worker]
pub(crate) fn t_panic_on(x: i64, k: i64) -> i64 {
    if x == k {
        panic!("deliberate panic on {x}");
    }
    x
}

/// Sleeps `ms` milliseconds on `k`.
#[worker]
pub(crate) fn t_sleep_on(x: i64, k: i64, ms: u64) -> i64 {
    if x == k {
        std::thread::sleep(Duration::from_millis(ms));
    }
    x
}

/// Which settings a pipeline runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resources {
    /// `None` = every node linear.
    pub workers: Option<usize>,
    /// NuMap stride.
    pub stride: usize,
    /// Optional explicit buffer.
    pub buffer: Option<usize>,
}

pub(crate) fn numap(r: Resources, name: &str) -> Option<NuMap> {
    let w = r.workers?;
    let mut b = NuMap::builder().name(name).workers(w).stride(r.stride);
    if let Some(buf) = r.buffer {
        b = b.buffer(buf);
    }
    Some(b.build().expect("valid numap"))
}

pub(crate) fn piper(name: &str, worker: Worker, m: &Option<NuMap>) -> Piper {
    match m {
        Some(m) => Piper::new(name, worker).parallel(m),
        None => Piper::new(name, worker),
    }
}

/// Fork / produce / spawn / consume / join:
/// src(+1) -> pair(produce 2, spawn 2) -> sum(consume 2) -> join
///         -> mul(x3)                                     -> join
pub(crate) fn fork_join(r: Resources) -> Dagger {
    let m = numap(r, "fj");
    fork_join_on(&m, &m)
}

/// The fork/join pipeline with its left branch on `m` and the rest on `n`.
pub(crate) fn fork_join_on(n: &Option<NuMap>, m: &Option<NuMap>) -> Dagger {
    let m = m.clone();
    let mut d = Dagger::new();
    d.add_piper(piper("src", Worker::with_args("t_add", [1]).unwrap(), &m))
        .unwrap();
    d.add_piper(
        piper("pair", Worker::new("t_pair").unwrap(), &m)
            .produce(2)
            .spawn(2),
    )
    .unwrap();
    d.add_piper(piper("sum", Worker::new("t_sum").unwrap(), &m).consume(2))
        .unwrap();
    d.add_piper(piper("mul", Worker::with_args("t_mul", [3]).unwrap(), n))
        .unwrap();
    d.add_piper(piper("join", Worker::new("t_join").unwrap(), n))
        .unwrap();
    d.add_pipe(["src", "pair", "sum", "join"]).unwrap();
    d.add_pipe(["src", "mul", "join"]).unwrap();
    d
}

/// Runs a dagger to the end with one input and returns each output node's items.
pub(crate) fn run_all(d: Dagger, input: Vec<Item>) -> Vec<(String, Vec<Item>)> {
    let outputs: Vec<String> = d.outputs().iter().map(|p| p.name().to_string()).collect();
    let inputs: Vec<String> = d.inputs().iter().map(|p| p.name().to_string()).collect();
    let mut p = Plumber::new(d);
    let cols: Vec<_> = outputs.iter().map(|o| p.collect(o).unwrap()).collect();
    let sources = inputs
        .iter()
        .map(|n| (n.clone(), Source::items(input.clone())))
        .collect::<Vec<_>>();
    p.start(sources).unwrap();
    p.run().unwrap();
    assert!(
        p.wait(Some(Duration::from_secs(120))).unwrap(),
        "pipeline did not finish"
    );
    outputs
        .into_iter()
        .zip(cols.iter().map(|c| c.take()))
        .collect()
}

pub(crate) fn ints(v: impl IntoIterator<Item = i64>) -> Vec<Item> {
    v.into_iter().map(|x| Ok(Value::Int(x))).collect()
}

/// On item `k`, writes this process's id to `path`, then sleeps `ms`.
#[worker]
pub(crate) fn t_report_pid_on(x: i64, k: i64, path: String, ms: u64) -> i64 {
    if x == k {
        let _ = std::fs::write(&path, std::process::id().to_string());
        std::thread::sleep(Duration::from_millis(ms));
    }
    x
}

/// Aborts the process on item `k`.
#[worker]
pub(crate) fn t_abort_on(x: i64, k: i64) -> i64 {
    if x == k {
        std::process::abort();
    }
    x
}

/// Aborts the process on item `k` the first time only (a marker file remembers).
#[worker]
pub(crate) fn t_abort_once_on(x: i64, k: i64, marker: String) -> i64 {
    if x == k
        && std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .is_ok()
    {
        std::process::abort();
    }
    x
}

/// Prints to stdout (which carries the protocol in a worker process) and returns x.
#[worker]
pub(crate) fn t_chatty(x: i64) -> i64 {
    println!("chatty says {x}");
    x
}
