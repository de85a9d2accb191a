//! Port of PaPy's `doc/examples/join.py`: two inputs joined.
//!
//! A piper with two upstream pipers receives a two-element inbox: here the
//! worker takes it as a tuple `(left, right)`, one element per input pipe,
//! in the order the pipes were added.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Replaces `e` with `3` and `o` with `0`.
#[worker]
fn l33t(word: String) -> String {
    word.replace('e', "3").replace('o', "0")
}

/// Joins the two words of the inbox with a space.
#[worker]
fn join((left, right): (String, String)) -> String {
    format!("{left} {right}")
}

fn main() -> Result<(), papy::Error> {
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("left", Worker::new("l33t")?).branch(1))?;
    dagger.add_piper(Piper::new("right", Worker::new("l33t")?).branch(2))?;
    dagger.add_piper(Piper::new("join", Worker::new("join")?))?;
    dagger.add_pipe(["left", "join"])?;
    dagger.add_pipe(["right", "join"])?;
    let upstream: Vec<&str> = dagger
        .upstream("join")?
        .into_iter()
        .map(Piper::name)
        .collect();
    println!("join's inbox: {upstream:?}");

    let mut plumber = Plumber::new(dagger);
    let end = plumber.collect("join")?;
    plumber.start([
        ("left", Source::values(["hello", "hi"])),
        ("right", Source::values(["world", "folks"])),
    ])?;
    plumber.run()?;
    plumber.wait(None)?;
    for item in end.take() {
        match item {
            Ok(v) => println!("{v}"),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}
