use papy::worker;

#[worker]
fn constant() -> i64 {
    1
}

fn main() {}
