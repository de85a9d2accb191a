//! Port of PaPy's NuMap examples (`branch.py`, `chain.py`): a NuMap on its own.
//!
//! A NuMap evaluates several tasks on one pool of worker threads. Here two
//! independent tasks share it, and a third task is chained: it reads the
//! results of the first task on the same NuMap. Results are lazy iterators
//! of items (a value, or the error that replaced it).

use papy::{worker, NuMap, TaskOptions, Worker};

/// Squares a number.
#[worker]
fn square(x: i64) -> i64 {
    x * x
}

/// Adds `n`.
#[worker]
fn add(x: i64, n: i64) -> i64 {
    x + n
}

/// Replaces `e` with `3` and `o` with `0`.
#[worker]
fn l33t(word: String) -> String {
    word.replace('e', "3").replace('o', "0")
}

fn main() -> Result<(), papy::Error> {
    let numap = NuMap::builder().name("pool").workers(2).stride(2).build()?;
    let squares = numap.add_task(Worker::new("square")?, 0..5i64)?;
    let words = numap.add_task(
        Worker::new("l33t")?,
        ["hello", "world", "hi", "folks", "bye"],
    )?;
    // Chained on `squares`: it consumes the squares, so only its output is read.
    let plus = numap.add_chained(
        Worker::with_args("add", [100])?,
        squares,
        TaskOptions::default(),
    )?;
    println!(
        "NuMap `{}`: {} tasks on {} workers",
        numap.name(),
        numap.task_count(),
        numap.workers()
    );
    numap.start()?;

    // Read the two outputs in turn.
    for (w, p) in numap.results(words)?.zip(numap.results(plus)?) {
        match (w, p) {
            (Ok(w), Ok(p)) => println!("{w:<6} {p}"),
            (Err(e), _) | (_, Err(e)) => println!("error: {e}"),
        }
    }
    numap.stop();
    Ok(())
}
