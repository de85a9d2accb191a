//! Soak test of the scheduling core: `cargo run --release --example soak -- N [FIRST]`
//! runs N random cases of the schedule-fuzzing harness (random DAGs on
//! thread, process and mixed pools with random delays at every hand-off)
//! from seed FIRST (default 1000, past the seeds CI runs) and reports the
//! failing seeds, if any.

#[path = "../tests/support/fuzz.rs"]
mod fuzz;

fn main() {
    papy::worker_main();
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let first: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let start = std::time::Instant::now();
    fuzz::check_many(first, n, true);
    println!(
        "{n} cases from seed {first}: every item conserved ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
}
