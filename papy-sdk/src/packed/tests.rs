#[test]
fn a_frame_that_decodes_past_its_budget_is_refused() {
    // 8 MiB of empty lists fits 48 times itself (384 MiB) but not the
    // cap of 256 MiB: refused before that much is allocated.
    let hostile = vec![0x90u8; 8 << 20];
    const { assert!(8 * 48 * (1 << 20) > DECODE_CAP) };
    let e = decode_values(&hostile).unwrap_err();
    assert!(e.contains("at most 256 MiB"), "{e}");
    let mut u = Unpacker::new(&hostile);
    assert!(std::iter::from_fn(|| u.next_value()).any(|v| v.is_err()));
    // Large honest input past the cap keeps DECODE_FLOOR times itself.
    assert_eq!(decode_budget(300 << 20), 4 * (300 << 20));
}

#[test]
fn decoded_values_are_bounded_by_a_factor_of_their_bytes() {
    // 4 MiB of empty lists would take about 300 MiB decoded: refused.
    let hostile = vec![0x90u8; 4 << 20];
    let e = decode_values(&hostile).unwrap_err();
    assert!(e.contains("times the input"), "{e}");
    let nested = [vec![0xdcu8, 0xff, 0xff], vec![0x90u8; 0xffff]].concat();
    assert!(decode_value(&nested).is_err());
    // Honest data decodes: a million small integers, strings, lists.
    let ints = vec![7u8; 1 << 20];
    assert_eq!(decode_values(&ints).unwrap().len(), 1 << 20);
    let mut mixed = Vec::new();
    let v = Value::list([
        Value::from("name"),
        Value::Int(300),
        Value::list([Value::Int(1)]),
    ]);
    encode_values(std::iter::repeat_n(&v, 10_000), &mut mixed);
    assert_eq!(decode_values(&mixed).unwrap().len(), 10_000);
}
use super::*;

fn samples() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(127),
        Value::Int(128),
        Value::Int(-1),
        Value::Int(-33),
        Value::Int(70_000),
        Value::Int(-70_000),
        Value::Int(i64::MAX),
        Value::Int(i64::MIN),
        Value::Float(1.5),
        Value::Float(f64::NAN),
        Value::from(""),
        Value::from("x".repeat(40)),
        Value::from("y".repeat(300)),
        Value::from("z".repeat(70_000)),
        Value::from(&b"\x00\xff"[..]),
        Value::from(vec![1u8; 300].as_slice()),
        Value::list((0..20).map(Value::from)),
        Value::map([("a", Value::list([1, 2])), ("b", Value::Null)]),
        Value::map((0..20).map(|i| (i, i * 2))),
    ]
}

#[test]
fn round_trips_and_matches_rmp_serde() {
    let vals = samples();
    let mut out = Vec::new();
    for v in &vals {
        encode_value(v, &mut out);
    }
    assert_eq!(decode_values(&out).unwrap(), vals);
    // Interoperable with any MessagePack reader and writer.
    for v in &vals {
        let theirs = rmp_serde::to_vec(v).unwrap();
        assert_eq!(&decode_value(&theirs).unwrap(), v);
        let mut ours = Vec::new();
        encode_value(v, &mut ours);
        assert_eq!(&rmp_serde::from_slice::<Value>(&ours).unwrap(), v);
    }
    let big = rmp_serde::to_vec(&u64::MAX).unwrap();
    assert_eq!(decode_value(&big).unwrap(), Value::Float(u64::MAX as f64));
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let mut out = Vec::new();
    encode_value(
        &Value::list([Value::from("hello"), Value::from(1)]),
        &mut out,
    );
    for cut in 0..out.len() {
        assert!(decode_value(&out[..cut]).is_err(), "cut at {cut}");
    }
    assert!(decode_value(&[0xc1]).unwrap_err().contains("marker 0xc1"));
    // A huge announced length does not allocate it.
    assert!(decode_value(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    // Deep nesting is refused instead of overflowing the stack.
    let deep = vec![0x91u8; 100_000];
    assert!(decode_value(&deep).unwrap_err().contains("nested deeper"));
    // As deep as a pipeline on threads builds in practice: decoded.
    let mut ok = vec![0x91u8; 250];
    ok.push(0x01);
    assert!(decode_value(&ok).is_ok());
    assert!(decode_value(&[0xa2, 0xff, 0xfe])
        .unwrap_err()
        .contains("string"));
}

/// `value_len` steps over exactly one value, whatever its kind, and
/// refuses what decoding refuses (so bytes passed on unread are bytes the
/// host can read).
#[test]
fn value_len_steps_over_one_value_and_refuses_what_decoding_refuses() {
    let mut map = crate::value::Map::new();
    map.insert(
        Value::from("k"),
        Value::list([Value::Float(1.5), Value::Null]),
    );
    let values = [
        Value::Int(-1),
        Value::Int(1 << 40),
        Value::from("é".repeat(40)),
        Value::Bytes(vec![1u8; 300].into()),
        Value::Map(map.into()),
        Value::list((0..20).map(Value::Int)),
        Value::Bool(true),
    ];
    let mut buf = Vec::new();
    encode_values(values.iter(), &mut buf);
    let mut rest = buf.as_slice();
    for v in &values {
        let n = value_len(rest).unwrap();
        assert_eq!(decode_value(&rest[..n]).as_ref(), Ok(v));
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
    // Refused: a truncated string, invalid UTF-8, an unused marker, a list
    // claiming more elements than there are, nesting past MAX_DEPTH.
    let deep = [vec![0x91u8; MAX_DEPTH + 2], vec![0xc0]].concat();
    for bad in [
        &[0xa3, b'a'][..],
        &[0xa2, 0xff, 0xfe],
        &[0xc1],
        &[0x93, 0x01],
        &deep,
    ] {
        assert!(value_len(bad).is_err(), "{bad:?}");
        assert!(decode_value(bad).is_err(), "{bad:?}");
    }
}
