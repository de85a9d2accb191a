use super::*;
use crate::protocol::packed::{decode_values, encode_values};
use crate::worker::Worker;

fn packed(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_values(values.iter(), &mut out);
    out
}

fn le(indices: &[u64]) -> Vec<u8> {
    indices.iter().flat_map(|i| i.to_le_bytes()).collect()
}

fn passer() -> Vec<Call> {
    vec![Call {
        function: "papy.ipasser".into(),
        args: vec![],
    }]
}

#[test]
fn ever_new_chains_keep_a_bounded_cache_and_the_hot_one_first() {
    let mut runner = TaskRunner::default();
    let add = |n: i64| {
        vec![Call {
            function: "papy.nzipper".into(),
            args: vec![Value::Int(n)],
        }]
    };
    for n in 0..1000 {
        let _ = runner.run(
            add(n),
            "node",
            &[0],
            WireInboxes::Single(vec![Value::Int(1)]),
        );
        let _ = runner.run(
            passer(),
            "node",
            &[0],
            WireInboxes::Single(vec![Value::Int(1)]),
        );
    }
    assert_eq!(runner.cache.len(), CHAIN_CACHE);
    // The chain used all along stayed; the first of the new ones went.
    assert!(runner.cache.iter().any(|(c, _)| *c == passer()));
    assert!(!runner.cache.iter().any(|(c, _)| *c == add(0)));
    assert!(runner.cache.iter().any(|(c, _)| *c == add(999)));
}

#[test]
fn packed_tasks_run_in_one_pass_and_match_the_batch_path() {
    let inputs = [Value::Int(5), Value::from("x"), Value::Int(70_000)];
    let mut runner = TaskRunner::default();
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    let p = packed(&inputs);
    runner.run_packed(passer(), "n", &le(&[7, 8, 9]), &p, &mut values, &mut errors);
    assert!(errors.is_empty());
    assert_eq!(decode_values(&values).unwrap(), inputs);
    let batch = runner.run(
        passer(),
        "n",
        &[7, 8, 9],
        WireInboxes::Single(inputs.to_vec()),
    );
    assert_eq!(batch, inputs.iter().cloned().map(Ok).collect::<Vec<_>>());
}

#[test]
fn a_malformed_value_or_a_short_batch_fails_only_its_items() {
    let mut p = packed(&[Value::Int(1)]);
    p.push(0xc1); // never used in MessagePack
    let mut runner = TaskRunner::default();
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    runner.run_packed(passer(), "n", &le(&[0, 1, 2]), &p, &mut values, &mut errors);
    assert_eq!(
        decode_values(&values).unwrap(),
        [Value::Int(1), Value::Null, Value::Null]
    );
    let positions: Vec<u32> = errors.iter().map(|e| e.0).collect();
    assert_eq!(positions, [1, 2]);
    assert!(
        errors[0].1.message.contains("malformed value"),
        "{errors:?}"
    );
    assert!(errors[1].1.message.contains("fewer values"), "{errors:?}");
    assert_eq!((errors[0].1.index, errors[1].1.index), (Some(1), Some(2)));
}

/// What a worker answers to a host `Hello` declaring `functions` and
/// asking for `init`: its init `Result`'s errors, and how `serve` ended.
fn init_answer(functions: &[&str], init: &str) -> (Vec<WireError>, bool) {
    let mut hello = Hello::here(functions.iter().map(|f| f.to_string()).collect(), vec![]);
    hello.init = Some(Call {
        function: init.into(),
        args: vec![],
    });
    let mut input = Vec::new();
    write_frame(&mut input, &Frame::Hello(hello)).unwrap();
    write_frame(&mut input, &Frame::Shutdown).unwrap();
    let mut output = Vec::new();
    let served = serve(&input[..], &mut output, vec![]);
    let mut read = &output[crate::protocol::GREETING.len()..];
    assert!(matches!(
        crate::protocol::read_frame(&mut read, MAX_FRAME),
        Ok(Frame::Hello(_))
    ));
    match crate::protocol::read_frame(&mut read, MAX_FRAME) {
        Ok(Frame::Result { id, results }) => {
            assert_eq!(id, crate::protocol::INIT_ID);
            let errors = results.errors.into_iter().map(|(_, e)| e).collect();
            (errors, served.is_ok())
        }
        other => panic!("no init result: {other:?}"),
    }
}

#[test]
fn an_init_must_be_among_the_functions_its_host_declared() {
    let (errors, ok) = init_answer(&["papy.njoiner"], "papy.ipasser");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .message
            .contains("`papy.ipasser` is not among the functions this worker's host declared"),
        "{errors:?}"
    );
    assert!(!ok, "the worker ends after a refused init");
    // Declared, or no list at all: it runs.
    for declared in [&["papy.njoiner", "papy.ipasser"][..], &[]] {
        let (errors, ok) = init_answer(declared, "papy.ipasser");
        assert!(errors.is_empty() && ok, "{declared:?}: {errors:?}");
    }
}

#[test]
fn an_unknown_chain_fails_every_packed_item_with_the_reason() {
    let chain = vec![Call {
        function: "no.such.function".into(),
        args: vec![],
    }];
    let mut runner = TaskRunner::default();
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    let p = packed(&[Value::Int(1), Value::Int(2)]);
    runner.run_packed(chain, "n", &le(&[3, 4]), &p, &mut values, &mut errors);
    assert_eq!(errors.len(), 2);
    assert!(errors[1].1.message.contains("cannot run here"));
    assert_eq!(errors[1].1.index, Some(4));
}

/// The calls a packed batch entry point got: its bytes and item count.
type Calls = std::sync::Arc<std::sync::Mutex<Vec<(Vec<u8>, usize)>>>;

/// A worker of one function with a packed batch entry point (a plugin's):
/// it doubles integers and fails on 3; `whole` says whether the packed
/// entry point answers, and the calls it got are recorded.
fn packed_doubler(whole: bool) -> (Worker, Calls) {
    use crate::registry::Function;
    use std::sync::{Arc, Mutex};
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let double = |v: &Value| match v.as_int() {
        Some(3) => Err(ItemError::new(ErrorKind::Function, "three")),
        Some(i) => Ok(Value::Int(2 * i)),
        None => Err(ItemError::new(ErrorKind::Conversion, "not an int")),
    };
    let mut f = Function::closure(
        "t.double",
        Arc::new(move |inbox: &[Value], _: &[Value]| double(&inbox[0])),
    );
    f.packed = Some(Arc::new(
        move |bytes: &[u8], n: usize, _: &[Value], out: &mut Vec<u8>| {
            seen.lock().unwrap().push((bytes.to_vec(), n));
            if !whole {
                out.push(0xc0); // written, then given up: must not show
                return Err(ItemError::new(ErrorKind::Conversion, "cannot read it"));
            }
            let mut failed = Vec::new();
            for (i, v) in decode_values(bytes).unwrap().iter().enumerate() {
                match double(v) {
                    Ok(r) => crate::protocol::packed::encode_value(&r, out),
                    Err(e) => {
                        out.push(0xc0);
                        failed.push((i, e));
                    }
                }
            }
            Ok(failed)
        },
    ));
    let w = Worker::from_function(Arc::new(f), crate::worker::Args::Positional(vec![])).unwrap();
    (w, calls)
}

/// A function with a packed batch entry point gets the frame's bytes as
/// they came, in one call, and its packed results are the answer (errors
/// named by node, index and function); when that entry point gives up on
/// the batch, its items run one by one and nothing it wrote remains.
#[test]
fn a_packed_batch_function_gets_the_frame_bytes_whole() {
    let chain = vec![Call {
        function: "t.double".into(),
        args: vec![],
    }];
    let inputs = [Value::Int(1), Value::Int(3), Value::Int(5)];
    let p = packed(&inputs);
    for whole in [true, false] {
        let (w, calls) = packed_doubler(whole);
        let mut runner = TaskRunner::default();
        runner.cache.push((chain.clone(), Ok(w)));
        let (mut values, mut errors) = (Vec::new(), Vec::new());
        runner.run_packed(
            chain.clone(),
            "n",
            &le(&[7, 8, 9]),
            &p,
            &mut values,
            &mut errors,
        );
        assert_eq!(*calls.lock().unwrap(), [(p.clone(), 3)], "whole: {whole}");
        assert_eq!(
            decode_values(&values).unwrap(),
            [Value::Int(2), Value::Null, Value::Int(10)],
            "whole: {whole}"
        );
        let [(1, e)] = errors.as_slice() else {
            panic!("one error, at position 1: {errors:?}")
        };
        assert_eq!(
            (e.message.as_str(), e.index, e.function.as_deref()),
            ("three", Some(8), Some("t.double")),
            "whole: {whole}"
        );
        assert_eq!(e.path, ["n"]);
    }
}
