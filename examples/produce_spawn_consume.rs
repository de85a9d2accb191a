//! Port of PaPy's `doc/examples/produce_spawn_consume.py`.
//!
//! `l33t` produces two items per word (the word and a "yuk"), `upper` runs
//! as two tasks on the NuMap (`spawn = 2`, results merged back into input
//! order), and `noyuk` consumes four items at a time (word, yuk, word, yuk)
//! and keeps the two words. Four words in, two sentences out.

use papy::{worker, Dagger, NuMap, Piper, Plumber, Source, Worker};

/// Returns the l33t word and a "yuk".
#[worker]
fn l33t(word: String) -> Vec<String> {
    vec![word.replace('e', "3").replace('o', "0"), "yuk".to_string()]
}

/// Upper-cases a word.
#[worker]
fn upper(word: String) -> String {
    word.to_uppercase()
}

/// Takes [word, yuk, word, yuk] and joins the two words.
#[worker]
fn noyuk(batch: Vec<String>) -> String {
    let words: Vec<&str> = batch.iter().step_by(2).map(String::as_str).collect();
    words.join(" ")
}

fn main() -> Result<(), papy::Error> {
    let numap = NuMap::builder().workers(2).stride(2).build()?;
    let mut dagger = Dagger::new();
    dagger.add_piper(
        Piper::new("l33t", Worker::new("l33t")?)
            .parallel(&numap)
            .produce(2),
    )?;
    dagger.add_piper(
        Piper::new("upper", Worker::new("upper")?)
            .parallel(&numap)
            .spawn(2),
    )?;
    dagger.add_piper(
        Piper::new("noyuk", Worker::new("noyuk")?)
            .parallel(&numap)
            .consume(4),
    )?;
    dagger.add_pipe(["l33t", "upper", "noyuk"])?;

    let mut plumber = Plumber::new(dagger);
    let out = plumber.collect("noyuk")?;
    plumber.start([("l33t", Source::values(["hello", "world", "hi", "folks"]))])?;
    plumber.run()?;
    plumber.wait(None)?;

    for item in out.take() {
        match item {
            Ok(v) => println!("{v}"),
            Err(e) => println!("error: {e}"),
        }
    }
    let stats = plumber.stats();
    for (node, s) in &stats.nodes {
        println!("{node:<6} in {} out {}", s.items_in, s.items_out);
    }
    Ok(())
}
