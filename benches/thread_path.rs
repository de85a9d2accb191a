//! The thread per-item path against rayon calling the same registered
//! function, in rounds that take turns, so that the ratio holds when the
//! machine's speed drifts during the run (criterion's `numap` bench runs
//! each case in one block, and on a shared 2-core machine the blocks meet
//! different machines).
//!
//! A round runs, on the same 1 M `Value::Int` inputs: rayon calling the
//! function through its `Worker` (the fair baseline), a NuMap of 2 threads
//! at stride 1000 (buffer 4096, as in the `numap` bench), and a NuMap of 2
//! threads with the defaults (adaptive batching). The NuMap owns its input,
//! so each round copies the inputs before the NuMap's timing starts (rayon
//! borrows them). Prints the median times and the median of the rounds'
//! ratios rayon / NuMap (1.0 = as fast as rayon). First, what a hand-off to
//! a sleeping thread costs on this machine: a condition-variable round trip
//! between two threads (each wakes the other), the price an engine thread
//! that sleeps when idle pays per job (`sync::IDLE_SPIN` in papy-core).
//!
//! Run: `cargo bench --bench thread_path` (`-- ROUNDS`, default 40; `--
//! ROUNDS rayon`, `stride` or `defaults` runs that case alone, for a profiler).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use papy::{worker, NuMap, Value, Worker};
use rayon::prelude::*;

/// The trivial function (as `bench_inc` in the `numap` bench).
#[worker]
fn tp_inc(x: i64) -> i64 {
    x + 1
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds `f` took.
fn ms(f: impl FnOnce() -> usize, n: usize) -> f64 {
    let start = Instant::now();
    let got = f();
    let took = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(got, n, "every item gives a value");
    took
}

/// Microseconds per round trip of two threads waking each other in turn
/// through a mutex and a condition variable (`trips` round trips).
fn wake_round_trip(trips: u64) -> f64 {
    let shared = Arc::new((Mutex::new(0u64), Condvar::new()));
    let other = shared.clone();
    let echo = std::thread::spawn(move || {
        let (m, cv) = &*other;
        for i in 0..trips {
            let mut g = m.lock().expect("lock");
            while *g != 2 * i + 1 {
                g = cv.wait(g).expect("wait");
            }
            *g += 1;
            cv.notify_all();
        }
    });
    let (m, cv) = &*shared;
    let start = Instant::now();
    for i in 0..trips {
        let mut g = m.lock().expect("lock");
        *g = 2 * i + 1;
        cv.notify_all();
        while *g != 2 * i + 2 {
            g = cv.wait(g).expect("wait");
        }
    }
    let took = start.elapsed();
    echo.join().expect("echo thread");
    took.as_secs_f64() * 1e6 / trips as f64
}

fn rayon_count(input: &[Value], worker: &Worker) -> usize {
    input
        .par_iter()
        .map(|v| worker.call(std::slice::from_ref(v)))
        .filter(Result::is_ok)
        .count()
}

fn numap(input: Vec<Value>, worker: &Worker, stride: Option<usize>) -> usize {
    let mut b = NuMap::builder().workers(2);
    if let Some(s) = stride {
        b = b.stride(s).buffer((s * 4).max(4096));
    }
    let m = b.build().expect("numap");
    let t = m.add_task(worker.clone(), input).expect("task");
    m.start().expect("start");
    m.results(t).expect("results").filter(Result::is_ok).count()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(40);
    let only = args
        .iter()
        .find(|a| ["rayon", "stride", "defaults"].contains(&a.as_str()));
    let runs = |case: &str| only.is_none_or(|o| o == case);
    if only.is_none() {
        println!(
            "waking a sleeping thread: a condition-variable round trip takes {:.1} us (median of 5 x 2000)",
            median((0..5).map(|_| wake_round_trip(2000)).collect())
        );
    }
    const N: usize = 1_000_000;
    let input: Vec<Value> = (0..N as i64).map(Value::Int).collect();
    let inc = Worker::new("tp_inc").expect("registered");
    let (mut rayon, mut fixed, mut default) = (Vec::new(), Vec::new(), Vec::new());
    let (mut r_fixed, mut r_default) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        if only.is_some() {
            let (owned, stride) = (input.clone(), runs("stride").then_some(1000));
            fixed.push(match runs("rayon") {
                true => ms(|| rayon_count(&owned, &inc), N),
                false => ms(|| numap(owned, &inc, stride), N),
            });
            continue;
        }
        let r = ms(|| rayon_count(&input, &inc), N);
        let owned = input.clone();
        let f = ms(|| numap(owned, &inc, Some(1000)), N);
        let owned = input.clone();
        let d = ms(|| numap(owned, &inc, None), N);
        r_fixed.push(r / f);
        r_default.push(r / d);
        rayon.push(r);
        fixed.push(f);
        default.push(d);
    }
    if let Some(case) = only {
        println!("{case} alone: {:.2} ms (median of {rounds})", median(fixed));
        return;
    }
    println!("trivial function, 1 M items, 2 threads, {rounds} rounds (median times; ratio = median of the rounds' rayon / NuMap):");
    println!("  rayon, same Worker:          {:>7.2} ms", median(rayon));
    println!(
        "  NuMap, stride 1000:          {:>7.2} ms   ratio {:.2}x",
        median(fixed),
        median(r_fixed)
    );
    println!(
        "  NuMap, defaults (adaptive):  {:>7.2} ms   ratio {:.2}x",
        median(default),
        median(r_default)
    );
}
