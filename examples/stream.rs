//! Streams N items (default 1 000 000; first argument) through a 3-node
//! parallel pipeline without keeping the outputs, to show that memory stays
//! bounded by the buffers, not by the input size.
//!
//! `/usr/bin/time -v cargo run --release --example stream -- 10000000`
//! reports the peak RSS ("Maximum resident set size").

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Worker};

/// Adds one.
#[worker]
fn stream_inc(x: i64) -> i64 {
    x + 1
}

/// Keeps the number small.
#[worker]
fn stream_mod(x: i64, m: i64) -> i64 {
    x % m
}

fn main() -> Result<(), papy::Error> {
    let n: i64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|e| papy::Error::Config(format!("item count `{s}`: {e}")))?,
        None => 1_000_000,
    };
    let pool = NuMap::builder().workers(2).stride(1000).build()?;
    let mut dag = Dagger::new();
    dag.add_piper(Piper::new("inc", Worker::new("stream_inc")?).parallel(&pool))?;
    dag.add_piper(Piper::new("mod", Worker::with_args("stream_mod", [1000])?).parallel(&pool))?;
    dag.add_piper(Piper::new("inc2", Worker::new("stream_inc")?).parallel(&pool))?;
    dag.add_pipe(["inc", "mod", "inc2"])?;
    let mut plumber = Plumber::new(dag);
    let checksum = Arc::new(AtomicI64::new(0));
    let sink = checksum.clone();
    plumber.on_output("inc2", move |item| {
        if let Ok(v) = item {
            sink.fetch_add(v.as_int().unwrap_or(0), Ordering::Relaxed);
        }
    })?;
    plumber.start([("inc", Source::values(0..n))])?;
    plumber.run()?;
    plumber.wait(None)?;
    let stats = plumber.stats();
    println!(
        "{n} items in {:?}; output items: {}; checksum {}",
        stats.run_time.unwrap_or_default(),
        stats.nodes["inc2"].items_out,
        checksum.load(Ordering::Relaxed)
    );
    Ok(())
}
