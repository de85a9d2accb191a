//! Broker pool throughput: a trivial function at stride 1 and 1000 on 2
//! local broker workers (Redis on a Unix socket), against a process pool
//! of 2 workers in the same run. Prints the median of several runs in
//! items/s and the broker/process ratio.
//!
//! Run: `cargo bench -p papy-broker --bench broker` (needs `redis-server`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use papy::{worker, NuMap, Pool, ProcessPool, Worker, WorkerCommand};
use papy_broker::BrokerPool;

/// The trivial function.
#[worker]
fn b_inc(x: i64) -> i64 {
    x + 1
}

/// Items/s of one run of `n` items.
fn run(pool: &Arc<dyn Pool>, stride: usize, worker: &Worker, n: i64) -> f64 {
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(stride)
        .buffer((stride * 4).max(4096))
        .build()
        .expect("numap");
    let start = Instant::now();
    let t = m.add_task(worker.clone(), 0..n).expect("task");
    m.start().expect("start");
    let ok = m.results(t).expect("results").filter(Result::is_ok).count();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok as i64, n, "every item succeeds");
    n as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    papy::worker_main();
    papy_broker::worker_main();
    // `cargo test --benches` runs this binary too: a single quick round then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { 5 };
    let server = support::RedisServer::start();
    let exe = WorkerCommand::current_exe().expect("exe");
    let broker: Arc<dyn Pool> = Arc::new(
        BrokerPool::builder("bench", &server.url())
            .local_workers(2, exe.clone())
            .keep_for(Duration::from_secs(10))
            .build()
            .expect("broker pool"),
    );
    let procs: Arc<dyn Pool> = Arc::new(ProcessPool::new("bench", 2, exe).expect("process pool"));
    let inc = Worker::new("b_inc").expect("registered");
    let scale = if quick { 10 } else { 1 };
    println!("trivial function, 2 workers, median of {rounds} runs (items/s):");
    println!(
        "{:>8} {:>10} {:>14} {:>14} {:>8}",
        "stride", "items", "broker", "process", "ratio"
    );
    for (stride, n) in [(1usize, 20_000i64 / scale), (1000, 400_000 / scale)] {
        // Warm up: workers started, chains built.
        run(&broker, stride, &inc, 100);
        run(&procs, stride, &inc, 100);
        let b = median((0..rounds).map(|_| run(&broker, stride, &inc, n)).collect());
        let p = median((0..rounds).map(|_| run(&procs, stride, &inc, n)).collect());
        println!("{stride:>8} {n:>10} {b:>14.0} {p:>14.0} {:>8.2}", b / p);
    }
    broker.shutdown();
    procs.shutdown();
}
