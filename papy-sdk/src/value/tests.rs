use super::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dot,
    Circle(f64),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Rec {
    name: String,
    tags: Vec<String>,
    score: Option<f64>,
    shape: Shape,
    raw: serde_bytes_like::Raw,
}

mod serde_bytes_like {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    #[derive(Debug, PartialEq)]
    pub(super) struct Raw(pub Vec<u8>);
    impl Serialize for Raw {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
            let v = crate::Value::deserialize(d)?;
            match v {
                crate::Value::Bytes(b) => Ok(Raw(b.to_vec())),
                crate::Value::List(l) => Ok(Raw(l
                    .iter()
                    .map(|x| x.as_int().unwrap_or(0) as u8)
                    .collect())),
                other => Err(serde::de::Error::custom(format!("bytes, got {other:?}"))),
            }
        }
    }
}

#[test]
fn struct_round_trip_through_value() {
    for shape in [Shape::Dot, Shape::Circle(1.5), Shape::Rect { w: 2, h: 3 }] {
        let r = Rec {
            name: "n".into(),
            tags: vec!["a".into(), "b".into()],
            score: None,
            shape,
            raw: serde_bytes_like::Raw(vec![0, 255]),
        };
        let v = to_value(&r).unwrap();
        assert_eq!(v.get("name"), Some(&Value::from("n")));
        assert_eq!(v.get("score"), Some(&Value::Null));
        assert_eq!(
            v.get("raw").and_then(Value::as_bytes),
            Some(&[0u8, 255][..])
        );
        let back: Rec = from_value(&v).unwrap();
        assert_eq!(back, r);
    }
}

#[test]
fn type_mismatch_names_what_was_found() {
    let err = from_value::<i64>(&Value::from("x")).unwrap_err();
    assert!(err.0.contains("string"), "{err}");
    let err = from_value::<Vec<i64>>(&Value::from(3)).unwrap_err();
    assert!(err.0.contains("int 3"), "{err}");
}

#[test]
fn int_widens_to_float_and_big_u64_is_float() {
    assert_eq!(
        from_value::<f64>(&Value::Int(3)).ok(),
        None::<f64>.or(Some(3.0))
    );
    assert_eq!(Value::from(u64::MAX), Value::Float(u64::MAX as f64));
}

#[test]
fn clones_share_large_payloads() {
    let big = Value::from("x".repeat(1 << 20));
    let c = big.clone();
    match (&big, &c) {
        (Value::Str(a), Value::Str(b)) => assert!(Arc::ptr_eq(a, b)),
        _ => panic!("not strings"),
    }
}

#[test]
fn ordering_is_total_and_consistent() {
    let mut v = [
        Value::from("b"),
        Value::Float(f64::NAN),
        Value::Int(2),
        Value::Null,
        Value::Float(1.0),
        Value::from("a"),
    ];
    v.sort();
    assert_eq!(v[0], Value::Null);
    assert_eq!(v[1], Value::Int(2));
    assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    assert_eq!(v[4], Value::from("a"));
}

#[test]
fn json_round_trip_via_serde() {
    let v = Value::map([("k", Value::list([1, 2])), ("s", Value::from("x"))]);
    let j = serde_json::to_string(&v).unwrap();
    assert_eq!(j, r#"{"k":[1,2],"s":"x"}"#);
    let back: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(back, v);
}

#[test]
fn accessors() {
    let v = Value::list([Value::Int(1), Value::from(2.5), Value::from(true)]);
    assert_eq!(v.index(0).and_then(Value::as_int), Some(1));
    assert_eq!(v.index(1).and_then(Value::as_float), Some(2.5));
    assert_eq!(v.index(2).and_then(Value::as_bool), Some(true));
    assert_eq!(v.index(3), None);
    assert_eq!(Value::Int(1).as_str(), None);
    assert_eq!(v.kind(), "list");
    assert_eq!(Value::from("hi").to_string(), "hi");
}
