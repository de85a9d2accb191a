//! The `papy` command line.
fn main() {}
