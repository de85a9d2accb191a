//! Schedule fuzzing: random DAGs on random pools (thread, process, mixed,
//! shared NuMaps, chained nodes, produce / consume / spawn) with random
//! delays at every hand-off of the engine give exactly the linear output.
//! `PAPY_FUZZ_CASES` sets the number of cases (default 200); the `soak`
//! example runs thousands.

#[path = "support/fuzz.rs"]
mod fuzz;

papy::enable_test_support!();

fn cases() -> u64 {
    std::env::var("PAPY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[test]
fn random_dags_on_random_pools_under_random_delays_conserve_every_item() {
    fuzz::check_many(0, cases(), true);
}
