//! Port of PaPy's `doc/examples/consume.py`: a piper with `consume = 3`.
//!
//! With `consume(n)` the worker receives `n` consecutive items at once: its
//! inbox element is a list of up to `n` values (the last batch may be
//! shorter). Seven words give three results.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Joins a batch of words with spaces.
#[worker]
fn nimm3(words: Vec<String>) -> String {
    words.join(" ")
}

fn main() -> Result<(), papy::Error> {
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("nimm3", Worker::new("nimm3")?).consume(3))?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("nimm3")?;
    let words = ["hello", "world", "hi", "folks", "how", "are", "you"];
    plumber.start([("nimm3", Source::values(words))])?;
    plumber.run()?;
    plumber.wait(None)?;

    let results: Vec<String> = out
        .take()
        .into_iter()
        .map(|item| match item {
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        })
        .collect();
    println!("{} words -> {results:?}", words.len());
    let stats = plumber.stats();
    if let Some(n) = stats.nodes.get("nimm3") {
        println!("nimm3: {} items in, {} items out", n.items_in, n.items_out);
    }
    Ok(())
}
