//! Default settings against the best fixed stride, across per-item costs.
//!
//! For per-item costs from about 50 ns to 10 ms, on 2 threads and on 2
//! processes, this times one task run with the NuMap's defaults (adaptive
//! batching: no stride, no buffer) and with each fixed stride of a sweep
//! (buffer of 16 strides, as a tuned user would set it), and prints the
//! medians and the ratio of the default to the best stride, all in one run.
//! The settings take turns (a round runs each once), so a change in the
//! machine's speed during the run does not favour one of them; the ratio
//! is the median of the rounds' ratios (default / best stride).
//!
//! Run: `cargo bench --bench defaults` (about a minute).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use papy::{worker, NuMap, Pool, ProcessPool, ThreadPool, Worker, WorkerCommand};

/// `rounds` steps of a linear congruential generator (about 1 ns each).
#[worker]
fn d_burn(x: i64, rounds: i64) -> i64 {
    let mut acc = x as u64;
    for _ in 0..rounds {
        acc = black_box(
            acc.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    (acc & 1) as i64
}

/// LCG rounds per microsecond on this machine.
fn rounds_per_us() -> f64 {
    let n = 20_000_000i64;
    let t = Instant::now();
    black_box(d_burn(1, n));
    n as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// Runs `items` items on `pool`; `stride: None` = the defaults.
fn run(pool: &Arc<dyn Pool>, stride: Option<usize>, worker: &Worker, items: i64) -> Duration {
    let mut b = NuMap::builder().pool(pool.clone());
    if let Some(s) = stride {
        b = b.stride(s).buffer((s * 16).max(64));
    }
    let m = b.build().expect("numap");
    let t = m.add_task(worker.clone(), 0..items).expect("task");
    let start = Instant::now();
    m.start().expect("start");
    let ok = m.results(t).expect("results").filter(Result::is_ok).count();
    let took = start.elapsed();
    assert_eq!(ok as i64, items, "every item succeeds");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    papy::worker_main();
    let per_us = rounds_per_us();
    let threads: Arc<dyn Pool> = Arc::new(ThreadPool::new("defaults-threads", 2).expect("threads"));
    let procs: Arc<dyn Pool> = Arc::new(
        ProcessPool::new(
            "defaults-procs",
            2,
            WorkerCommand::current_exe().expect("exe"),
        )
        .expect("process pool"),
    );
    let strides = [1usize, 10, 100, 1000];
    let reps = 7;
    println!(
        "{:<10} {:<9} {:>8} {:>11} {:>11} {:>12} {:>8}",
        "per item", "pool", "items", "default", "best fixed", "(stride)", "ratio"
    );
    let mut worst: f64 = 0.0;
    for cost_ns in [50u64, 1_000, 20_000, 500_000, 10_000_000] {
        let rounds = ((cost_ns as f64 / 1000.0) * per_us).max(1.0) as i64;
        let worker = Worker::with_args("d_burn", [rounds]).expect("registered");
        // About 0.2 s of work at one worker.
        let items = (200_000_000 / cost_ns).clamp(20, 1_000_000) as i64;
        for (name, pool) in [("threads", &threads), ("processes", &procs)] {
            // Warm the pool (process start-up is not the subject here).
            run(pool, Some(100), &worker, items.min(200));
            // Rounds of every setting in turn, so that a change in the
            // machine's speed during the run affects them all alike.
            let settings: Vec<Option<usize>> = std::iter::once(None)
                .chain(strides.iter().map(|&s| Some(s)))
                .collect();
            let mut times = vec![Vec::new(); settings.len()];
            for _ in 0..reps {
                for (k, &stride) in settings.iter().enumerate() {
                    times[k].push(run(pool, stride, &worker, items));
                }
            }
            let medians: Vec<Duration> = times.iter().cloned().map(median).collect();
            let best_k = (1..settings.len())
                .min_by_key(|&k| medians[k])
                .expect("strides");
            let (default, best, best_stride) = (medians[0], medians[best_k], strides[best_k - 1]);
            // The ratio is the median of the rounds' own ratios: the two
            // runs of a round met the same machine.
            let ratio = median_f64(
                times[0]
                    .iter()
                    .zip(&times[best_k])
                    .map(|(d, b)| d.as_secs_f64() / b.as_secs_f64())
                    .collect(),
            );
            worst = worst.max(ratio);
            println!(
                "{:<10} {:<9} {:>8} {:>9.2}ms {:>9.2}ms {:>12} {:>7.2}x",
                format_cost(cost_ns),
                name,
                items,
                default.as_secs_f64() * 1e3,
                best.as_secs_f64() * 1e3,
                format!("stride {best_stride}"),
                ratio
            );
        }
    }
    println!(
        "worst default/best ratio: {worst:.2}x ({reps} rounds; times are medians, ratios the median of the rounds' ratios)"
    );
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn format_cost(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000 => format!("{} ms", n / 1_000_000),
        n if n >= 1_000 => format!("{} us", n / 1_000),
        n => format!("{n} ns"),
    }
}
