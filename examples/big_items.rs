//! Passes large items **by reference** through a process pool: each worker
//! process makes a payload, dumps it (`papy.dump_item`) and sends only its
//! locator on; a second node, also in worker processes, maps the file
//! (`func::items::map`, no copy) and digests it. The host sees locators and
//! digests, never the payloads, so its memory stays small however large
//! the items are.
//!
//! ```text
//! cargo run --release --example big_items -- [ITEMS] [MB_PER_ITEM] [file|fifo|socket]
//! ```
//! (default: 10 items of 100 MB = 1 GB, through files). It prints the
//! throughput and the host's peak RSS (`VmHWM`). `value` as the transport
//! passes the payloads by value instead, through the host, for comparison.

use std::sync::Arc;
use std::time::Instant;

use papy::func::items;
use papy::{
    worker, Dagger, NuMap, Piper, Plumber, ProcessPool, Source, Value, Worker, WorkerCommand,
};

/// A payload of `mb` MiB whose bytes depend on `i`.
#[worker]
fn big_make(i: i64, mb: usize) -> Value {
    let mut bytes = vec![0u8; mb << 20];
    for (k, chunk) in bytes.chunks_mut(4096).enumerate() {
        chunk.fill((i as u8).wrapping_add(k as u8));
    }
    Value::from(bytes.as_slice())
}

/// Sums the payload's bytes (given by value, or by reference: through a memory map for file items,
/// after loading for fifo and socket items). Removes a file item afterwards.
#[worker]
fn big_digest(locator: Value) -> Result<Value, String> {
    let sum = |b: &[u8]| b.iter().map(|x| u64::from(*x)).sum::<u64>();
    let (len, total) = if let Some(b) = locator.as_bytes() {
        (b.len(), sum(b))
    } else if locator.get("kind") == Some(&Value::from("file")) {
        let map = items::map(&locator).map_err(|e| e.to_string())?;
        let r = (map.len(), sum(&map));
        items::remove(&locator).map_err(|e| e.to_string())?;
        r
    } else {
        let v = items::load(&locator, &items::LoadOptions::default()).map_err(|e| e.to_string())?;
        let b = v.as_bytes().ok_or("not bytes")?;
        (b.len(), sum(b))
    };
    Ok(Value::map([
        ("bytes", Value::from(len)),
        ("sum", Value::from(total)),
    ]))
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    papy::worker_main();
    let mut args = std::env::args().skip(1);
    let n: i64 = args.next().map_or(Ok(10), |s| s.parse())?;
    let mb: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let kind = args.next().unwrap_or_else(|| "file".into());

    let pool = Arc::new(ProcessPool::new("big", 2, WorkerCommand::current_exe()?)?);
    let numap = NuMap::builder().pool(pool).stride(1).buffer(2).build()?;
    let mut make = Worker::with_args("big_make", [mb])?;
    if kind != "value" {
        let dump = Worker::with_named("papy.dump_item", [("kind", Value::from(kind.as_str()))])?;
        make = make.then(dump);
    }
    let mut d = Dagger::new();
    d.add_piper(Piper::new("make", make).parallel(&numap))?;
    d.add_piper(Piper::new("digest", Worker::new("big_digest")?).parallel(&numap))?;
    d.add_pipe(["make", "digest"])?;
    let mut p = Plumber::new(d);
    let out = p.collect("digest")?;
    let started = Instant::now();
    p.start([("make", Source::values(0..n))])?;
    p.run()?;
    p.wait(None)?;
    let secs = started.elapsed().as_secs_f64();
    let mut bytes = 0u64;
    for item in out.take() {
        let v = item?;
        bytes += v.get("bytes").and_then(Value::as_int).unwrap_or(0) as u64;
        println!("{v}");
    }
    let gib = bytes as f64 / f64::from(1u32 << 30);
    println!(
        "{n} items, {gib:.2} GiB by {kind} through 2 worker processes in {secs:.2} s: {:.2} GiB/s; host peak RSS {} MiB",
        gib / secs,
        peak_rss_kib().map_or_else(|| "?".into(), |k| (k / 1024).to_string())
    );
    Ok(())
}
