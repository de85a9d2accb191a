//! The `math` example plugin: square, scale by an argument, a CPU-bound
//! function, and one that panics on bad input (to show panics stay inside).

use papy_sdk::worker;

/// Squares an integer.
#[worker]
fn square(x: i64) -> i64 {
    x * x
}

/// Multiplies by `factor`.
#[worker]
fn scale(x: f64, factor: f64) -> f64 {
    x * factor
}

/// Adds the items of two input pipes (a join of two numbers).
#[worker]
fn add((a, b): (i64, i64)) -> i64 {
    a + b
}

/// Burns CPU: `rounds` rounds of an LCG seeded with `x`; returns the low bit.
#[worker]
fn burn(x: i64, rounds: i64) -> i64 {
    let mut acc = x as u64;
    for _ in 0..rounds {
        acc = std::hint::black_box(
            acc.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    (acc & 1) as i64
}

/// Returns its input; panics on negative numbers.
#[worker]
fn fragile(x: i64) -> i64 {
    if x < 0 {
        panic!("fragile got a negative number: {x}");
    }
    x
}

/// Returns its input; aborts the whole process (no unwinding, nothing to
/// catch) on `at`: what a native crash in a plugin does.
#[worker]
fn crash(x: i64, at: i64) -> i64 {
    if x == at {
        std::process::abort();
    }
    x
}

papy_sdk::export_plugin!(name = "math");
