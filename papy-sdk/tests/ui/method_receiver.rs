use papy_sdk::worker;

struct S;

impl S {
    #[worker]
    fn method(&self, x: i64) -> i64 {
        x
    }
}

fn main() {}
