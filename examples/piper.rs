//! Port of PaPy's `doc/examples/piper.py`: a single linear Piper.
//!
//! A Piper is a pipeline node: a Worker plus node options. Without a NuMap it
//! is *linear*: it is evaluated lazily, in the thread that pulls its output.
//! A one-node Dagger is run by a Plumber, which feeds it and collects its output.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Replaces `e` with `3` and `o` with `0`.
#[worker]
fn l33t(word: String) -> String {
    word.replace('e', "3").replace('o', "0")
}

fn main() -> Result<(), papy::Error> {
    let piper = Piper::new("l33t", Worker::new("l33t")?);
    println!(
        "piper `{}` runs {} (parallel: {})",
        piper.name(),
        piper.worker().name(),
        piper.numap().is_some()
    );

    let mut dagger = Dagger::new();
    dagger.add_piper(piper)?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("l33t")?;
    plumber.start([("l33t", Source::values(["hello", "world"]))])?;
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
