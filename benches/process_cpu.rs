//! Where a process pool's CPU goes: the trivial function on 2 worker
//! processes at stride 1000 over 1 M items, run `ROUNDS` times. Prints the
//! median throughput and the CPU time per item spent in the host (feeder,
//! proxies, readers, consumer) and in the worker processes, from
//! `getrusage`, next to a sequential baseline measured in the same run.
//!
//! Run: `cargo bench --bench process_cpu` (`-- N S` for another item count
//! and a buffer of S strides instead of 16).

use std::sync::Arc;
use std::time::{Duration, Instant};

use papy::{worker, NuMap, Pool, ProcessPool, Worker, WorkerCommand};

/// The trivial function (as in the `process` bench).
#[worker]
fn c_inc(x: i64) -> i64 {
    x + 1
}

const ROUNDS: usize = 9;

fn cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes the struct it is given, which lives on
    // this stack frame and is fully initialised (zeroed) beforehand.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    papy::worker_main();
    // Optional arguments: the item count, then the buffer in strides.
    let numbers: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = numbers.first().copied().unwrap_or(1_000_000);
    let strides = numbers.get(1).map_or(16, |s| (*s).max(1) as usize);
    let stride = 1000;
    let inc = Worker::new("c_inc").expect("registered");

    let mut seq = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let s: i64 = (0..n).map(|x| std::hint::black_box(x) + 1).sum();
        std::hint::black_box(s);
        seq.push(t.elapsed());
    }

    let pool: Arc<dyn Pool> = Arc::new(
        ProcessPool::new("cpu", 2, WorkerCommand::current_exe().expect("exe"))
            .expect("process pool"),
    );
    let run = || {
        let m = NuMap::builder()
            .pool(pool.clone())
            .stride(stride)
            .buffer(stride * strides)
            .build()
            .expect("numap");
        let t = m.add_task(inc.clone(), 0..n).expect("task");
        m.start().expect("start");
        let ok = m.results(t).expect("results").filter(Result::is_ok).count();
        assert_eq!(ok as i64, n, "every item succeeds");
    };
    run(); // warm-up: workers started, chains built
    let host0 = cpu(libc::RUSAGE_SELF);
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        run();
        times.push(t.elapsed());
    }
    let host = cpu(libc::RUSAGE_SELF) - host0;
    let children0 = cpu(libc::RUSAGE_CHILDREN);
    drop(pool); // reaps the workers, so their CPU time is counted
    let children = cpu(libc::RUSAGE_CHILDREN) - children0;

    // The host's time is measured over the timed rounds; the workers' (read
    // when they are reaped) includes the warm-up round too.
    let items = n as f64 * ROUNDS as f64;
    let per = |d: Duration| d.as_nanos() as f64 / items;
    let per_worker = |d: Duration| d.as_nanos() as f64 / (items + n as f64);
    let med = median(times);
    println!(
        "sequential: median {:.2} ms for {n} items",
        median(seq).as_secs_f64() * 1e3
    );
    println!(
        "process pool (2 workers, stride {stride}, buffer {strides} strides): median {:.1} ms, {:.2} M items/s",
        med.as_secs_f64() * 1e3,
        n as f64 / med.as_secs_f64() / 1e6
    );
    println!(
        "CPU per item: host {:.0} ns, workers {:.0} ns, total {:.0} ns; cores busy {:.2}",
        per(host),
        per_worker(children),
        per(host) + per_worker(children),
        (host + children).as_secs_f64() / (med.as_secs_f64() * (ROUNDS + 1) as f64)
    );
}
