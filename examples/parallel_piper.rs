//! Port of PaPy's `doc/examples/parallel_piper.py`: a Piper on a NuMap.
//!
//! `Piper::parallel(&numap)` evaluates the node on the NuMap's pool of worker
//! threads instead of lazily in the caller's thread. The results still come
//! out in input order (NuMaps are ordered by default).

use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Worker};

/// Replaces `e` with `3` and `o` with `0` (slowly), and says which thread did it.
#[worker]
fn l33t(word: String) -> String {
    std::thread::sleep(std::time::Duration::from_millis(50));
    let thread = std::thread::current().name().unwrap_or("?").to_string();
    format!("{} (by {thread})", word.replace('e', "3").replace('o', "0"))
}

fn main() -> Result<(), papy::Error> {
    // Stride 1: one item per job; buffer 4: up to four items in flight, so both workers are busy.
    let numap = NuMap::builder()
        .name("pool")
        .workers(2)
        .stride(1)
        .buffer(4)
        .build()?;
    println!(
        "NuMap `{}`: {} {} workers, stride {}",
        numap.name(),
        numap.workers(),
        numap.kind(),
        numap.stride()
    );

    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("l33t", Worker::new("l33t")?).parallel(&numap))?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("l33t")?;
    plumber.start([("l33t", Source::values(["hello", "world", "hi", "folks"]))])?;
    plumber.run()?;
    plumber.wait(None)?;

    for item in out.take() {
        match item {
            Ok(v) => println!("{v}"),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}
