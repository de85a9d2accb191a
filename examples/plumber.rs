//! Port of PaPy's `doc/examples/plumber.py`: driving a pipeline and reading its statistics.
//!
//! A Plumber runs a Dagger: `start` binds the inputs, `run` starts draining
//! the outputs, `pause`/`resume` hold and release them, `wait` blocks until
//! the outputs end and `stop` releases the run. Its statistics count items
//! per node and keep every output item of a `track`ed node by index.

use std::time::Duration;

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

fn main() -> Result<(), papy::Error> {
    let numap = NuMap::builder().workers(2).stride(2).build()?;
    let mut dagger = Dagger::new();
    dagger.add_piper(Piper::new("l33t", Worker::new("l33t")?).parallel(&numap))?;
    let tracked = Piper::new("l33ter", Worker::new("l33ter")?).track(true);
    dagger.add_piper(tracked.parallel(&numap))?;
    dagger.connect("l33t", "l33ter")?;

    let mut p = Plumber::new(dagger);
    let out = p.collect("l33ter")?;
    // A slow source (20 ms per word), so that there is time to pause.
    let words = ["hello", "world", "hi", "folks"].repeat(5).into_iter();
    let slow = words.inspect(|_| std::thread::sleep(Duration::from_millis(20)));
    p.start([("l33t", Source::values(slow))])?;
    println!("state: {}", p.state());
    p.run()?;
    println!("state: {}", p.state());
    std::thread::sleep(Duration::from_millis(150));
    p.pause()?;
    // An item already being pulled when `pause` is called is still delivered.
    std::thread::sleep(Duration::from_millis(50));
    let held = out.len();
    std::thread::sleep(Duration::from_millis(150));
    println!("state: {}, {held} items out", p.state());
    println!("150 ms later: still {} items out", out.len());
    p.resume()?;
    println!("state: {}", p.state());
    p.wait(None)?;
    println!("state: {}, {} items out", p.state(), out.len());
    p.stop()?;
    println!("state: {}", p.state());

    let stats = p.stats();
    println!("run time: {:?}", stats.run_time.unwrap_or_default());
    for (node, s) in &stats.nodes {
        let (i, o, f) = (s.items_in, s.items_out, s.failed);
        println!("{node:<6} in {i} out {o} failed {f} busy {:?}", s.busy);
    }
    for (node, items) in &stats.tracked {
        println!("tracked {node}: {} items, the first four:", items.len());
        for (i, item) in items.iter().take(4) {
            println!("  #{i}: {item:?}");
        }
    }
    Ok(())
}
