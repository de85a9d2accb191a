//! Port of PaPy's `doc/examples/func.py`, using the built-in `papy.*`
//! functions of PaPy's `papy.util.func`.
//!
//! The built-ins take the whole inbox (one element per input pipe) and pass,
//! select, join or zip its elements. They are ordinary Workers, so they can
//! be called directly, as here, or used as nodes of a pipeline.

use papy::{Value, Worker};

fn show(w: &Worker, inbox: &[Value]) {
    match w.call(inbox) {
        Ok(v) => println!("{:<13} {inbox:?} -> {v:?}", w.name()),
        Err(e) => println!("{:<13} {inbox:?} failed: {e}", w.name()),
    }
}

fn main() -> Result<(), papy::Error> {
    let words = ["hello", "world", "folks"].map(Value::from);
    let (pick, join) = (Value::list([0, 2]), Value::from("-"));

    // ipasser(i): pass one element of the inbox (default the first).
    show(&Worker::new("papy.ipasser")?, &words);
    show(&Worker::with_args("papy.ipasser", [1])?, &words);

    // njoiner(n, join): join the first n elements as strings.
    let njoiner = Worker::with_args("papy.njoiner", [Value::from(2), Value::from(" ")])?;
    show(&njoiner, &words);

    // sjoiner(s, join): join the selected elements.
    let sjoiner = Worker::with_named("papy.sjoiner", [("s", pick.clone()), ("join", join)])?;
    show(&sjoiner, &words);

    // spasser(s): pass the selected elements as a list (in inbox order).
    show(&Worker::with_named("papy.spasser", [("s", pick)])?, &words);

    // nzipper(n): zip the first n elements (default all), each a list.
    let lists = [
        Value::list([1, 2, 3]),
        Value::list(["a", "b", "c"]),
        Value::list([true, false]),
    ];
    show(&Worker::with_named("papy.nzipper", [("n", 2)])?, &lists);
    show(&Worker::new("papy.nzipper")?, &lists);

    // A bad inbox is an error value naming the problem.
    show(&Worker::with_args("papy.ipasser", [5])?, &words);
    Ok(())
}
