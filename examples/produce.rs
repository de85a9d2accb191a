//! Port of PaPy's `doc/examples/produce.py`: a piper with `produce = 2`.
//!
//! With `produce(m)` each result of the worker must be a list of exactly `m`
//! values, which leave the node as `m` separate items: two input words give
//! four output items. A result of the wrong shape becomes `m` error items,
//! so item counts stay aligned downstream.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Returns the l33t word twice (two values for `produce = 2`).
#[worker]
fn l33t_twice(word: String) -> Vec<String> {
    let w = word.replace('e', "3").replace('o', "0");
    if word == "bad" {
        return vec![w]; // one value where two are promised
    }
    vec![w.clone(), w]
}

fn main() -> Result<(), papy::Error> {
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("l33t", Worker::new("l33t_twice")?).produce(2))?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("l33t")?;
    plumber.start([("l33t", Source::values(["hello", "world", "bad"]))])?;
    plumber.run()?;
    plumber.wait(None)?;

    let items = out.take();
    println!("3 inputs -> {} items", items.len());
    for item in items {
        match item {
            Ok(v) => println!("  {v}"),
            Err(e) => println!("  error: {e}"),
        }
    }
    Ok(())
}
