//! How the engine's cost grows with the pipeline and with the input: a
//! chain of `N` pipers (each adds 1 to its item) on one shared NuMap or on
//! one NuMap each (2 threads, adaptive batching), over `0..ITEMS`. Prints one
//! line: the wall time and the time per item-node (wall / (ITEMS x N)). The
//! output is counted as it comes (nothing is kept), so the peak memory is
//! the engine's own; `bench/scaling.sh` runs the grid under `/usr/bin/time
//! -v` and prints the table.
//!
//! Run: `cargo bench --bench scaling -- N ITEMS shared|own`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Worker};

/// The trivial stage.
#[worker]
fn sc_inc(x: i64) -> i64 {
    x + 1
}

/// The chain n0 -> n1 -> ... on `numaps` (one shared, or one per piper).
fn chain(n: usize, numaps: &[NuMap]) -> Dagger {
    let mut d = Dagger::new();
    for i in 0..n {
        let w = Worker::new("sc_inc").expect("registered");
        let p = Piper::new(format!("n{i}"), w).parallel(&numaps[i % numaps.len()]);
        d.add_piper(p).expect("piper");
        if i > 0 {
            d.add_pipe([format!("n{}", i - 1), format!("n{i}")])
                .expect("pipe");
        }
    }
    d
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(4);
    let items: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let shared = args.get(2).is_none_or(|m| m == "shared");
    let build = |k: usize| {
        NuMap::builder()
            .name(format!("sc{k}"))
            .workers(2)
            .build()
            .expect("numap")
    };
    let numaps: Vec<NuMap> = (0..if shared { 1 } else { n }).map(build).collect();
    let mut p = Plumber::new(chain(n, &numaps));
    let (count, sum) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicI64::new(0)));
    let (c, s) = (count.clone(), sum.clone());
    p.on_output(&format!("n{}", n - 1), move |item| {
        c.fetch_add(1, Ordering::Relaxed);
        s.fetch_add(
            item.map_or(0, |v| v.as_int().unwrap_or(0)),
            Ordering::Relaxed,
        );
    })
    .expect("output");
    let start = Instant::now();
    p.start([("n0", Source::values(0..items))]).expect("start");
    p.run().expect("run");
    assert!(
        p.wait(Some(Duration::from_secs(3600))).expect("wait"),
        "finished"
    );
    let took = start.elapsed().as_secs_f64();
    // Every item went through every piper.
    assert_eq!(count.load(Ordering::Relaxed), items as u64);
    let want = items * (items - 1) / 2 + items * n as i64;
    assert_eq!(sum.load(Ordering::Relaxed), want);
    let mode = if shared { "shared" } else { "own" };
    println!(
        "pipers {n} items {items} numaps {mode} wall_s {took:.3} ns_per_item_node {:.1}",
        took * 1e9 / (items as f64 * n as f64)
    );
}
