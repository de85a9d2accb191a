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

/// Issue 28's third edge under random delays: 1 worker, stride 1, a chain
/// of two tasks sleeping their input (in ms): the worker starts them in
/// PaPy's order, t0[0], t1[0], t0[1], t1[1], ... (before, t0[1] and t0[2],
/// queued first, sometimes ran before t1[1]).
#[test]
fn downstream_work_goes_first_under_random_delays() {
    use std::sync::{Arc, Mutex};
    let papy: Vec<(usize, i64)> = [4, 2, 1].iter().flat_map(|&x| [(0, x), (1, x)]).collect();
    for seed in 0..12u64 {
        papy::chaos::enable(seed, std::time::Duration::from_micros(300));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sleeper = |task: usize| {
            let log = log.clone();
            papy::Worker::typed(format!("fz_sleep{task}"), move |ms: i64| {
                log.lock().unwrap().push((task, ms));
                std::thread::sleep(std::time::Duration::from_millis(ms.unsigned_abs()));
                ms
            })
        };
        let m = papy::NuMap::builder().workers(1).stride(1).build().unwrap();
        let t0 = m.add_task(sleeper(0), vec![4i64, 2, 1]).unwrap();
        let t1 = m
            .add_chained(sleeper(1), t0, papy::TaskOptions::default())
            .unwrap();
        m.start().unwrap();
        let got: Vec<i64> = m
            .results(t1)
            .unwrap()
            .map(|x| x.unwrap().as_int().unwrap())
            .collect();
        papy::chaos::disable();
        assert_eq!(got, vec![4, 2, 1]);
        assert_eq!(*log.lock().unwrap(), papy, "seed {seed}");
    }
}
