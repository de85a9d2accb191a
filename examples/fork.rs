//! Port of PaPy's `doc/examples/fork.py`: one node feeding two outputs.
//!
//! The output of `upper` goes to both `e_to_3` and `o_to_0`; each downstream
//! piper sees every item. The Plumber drains every output in a thread of its
//! own, so two outputs read at different paces never stall each other.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Upper-cases a word.
#[worker]
fn upper(word: String) -> String {
    word.to_uppercase()
}

/// Replaces `E` with `3`.
#[worker]
fn e_to_3(word: String) -> String {
    word.replace('E', "3")
}

/// Replaces `O` with `0`.
#[worker]
fn o_to_0(word: String) -> String {
    word.replace('O', "0")
}

fn main() -> Result<(), papy::Error> {
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("upper", Worker::new("upper")?))?;
    dagger.add_piper(Piper::new("e_end", Worker::new("e_to_3")?).branch(1))?;
    dagger.add_piper(Piper::new("o_end", Worker::new("o_to_0")?).branch(2))?;
    dagger.add_pipe(["upper", "e_end"])?;
    dagger.add_pipe(["upper", "o_end"])?;
    let outputs: Vec<&str> = dagger.outputs().into_iter().map(Piper::name).collect();
    println!("outputs: {outputs:?}");

    let mut plumber = Plumber::new(dagger);
    let left = plumber.collect("e_end")?;
    let right = plumber.collect("o_end")?;
    plumber.start([("upper", Source::values(["hello", "world"]))])?;
    plumber.run()?;
    plumber.wait(None)?;

    for (l, r) in left.take().into_iter().zip(right.take()) {
        match (l, r) {
            (Ok(l), Ok(r)) => println!("e_end: {l:<6} o_end: {r}"),
            (Err(e), _) | (_, Err(e)) => println!("error: {e}"),
        }
    }
    Ok(())
}
