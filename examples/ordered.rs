//! Port of PaPy's `doc/examples/ordered.py`: ordered and unordered NuMap results.
//!
//! An ordered NuMap (the default) returns each task's results in input
//! order, waiting for a slow item; an unordered one returns them as they
//! are computed, so the slow item comes last.

use std::time::Duration;

use papy::{worker, NuMap, Worker};

/// Sleeps on "sleep", returns the element.
#[worker]
fn sleeper(element: String) -> String {
    if element == "sleep" {
        std::thread::sleep(Duration::from_millis(300));
    }
    element
}

fn main() -> Result<(), papy::Error> {
    for ordered in [true, false] {
        // One item per job, up to four in flight: the awake items overtake the sleeping one.
        let numap = NuMap::builder()
            .workers(2)
            .stride(1)
            .buffer(4)
            .ordered(ordered)
            .build()?;
        let task = numap.add_task(
            Worker::new("sleeper")?,
            ["awake", "sleep", "awake", "awake"],
        )?;
        numap.start()?;
        let results: Vec<String> = numap
            .results(task)?
            .map(|item| match item {
                Ok(v) => v.to_string(),
                Err(e) => format!("error: {e}"),
            })
            .collect();
        let how = if ordered {
            "ordered (input order)"
        } else {
            "unordered (completion order)"
        };
        println!("{how:<30} {results:?}");
    }
    Ok(())
}
