use papy_sdk::worker;

#[worker]
fn constant() -> i64 {
    1
}

fn main() {}
