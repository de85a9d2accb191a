use crate::{Value, Worker};

fn call(name: &str, v: Value) -> Result<Value, String> {
    let w = Worker::new(name).map_err(|e| e.to_string())?;
    w.call(&[v]).map_err(|e| e.to_string())
}

#[test]
fn json_and_msgpack_round_trip() {
    let v = Value::map([("a", Value::list([1, 2])), ("b", Value::from("x"))]);
    let j = call("papy.json_dumps", v.clone()).unwrap();
    assert_eq!(j, Value::from(r#"{"a":[1,2],"b":"x"}"#));
    assert_eq!(call("papy.json_loads", j).unwrap(), v);
    let m = call("papy.msgpack_dumps", v.clone()).unwrap();
    assert!(m.as_bytes().is_some());
    assert_eq!(call("papy.msgpack_loads", m).unwrap(), v);
}

#[test]
fn bad_input_names_the_problem() {
    let e = call("papy.json_loads", Value::from("{nope")).unwrap_err();
    assert!(e.contains("not JSON"), "{e}");
    let e = call("papy.json_loads", Value::from(3)).unwrap_err();
    assert!(e.contains("got a int"), "{e}");
    let e = call("papy.msgpack_loads", Value::from(&[0xc1u8][..])).unwrap_err();
    assert!(e.contains("not MessagePack"), "{e}");
}
