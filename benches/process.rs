//! Process pools: throughput of a trivial function at stride 1 and 1000, and
//! a CPU-bound function on 2 processes vs 2 threads, with Python's
//! `multiprocessing.Pool.imap` over the same functions in the same run
//! (`bench/mp_imap.py`, when `python3` exists). Last, the CPU-bound case
//! again in rounds that take turns (threads, then processes), printing the
//! median of the rounds' ratios: criterion times each case in its own block,
//! and on a shared machine two blocks may meet different speeds.
//!
//! Run: `cargo bench --bench process`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use papy::{worker, NuMap, Pool, ProcessPool, Worker, WorkerCommand};

/// The trivial function.
#[worker]
fn p_inc(x: i64) -> i64 {
    x + 1
}

/// The CPU-bound function of bench/mp_imap.py: `rounds` LCG steps.
#[worker]
fn p_burn(x: i64, rounds: i64) -> i64 {
    let mut acc = x as u64;
    for _ in 0..rounds {
        acc = std::hint::black_box(
            acc.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    (acc & 1) as i64
}

fn run(pool: &Arc<dyn Pool>, stride: usize, worker: &Worker, n: i64) -> usize {
    // 16 strides in flight (Python's imap queues every task at once; a
    // deeper buffer keeps both workers fed while results travel back:
    // 4 strides gave 6.5 M items/s at stride 1000, 16 gave 8.1 M, 64 no more).
    let m = NuMap::builder()
        .pool(pool.clone())
        .stride(stride)
        .buffer((stride * 16).max(4096))
        .build()
        .expect("numap");
    let t = m.add_task(worker.clone(), 0..n).expect("task");
    m.start().expect("start");
    m.results(t).expect("results").filter(Result::is_ok).count()
}

fn benches(c: &mut Criterion) {
    let procs: Arc<dyn Pool> = Arc::new(
        ProcessPool::new("bench", 2, WorkerCommand::current_exe().expect("exe"))
            .expect("process pool"),
    );
    let threads: Arc<dyn Pool> =
        Arc::new(papy::ThreadPool::new("bench-threads", 2).expect("threads"));
    let inc = Worker::new("p_inc").expect("registered");
    let mut g = c.benchmark_group("process_trivial");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    for (stride, n) in [(1usize, 20_000i64), (1000, 1_000_000)] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("2_processes", format!("stride_{stride}")),
            &stride,
            |b, &s| b.iter(|| run(&procs, s, &inc, n)),
        );
    }
    g.finish();
    let burn = Worker::with_args("p_burn", [20_000]).expect("registered");
    assert_eq!(run(&threads, 10, &burn, 200), 200, "every item succeeds");
    assert_eq!(run(&procs, 1000, &inc, 5000), 5000, "every item succeeds");
    let mut g = c.benchmark_group("cpu_burn20000_200");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(200));
    g.bench_function("2_processes_stride_10", |b| {
        b.iter(|| run(&procs, 10, &burn, 200))
    });
    g.bench_function("2_threads_stride_10", |b| {
        b.iter(|| run(&threads, 10, &burn, 200))
    });
    g.finish();
}

/// The CPU-bound case (200 items of 20 000 LCG rounds, stride 10) on 2
/// threads and on 2 processes, in `rounds` rounds that take turns; prints
/// the median times and the median of the rounds' ratios threads/processes
/// (1.0 = processes as fast as threads).
fn cpu_bound_in_turns(rounds: usize) {
    let procs: Arc<dyn Pool> = Arc::new(
        ProcessPool::new("turns", 2, WorkerCommand::current_exe().expect("exe"))
            .expect("process pool"),
    );
    let threads: Arc<dyn Pool> =
        Arc::new(papy::ThreadPool::new("turns-threads", 2).expect("threads"));
    let burn = Worker::with_args("p_burn", [20_000]).expect("registered");
    let timed = |pool: &Arc<dyn Pool>| {
        let start = Instant::now();
        assert_eq!(run(pool, 10, &burn, 200), 200, "every item succeeds");
        start.elapsed().as_secs_f64() * 1e3
    };
    // Warm both (the processes' start is not the subject).
    timed(&procs);
    timed(&threads);
    let (mut t, mut p, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = timed(&threads);
        let b = timed(&procs);
        t.push(a);
        p.push(b);
        r.push(a / b);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "CPU-bound (20 000 LCG rounds) x 200, stride 10, {rounds} rounds in turns: 2 threads {:.2} ms, 2 processes {:.2} ms, processes at {:.2}x threads' speed (median of the rounds' ratios)",
        median(t),
        median(p),
        median(r)
    );
}

fn python_baseline() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/mp_imap.py");
    match Command::new("python3").arg(script).arg("1000000").output() {
        Ok(o) if o.status.success() => {
            println!("Python multiprocessing.Pool(2).imap, same run:");
            print!("{}", String::from_utf8_lossy(&o.stdout));
        }
        Ok(o) => println!(
            "python baseline failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => println!("python3 not available ({e}); no Python baseline"),
    }
}

fn main() {
    papy::worker_main();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    python_baseline();
    cpu_bound_in_turns(60);
}
