use papy_sdk::worker;

#[worker]
fn generic<T: Clone>(x: T) -> T {
    x
}

fn main() {}
