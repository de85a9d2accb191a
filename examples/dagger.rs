//! Port of PaPy's `doc/examples/dagger.py`: building a Dagger.
//!
//! A Dagger is the graph of pipers, identified by name. Pipes connect them
//! in sequence; a pipe that would close a cycle is refused and the graph is
//! left unchanged. The Dagger reports its topological order, its input and
//! output pipers and its pipes.

use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Worker};

/// Replaces `e` with `3` and `o` with `0`.
#[worker]
fn l33t(word: String) -> String {
    word.replace('e', "3").replace('o', "0")
}

/// Replaces `l` with `1`.
#[worker]
fn l33ter(word: String) -> String {
    word.replace('l', "1")
}

fn names(pipers: Vec<&Piper>) -> Vec<&str> {
    pipers.into_iter().map(Piper::name).collect()
}

fn main() -> Result<(), papy::Error> {
    let numap = NuMap::builder().workers(2).build()?;
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("l33t", Worker::new("l33t")?).parallel(&numap))?;
    dagger.add_piper(Piper::new("l33ter", Worker::new("l33ter")?).parallel(&numap))?;
    dagger.add_pipe(["l33t", "l33ter"])?;

    println!("order:   {:?}", names(dagger.order()));
    println!("inputs:  {:?}", names(dagger.inputs()));
    println!("outputs: {:?}", names(dagger.outputs()));
    println!("pipes:   {:?}", dagger.pipes());
    println!("{dagger:?}");

    // A cycle is refused; the graph is unchanged.
    match dagger.connect("l33ter", "l33t") {
        Ok(()) => println!("cycle accepted?!"),
        Err(e) => println!("refused: {e}"),
    }
    println!("pipes:   {:?}", dagger.pipes());

    let mut plumber = Plumber::new(dagger);
    let end = plumber.collect("l33ter")?;
    plumber.start([("l33t", Source::values(["hello", "world"]))])?;
    plumber.run()?;
    plumber.wait(None)?;
    let words: Vec<String> = end
        .take()
        .into_iter()
        .map(|item| match item {
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        })
        .collect();
    println!("result:  {words:?}");
    Ok(())
}
