use papy_sdk::worker;

pub struct NotSerde;

#[worker]
fn takes_non_serde(x: NotSerde) -> i64 {
    let _ = x;
    1
}

fn main() {}
