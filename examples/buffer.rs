//! Port of PaPy's `doc/examples/buffer.py`: the buffer bounds work in flight.
//!
//! A NuMap submits at most `buffer` items that have not been read yet. With
//! stride 2 and buffer 6 it evaluates L0 L1 R0 R1 L2 L3 and then waits; each
//! result read makes room for more. A buffer smaller than the stride could
//! never hold a whole visit (PaPy deadlocks there), so it is refused.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use papy::{Item, NuMap, Worker};

fn text(items: impl Iterator<Item = Item>) -> String {
    let words: Vec<String> = items
        .map(|r| r.map_or_else(|e| e.to_string(), |v| v.to_string()))
        .collect();
    words.join(" ")
}

fn main() -> Result<(), papy::Error> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let printer = Worker::typed("printer", move |element: String| {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.push(element.clone());
        element
    });
    let evaluated = || log.lock().unwrap_or_else(PoisonError::into_inner).join(" ");

    // One worker thread, so items are evaluated in the order they are submitted.
    let numap = NuMap::builder().workers(1).stride(2).buffer(6).build()?;
    let mut left = numap.results(numap.add_task(printer.clone(), ["L0", "L1", "L2", "L3"])?)?;
    let right = numap.results(numap.add_task(printer, ["R0", "R1", "R2", "R3"])?)?;
    numap.start()?;
    std::thread::sleep(Duration::from_millis(300));
    let in_flight = numap.in_flight();
    println!(
        "before reading: evaluated {} ({in_flight} in flight)",
        evaluated()
    );

    let first = text(left.by_ref().take(2));
    std::thread::sleep(Duration::from_millis(300));
    println!("after reading {first}: evaluated {}", evaluated());
    println!("then read {} and {}", text(left), text(right));

    match NuMap::builder().workers(2).stride(4).buffer(2).build() {
        Ok(_) => println!("buffer < stride accepted?!"),
        Err(e) => println!("refused: {e}"),
    }
    Ok(())
}
