//! Per-call cost of a plugin function against the same function linked
//! statically, both called through a `Worker` as a NuMap would.
//!
//! Run: `cargo bench -p papy-plugins --bench call` (builds the `math`
//! plugin in release mode first). Criterion prints the median time per call
//! (`square_call`), and per batch of 1000 items evaluated as a NuMap job
//! does (`square_batch_1000`: a plugin built for ABI 1.2 crosses the
//! boundary once per batch; divide by 1000 for the time per item).
// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use papy_core::{Item, Value, Worker};
use papy_macros::worker;

/// The statically linked twin of `math.square`.
#[worker]
fn square(x: i64) -> i64 {
    x * x
}

fn load_math() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["build", "--quiet", "--release", "-p", "papy-plugin-math"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the math plugin failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let file = target
        .join("release")
        .join(papy_plugins::SearchPath::file_name("math"));
    papy_plugins::load(&file).expect("load the math plugin");
}

fn calls(c: &mut Criterion) {
    load_math();
    let static_fn = Worker::new("call.square").expect("static square");
    let plugin_fn = Worker::new("math.square").expect("plugin square");
    let input = [Value::Int(12345)];
    assert_eq!(static_fn.call(&input).ok(), plugin_fn.call(&input).ok());
    let mut g = c.benchmark_group("square_call");
    g.bench_function("static", |b| {
        b.iter(|| static_fn.call(std::hint::black_box(&input)))
    });
    g.bench_function("plugin", |b| {
        b.iter(|| plugin_fn.call(std::hint::black_box(&input)))
    });
    g.finish();

    let inboxes: Vec<[Item; 1]> = (0..1000).map(|i| [Ok(Value::Int(i))]).collect();
    let mut out: Vec<Item> = Vec::with_capacity(1000);
    let mut check = |w: &Worker| {
        out.clear();
        w.eval_batch(1000, |i| &inboxes[i][..], |i| i as u64, "bench", &mut out);
        out.len()
    };
    assert_eq!(check(&static_fn), 1000);
    assert_eq!(check(&plugin_fn), 1000);
    let mut g = c.benchmark_group("square_batch_1000");
    g.throughput(criterion::Throughput::Elements(1000));
    for (name, w) in [("static", &static_fn), ("plugin", &plugin_fn)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                w.eval_batch(1000, |i| &inboxes[i][..], |i| i as u64, "bench", &mut out);
                std::hint::black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);
