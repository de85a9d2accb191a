//! Misuse of `#[worker]` fails to compile with a clear message (built
//! against the SDK alone, so trybuild compiles only its small tree).

#[test]
fn worker_misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
