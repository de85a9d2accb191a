use super::*;
use crate::protocol::packed::{decode_values, encode_values};

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
