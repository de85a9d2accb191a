//! Port of PaPy's `doc/examples/worker.py` (with `args.py` and `chain.py`).
//!
//! A `Worker` wraps registered `#[worker]` functions: it can be called on an
//! inbox directly, composed left to right (`then`, `Worker::chain`) and given
//! arguments by position or by name when it is built.

use papy::{worker, Value, Worker};

/// Replaces every `e` with `3` (PaPy's `l33t`).
#[worker]
fn l33t(word: String) -> String {
    word.replace('e', "3")
}

/// Replaces `from` with `to`; both are arguments fixed when the Worker is built.
#[worker]
fn replace(word: String, from: String, to: String) -> String {
    word.replace(&from, &to)
}

/// Appends `!` `times` times (default once).
#[worker]
fn shout(word: String, times: Option<usize>) -> String {
    format!("{word}{}", "!".repeat(times.unwrap_or(1)))
}

fn show(w: &Worker, input: Value) {
    match w.call(std::slice::from_ref(&input)) {
        Ok(v) => println!("{}({input:?}) = {v:?}", w.name()),
        Err(e) => println!("{}({input:?}) failed: {e}", w.name()),
    }
}

fn main() -> Result<(), papy::Error> {
    // One function, no arguments.
    let l33t = Worker::new("l33t")?;
    for word in ["hello", "world"] {
        show(&l33t, Value::from(word));
    }

    // Composition: l33t, then replace(o -> 0) by position, then shout(times = 3) by name.
    let zero = Worker::with_args("replace", ["o", "0"])?;
    let shout = Worker::with_named("shout", [("times", 3)])?;
    let chain = Worker::chain([l33t.clone(), zero.clone(), shout])?;
    for word in ["hello", "world"] {
        show(&chain, Value::from(word));
    }

    // `then` composes two Workers; optional arguments may be left out.
    let short = zero.then(Worker::new("shout")?);
    show(&short, Value::from("foo"));

    // A wrong input is an error value, not a crash.
    show(&l33t, Value::Int(42));

    // Wrong arguments are refused when the Worker is built.
    match Worker::with_named("shout", [("loudness", 3)]) {
        Ok(_) => println!("unexpectedly accepted"),
        Err(e) => println!("refused: {e}"),
    }
    Ok(())
}
