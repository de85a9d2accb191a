use papy::worker;

#[worker]
fn generic<T: Clone>(x: T) -> T {
    x
}

fn main() {}
