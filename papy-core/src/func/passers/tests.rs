use crate::{Value, Worker};

fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

fn run(name: &str, args: &[(&str, Value)], inbox: &[Value]) -> Result<Value, String> {
    let w = Worker::with_named(name, args.iter().cloned()).map_err(|e| e.to_string())?;
    w.call(inbox).map_err(|e| e.to_string())
}

#[test]
fn passers() {
    let inbox = [v(10), v(11), v(12)];
    assert_eq!(run("papy.plugger", &[], &inbox), Ok(Value::Null));
    assert_eq!(run("papy.ipasser", &[], &inbox), Ok(v(10)));
    assert_eq!(run("papy.ipasser", &[("i", v(2))], &inbox), Ok(v(12)));
    assert!(run("papy.ipasser", &[("i", v(5))], &inbox)
        .unwrap_err()
        .contains("no element 5"));
    assert_eq!(
        run("papy.npasser", &[("n", v(2))], &inbox),
        Ok(Value::list([10, 11]))
    );
    assert_eq!(
        run("papy.npasser", &[], &inbox),
        Ok(Value::list([10, 11, 12]))
    );
    assert_eq!(
        run("papy.spasser", &[("s", Value::list([2, 0]))], &inbox),
        Ok(Value::list([10, 12]))
    );
}

#[test]
fn zippers() {
    let inbox = [
        Value::list([1, 2]),
        Value::list([3, 4]),
        Value::list([5, 6]),
    ];
    assert_eq!(
        run("papy.nzipper", &[("n", v(2))], &inbox),
        Ok(Value::list([Value::list([1, 3]), Value::list([2, 4])]))
    );
    assert_eq!(
        run("papy.szipper", &[("s", Value::list([0, 2]))], &inbox),
        Ok(Value::list([Value::list([1, 5]), Value::list([2, 6])]))
    );
    assert!(run("papy.nzipper", &[], &[v(1)])
        .unwrap_err()
        .contains("not a list"));
}

#[test]
fn joiners() {
    let inbox = [v("a"), v("b"), v("c")];
    assert_eq!(
        run("papy.njoiner", &[("n", v(2)), ("join", v("-"))], &inbox),
        Ok(v("a-b"))
    );
    assert_eq!(
        run(
            "papy.sjoiner",
            &[("s", Value::list([0, 2])), ("join", v("+"))],
            &inbox
        ),
        Ok(v("a+c"))
    );
    assert_eq!(run("papy.sjoiner", &[], &inbox), Ok(v("abc")));
}
