//! Port of PaPy's `doc/examples/branch.py`: branch values decide the topological order.
//!
//! Among pipers that are ready at the same time (all their upstream pipers
//! placed), the one with the lower `branch` comes first; ties fall back to
//! the order the pipers were added. The data does not change: a join's inbox
//! follows the order its pipes were added, whatever the branches.

use papy::{worker, Dagger, Piper, Plumber, Source, Worker};

/// Returns the element unchanged.
#[worker]
fn pass(element: String) -> String {
    element
}

fn build(left_branch: i64, right_branch: i64) -> Result<Dagger, papy::Error> {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("left", Worker::new("pass")?).branch(left_branch))?;
    d.add_piper(Piper::new("left2", Worker::new("pass")?))?;
    d.add_piper(Piper::new("right", Worker::new("pass")?).branch(right_branch))?;
    d.add_piper(Piper::new("root", Worker::new("papy.npasser")?))?;
    d.add_pipe(["left", "left2", "root"])?;
    d.add_pipe(["right", "root"])?;
    Ok(d)
}

fn main() -> Result<(), papy::Error> {
    for (l, r) in [(1, 2), (2, 1)] {
        let d = build(l, r)?;
        let order: Vec<&str> = d.order().into_iter().map(Piper::name).collect();
        println!("left branch {l}, right branch {r}: order {order:?}");
    }

    let mut plumber = Plumber::new(build(2, 1)?);
    let root = plumber.collect("root")?;
    plumber.start([
        ("left", Source::values((0..3).map(|i| format!("left_{i}")))),
        (
            "right",
            Source::values((0..3).map(|i| format!("right_{i}"))),
        ),
    ])?;
    plumber.run()?;
    plumber.wait(None)?;
    for item in root.take() {
        match item {
            Ok(v) => println!("root: {v}"),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}
