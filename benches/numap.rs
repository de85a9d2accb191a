//! Throughput of the thread NuMap against the sequential iterator and rayon,
//! measured in the same run on the same `Vec<Value>`.
//!
//! Run: `cargo bench --bench numap`. Criterion prints the median time per
//! run for each case, and the throughput (items/s).
// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Value, Worker};
use rayon::prelude::*;

/// The trivial function.
#[worker]
fn bench_inc(x: i64) -> i64 {
    x + 1
}

/// About 50 microseconds of arithmetic per item.
#[worker]
fn bench_spin(x: i64, micros: u64) -> i64 {
    let deadline = Instant::now() + Duration::from_micros(micros);
    let mut acc = x;
    while Instant::now() < deadline {
        for _ in 0..64 {
            acc = black_box(
                acc.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            );
        }
    }
    acc & 1
}

fn inc_value(v: &Value) -> Value {
    Value::Int(v.as_int().unwrap_or(0) + 1)
}

/// Runs `input` through a NuMap and counts the values; the NuMap owns its
/// input, so the cases that compare it with rayon (which borrows) build that
/// input outside the timed part (`iter_batched`).
fn numap_run(input: Vec<Value>, workers: usize, stride: usize, worker: &Worker) -> usize {
    let m = NuMap::builder()
        .workers(workers)
        .stride(stride)
        .buffer((stride * 4).max(4096))
        .build()
        .expect("numap");
    let t = m.add_task(worker.clone(), input).expect("task");
    m.start().expect("start");
    m.results(t).expect("results").filter(Result::is_ok).count()
}

fn trivial(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let input: Vec<Value> = (0..N as i64).map(Value::Int).collect();
    let inc = Worker::new("bench_inc").expect("registered");
    let mut g = c.benchmark_group("trivial_1M");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("sequential_iter", |b| {
        b.iter(|| input.iter().map(inc_value).collect::<Vec<Value>>().len())
    });
    g.bench_function("rayon_par_iter", |b| {
        b.iter(|| {
            input
                .par_iter()
                .map(inc_value)
                .collect::<Vec<Value>>()
                .len()
        })
    });
    // The same registered function, called through its Worker as the NuMap does:
    // the fair baseline for what the NuMap adds on top of a parallel map.
    g.bench_function("rayon_par_iter_same_worker", |b| {
        b.iter(|| {
            input
                .par_iter()
                .map(|v| inc.call(std::slice::from_ref(v)))
                .collect::<Vec<_>>()
                .len()
        })
    });
    for workers in [1, 2] {
        for stride in [1, 100, 1000] {
            g.bench_with_input(
                BenchmarkId::new(format!("numap_{workers}w"), format!("stride_{stride}")),
                &stride,
                |b, &stride| {
                    b.iter_batched(
                        || input.clone(),
                        |owned| numap_run(owned, workers, stride, &inc),
                        BatchSize::PerIteration,
                    )
                },
            );
        }
    }
    // As numap_2w/stride_1000 with the copy of the input timed too (the
    // figure earlier sessions quoted).
    g.bench_function("numap_2w_stride_1000_with_input_copy", |b| {
        b.iter(|| numap_run(input.clone(), 2, 1000, &inc))
    });
    g.finish();
}

fn cpu_bound(c: &mut Criterion) {
    const N: usize = 400;
    let input: Vec<Value> = (0..N as i64).map(Value::Int).collect();
    let spin = Worker::with_args("bench_spin", [50]).expect("registered");
    let mut g = c.benchmark_group("cpu_50us_400");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(3));
    for workers in [1, 2] {
        g.bench_function(format!("numap_{workers}w_stride_10"), |b| {
            b.iter(|| numap_run(input.clone(), workers, 10, &spin))
        });
    }
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    const N: i64 = 200_000;
    let mut g = c.benchmark_group("pipeline_3_nodes_200k");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("2w_stride_1000", |b| {
        b.iter(|| {
            let m = NuMap::builder()
                .workers(2)
                .stride(1000)
                .build()
                .expect("numap");
            let mut d = Dagger::new();
            for name in ["a", "b", "c"] {
                let w = Worker::new("bench_inc").expect("registered");
                d.add_piper(Piper::new(name, w).parallel(&m))
                    .expect("piper");
            }
            d.add_pipe(["a", "b", "c"]).expect("pipe");
            let mut p = Plumber::new(d);
            p.start([("a", Source::values(0..N))]).expect("start");
            p.run().expect("run");
            p.wait(None).expect("wait");
            p.stats().nodes["c"].items_out
        })
    });
    g.finish();
}

criterion_group!(benches, trivial, cpu_bound, pipeline);
criterion_main!(benches);
