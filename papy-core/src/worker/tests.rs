use super::*;

fn int(inbox: &[Value]) -> i64 {
    inbox[0].as_int().unwrap_or(0)
}

#[test]
fn chain_feeds_results_left_to_right() {
    let add1 = Worker::from_fn("add1", |i: &[Value]| {
        Ok::<_, String>(Value::Int(int(i) + 1))
    });
    let dbl = Worker::from_fn("dbl", |i: &[Value]| Ok::<_, String>(Value::Int(int(i) * 2)));
    let w = add1.clone().then(dbl.clone());
    assert_eq!(w.call(&[Value::Int(3)]).unwrap(), Value::Int(8));
    let w = dbl.then(add1);
    assert_eq!(w.call(&[Value::Int(3)]).unwrap(), Value::Int(7));
    assert_eq!(w.name(), "dbl>add1");
    assert!(!w.is_portable());
    assert_eq!(w.first_closure(), Some("dbl"));
}

#[test]
fn function_error_and_panic_become_item_errors() {
    let bad = Worker::from_fn("bad", |_: &[Value]| Err::<Value, _>("nope"));
    let e = bad.eval(&[Ok(Value::Int(1))], "n1", 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Function);
    assert_eq!(e.function(), Some("bad"));
    assert_eq!(e.path(), ["n1"]);
    assert_eq!(e.index(), Some(4));
    let boom = Worker::from_fn(
        "boom",
        |_: &[Value]| -> std::result::Result<Value, String> { panic!("kaboom") },
    );
    let e = boom.eval(&[Ok(Value::Int(1))], "n2", 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic);
    assert!(e.message().contains("kaboom"));
}

#[test]
fn eval_each_catches_a_panic_and_goes_on_with_the_next_item() {
    let w = Worker::from_fn("boom_on_2", |i: &[Value]| {
        if int(i) == 2 {
            panic!("two")
        }
        Ok::<_, String>(Value::Int(int(i) * 10))
    });
    let mut out = Vec::new();
    w.eval_each(
        5,
        |i| Ok(Value::Int(i as i64)),
        |i| 100 + i as u64,
        "n",
        |i, r| out.push((i, r)),
    );
    let got: Vec<(usize, std::result::Result<i64, Option<u64>>)> = out
        .into_iter()
        .map(|(i, r)| (i, r.map(|v| int(&[v])).map_err(|e| e.index())))
        .collect();
    assert_eq!(
        got,
        [
            (0, Ok(0)),
            (1, Ok(10)),
            (2, Err(Some(102))),
            (3, Ok(30)),
            (4, Ok(40))
        ]
    );
}

#[test]
fn error_in_inbox_skips_call_and_extends_path() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let w = Worker::from_fn("count", |_: &[Value]| {
        CALLS.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(Value::Null)
    });
    let upstream = ItemError::new(ErrorKind::Function, "x").at("a", 2);
    let e = w
        .eval(&[Ok(Value::Int(1)), Err(upstream)], "b", 2)
        .unwrap_err();
    assert_eq!(e.path(), ["a", "b"]);
    assert_eq!(CALLS.load(Ordering::SeqCst), 0);
}

#[test]
fn argument_binding_by_position_and_name() {
    let w = Worker::with_named(
        "papy.njoiner",
        [("n", Value::Int(2)), ("join", Value::from("-"))],
    )
    .unwrap();
    let inbox = [Value::from("a"), Value::from("b"), Value::from("c")];
    assert_eq!(w.call(&inbox).unwrap(), Value::from("a-b"));
    let w = Worker::with_args("papy.njoiner", [Value::Null, Value::from("+")]).unwrap();
    assert_eq!(w.call(&inbox).unwrap(), Value::from("a+b+c"));
    let err = Worker::with_named("papy.njoiner", [("nope", 1)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("join"), "{err}");
    let err = Worker::with_args("papy.ipasser", [1, 2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes 1 argument"), "{err}");
    let err = Worker::new("papy.szipper").unwrap_err().to_string();
    assert!(err.contains("missing argument `s`"), "{err}");
}
