//! Port of PaPy's `doc/examples/dagger_inputs.py`: two input pipers, bound by name.
//!
//! Every piper without upstream pipers is an input of the pipeline. The
//! Plumber binds one external source to each input piper by its name, so the
//! order the sources are given in does not matter. The join's inbox holds one
//! element per upstream piper, in the order the pipes into it were added.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Concatenates the two words of the inbox.
#[worker]
fn merge((word1, word2): (String, String)) -> String {
    word1 + &word2
}

fn main() -> Result<(), papy::Error> {
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("inp1", Worker::new("papy.ipasser")?))?;
    dagger.add_piper(Piper::new("inp2", Worker::new("papy.ipasser")?))?;
    dagger.add_piper(Piper::new("merge", Worker::new("merge")?))?;
    dagger.add_pipe(["inp1", "merge"])?; // first element of merge's inbox
    dagger.add_pipe(["inp2", "merge"])?; // second element

    let inputs: Vec<&str> = dagger.inputs().into_iter().map(Piper::name).collect();
    println!("input pipers: {inputs:?}");

    let mut plumber = Plumber::new(dagger);
    let end = plumber.collect("merge")?;
    // Bound by name: given in the "wrong" order on purpose.
    plumber.start([
        ("inp2", Source::values(["world", "hello"])),
        ("inp1", Source::values(["hello ", "world "])),
    ])?;
    plumber.run()?;
    plumber.wait(None)?;
    for item in end.take() {
        match item {
            Ok(v) => println!("{v}"),
            Err(e) => println!("error: {e}"),
        }
    }

    // A missing or unknown input is refused with the names of the inputs.
    let mut d = Dagger::new();
    d.add_piper(Piper::new("inp1", Worker::new("papy.ipasser")?))?;
    match Plumber::new(d).start([("inp3", Source::values(["x"]))]) {
        Ok(()) => println!("unexpectedly started"),
        Err(e) => println!("refused: {e}"),
    }
    Ok(())
}
