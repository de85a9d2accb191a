//! Port of the timeout half of PaPy's `doc/examples/skip.py`: a per-item timeout.
//!
//! A parallel piper with `timeout(d)` gives each item `d` to finish. An item
//! that takes longer becomes a `Timeout` error item (its late result is
//! discarded) and the items after it come through as usual.

use std::time::Duration;

use papy::{worker, Dagger, ErrorKind, NuMap, Piper, Plumber, Source, Worker};

/// Sleeps a second on "sleep", returns the element.
#[worker]
fn sleeper(element: String) -> String {
    if element == "sleep" {
        std::thread::sleep(Duration::from_secs(1));
    }
    element
}

fn main() -> Result<(), papy::Error> {
    let numap = NuMap::builder().workers(2).stride(1).build()?;
    let mut dagger = Dagger::new();
    let piper = Piper::new("sleeper", Worker::new("sleeper")?).parallel(&numap);
    dagger.add_piper(piper.timeout(Duration::from_millis(200)))?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("sleeper")?;
    plumber.start([(
        "sleeper",
        Source::values(["awake", "sleep", "awake", "awake"]),
    )])?;
    plumber.run()?;
    plumber.wait(None)?;

    for (i, item) in out.take().into_iter().enumerate() {
        match item {
            Ok(v) => println!("#{i}: {v}"),
            Err(e) if e.kind() == ErrorKind::Timeout => println!("#{i}: timed out ({e})"),
            Err(e) => println!("#{i}: error: {e}"),
        }
    }
    Ok(())
}
