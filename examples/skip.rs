//! Port of PaPy's `doc/examples/skip.py`: failing items are not skipped, they flow as errors.
//!
//! PaPy could skip results that failed. In papy an item that fails becomes
//! an error item in its place: it passes through the downstream nodes
//! without calling them (recording each node in its path), every other item
//! is computed as usual, and the output keeps one item per input.

use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Worker};

/// Fails on multiples of `k`.
#[worker]
fn picky(x: i64, k: i64) -> Result<i64, String> {
    if x % k == 0 {
        Err(format!("{x} is a multiple of {k}"))
    } else {
        Ok(x)
    }
}

/// Multiplies by ten.
#[worker]
fn times_ten(x: i64) -> i64 {
    x * 10
}

fn main() -> Result<(), papy::Error> {
    let numap = NuMap::builder().workers(2).stride(2).build()?;
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("picky", Worker::with_args("picky", [3])?).parallel(&numap))?;
    dagger.add_piper(Piper::new("times_ten", Worker::new("times_ten")?).parallel(&numap))?;
    dagger.add_piper(Piper::new(
        "show",
        Worker::typed("show", |x: i64| format!("<{x}>")),
    ))?;
    dagger.add_pipe(["picky", "times_ten", "show"])?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("show")?;
    plumber.start([("picky", Source::values(1..=7i64))])?;
    plumber.run()?;
    plumber.wait(None)?;

    for item in out.take() {
        match item {
            Ok(v) => println!("ok    {v}"),
            Err(e) => println!(
                "error {:?} in {} at index {} via {}: {}",
                e.kind(),
                e.function().unwrap_or("?"),
                e.index().map_or("?".to_string(), |i| i.to_string()),
                e.path().join(" > "),
                e.message()
            ),
        }
    }
    println!("failed items: {}", plumber.stats().failed());
    Ok(())
}
