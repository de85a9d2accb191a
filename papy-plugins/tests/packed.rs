//! A plugin's batch entry point on packed values (what a process worker
//! hands it: a frame's bytes, not decoded on the host side).

mod support;

use papy_core::protocol::packed::{decode_values, encode_values};
use papy_core::{registry, ErrorKind, Value};
use papy_plugins::load;
use support::plugin_file;

/// The packed entry point answers what single calls answer, value for
/// value, with failures (errors, panics) by position and nil in their place.
#[test]
fn packed_batch_calls_give_what_single_calls_give() {
    load(plugin_file("math")).expect("load math");
    let inputs = [
        Value::Int(3),
        Value::Int(-1),
        Value::Int(7),
        Value::from("x"),
    ];
    let mut bytes = Vec::new();
    encode_values(inputs.iter(), &mut bytes);
    for (name, args) in [
        ("math.fragile", vec![]),
        ("math.scale", vec![Value::Float(2.5)]),
    ] {
        let f = registry::lookup(name).expect("registered");
        let packed = f.packed.as_ref().expect("an ABI 1.2 plugin has one");
        let mut out = vec![0xc3]; // what was there stays
        let failed = packed(&bytes, inputs.len(), &args, &mut out).expect("answered");
        assert_eq!(out[0], 0xc3);
        let got = decode_values(&out[1..]).expect("packed results");
        assert_eq!(got.len(), inputs.len(), "{name}");
        for (i, x) in inputs.iter().enumerate() {
            let single = f.invoke(std::slice::from_ref(x), &args);
            match (single, failed.iter().find(|(k, _)| *k == i)) {
                (Ok(v), None) => assert_eq!(got[i], v, "{name} {i}"),
                (Err(s), Some((_, e))) => {
                    assert_eq!((e.kind(), e.message()), (s.kind(), s.message()));
                    assert_eq!(got[i], Value::Null);
                }
                other => panic!("{name} {i}: packed and single calls differ: {other:?}"),
            }
        }
        let kinds: Vec<ErrorKind> = failed.iter().map(|(_, e)| e.kind()).collect();
        if name == "math.fragile" {
            assert_eq!(kinds, [ErrorKind::Panic, ErrorKind::Conversion]);
        }
    }
}

/// A batch answered with the wrong number of results is refused as a
/// whole, and nothing is appended (the worker then runs the items one by
/// one).
#[test]
fn a_packed_batch_answered_short_is_refused_whole() {
    load(plugin_file("papy_fixture_bad_batch")).expect("a 1.2 plugin loads");
    let f = registry::lookup("bad_batch.f").expect("f");
    let mut bytes = Vec::new();
    encode_values(
        [Value::Int(0), Value::Int(1), Value::Int(2)].iter(),
        &mut bytes,
    );
    let mut out = vec![0xc0];
    let e = (f.packed.as_ref().expect("packed"))(&bytes, 3, &[], &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conversion);
    assert!(
        e.message().contains("answered a batch of 3 with 1 bytes"),
        "{e}"
    );
    assert_eq!(out, [0xc0]);
}
