//! Port of PaPy's `doc/examples/stride.py`: the same output for different strides.
//!
//! A NuMap visits its tasks in turn and takes `stride` items from each per
//! visit, so the stride decides the order in which items are *evaluated*
//! (shown with a single worker thread). The results of each task are the
//! same, in the same order, whatever the stride.

use std::sync::{Arc, Mutex, PoisonError};

use papy::{NuMap, Worker};

fn main() -> Result<(), papy::Error> {
    let mut outputs = Vec::new();
    for stride in [1, 2, 3] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let printer = Worker::typed("printer", move |element: String| {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.push(element.clone());
            element
        });

        // One worker thread, and a buffer that holds every item (no waiting on reads).
        let numap = NuMap::builder()
            .workers(1)
            .stride(stride)
            .buffer(8)
            .build()?;
        let left = numap.add_task(printer.clone(), ["L0", "L1", "L2", "L3"])?;
        let right = numap.add_task(printer, ["R0", "R1", "R2", "R3"])?;
        numap.start()?;

        // Read the two tasks in turn, as PaPy's example does.
        let mut results: Vec<String> = Vec::new();
        for (l, r) in numap.results(left)?.zip(numap.results(right)?) {
            for item in [l, r] {
                match item {
                    Ok(v) => results.push(v.to_string()),
                    Err(e) => println!("error: {e}"),
                }
            }
        }
        let order = log.lock().unwrap_or_else(PoisonError::into_inner).join(" ");
        println!("stride {stride}: evaluated {order}");
        println!("          results   {}", results.join(" "));
        outputs.push(results);
    }
    let same = outputs.windows(2).all(|w| w[0] == w[1]);
    println!("same results for every stride: {same}");
    Ok(())
}
