use papy_sdk::worker;

#[worker(frobnicate)]
fn twice(x: i64) -> i64 {
    x * 2
}

fn main() {}
