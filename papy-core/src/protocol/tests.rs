use serde::Serialize;

use super::framing::KEEP_BUFFER;
use super::*;
use crate::error::{ErrorKind, ItemError};
use crate::value::Value;

fn round_trip(f: &Frame) -> Frame {
    let mut buf = Vec::new();
    write_frame(&mut buf, f).unwrap();
    read_frame(&mut buf.as_slice(), MAX_FRAME).unwrap()
}

#[test]
fn a_result_holds_no_more_errors_than_values_and_short_paths() {
    let e = WireError {
        kind: 0,
        message: "m".into(),
        function: None,
        path: vec!["n".into(); 1000],
        index: None,
    };
    let frame = |values: usize, errors: usize| Frame::Result {
        id: 1,
        results: WireResults {
            values: vec![Value::Null; values],
            errors: (0..errors as u32).map(|k| (k, e.clone())).collect(),
        },
    };
    let mut buf = Vec::new();
    write_frame(&mut buf, &frame(2, 3)).unwrap();
    let err = read_frame(&mut buf.as_slice(), MAX_FRAME).unwrap_err();
    assert!(
        err.to_string().contains("more errors than the 2 results"),
        "{err}"
    );
    let Frame::Result { results, .. } = round_trip(&frame(2, 2)) else {
        unreachable!()
    };
    assert_eq!(results.errors.len(), 2);
    assert_eq!(results.errors[0].1.path.len(), MAX_PEER_PATH);
}

#[test]
fn frames_round_trip() {
    let frames = [
        Frame::Hello(Hello::here(
            vec!["a.b".into()],
            vec![("p".into(), "00".into())],
        )),
        Frame::Task {
            id: 7,
            chain: vec![Call {
                function: "f".into(),
                args: vec![Value::Int(1)],
            }],
            node: "n".into(),
            indices: vec![3],
            inboxes: WireInboxes::Many(vec![vec![
                Value::from("x"),
                Value::Bytes(vec![0u8, 1].into()),
            ]]),
        },
        Frame::Result {
            id: 7,
            results: WireResults::from_items(&[
                Ok(Value::Float(1.5)),
                Err(ItemError::new(ErrorKind::Panic, "p")
                    .with_function("f")
                    .at("n", 3)
                    .via("m")),
            ]),
        },
        Frame::Shutdown,
    ];
    for f in &frames {
        assert_eq!(&round_trip(f), f);
    }
    let Frame::Result { results, .. } = &frames[2] else {
        unreachable!()
    };
    let items = results.clone().into_items();
    assert_eq!(items[0], Ok(Value::Float(1.5)));
    let e = items[1].clone().unwrap_err();
    // The path and index crossed the wire, but are the worker's claims:
    // the host drops them and sets its own when it delivers.
    assert_eq!(
        (e.kind(), e.function(), e.path(), e.index()),
        (ErrorKind::Panic, Some("f"), &[][..], None)
    );
}

/// A frame's bytes on the wire.
fn bytes(f: &dyn erased::Frameish) -> Vec<u8> {
    let mut out = Vec::new();
    f.write(&mut out);
    out
}

#[test]
fn borrowed_tasks_encode_exactly_as_owned_ones() {
    let chain = vec![Call {
        function: "f".into(),
        args: vec![Value::Int(1)],
    }];
    let values = [Value::Int(300), Value::from("x"), Value::Null];
    let mut refs = Vec::new();
    packed::encode_values(values.iter(), &mut refs);
    let mut idx = Vec::new();
    for i in [4, 5, 6] {
        packed::pack_index(i, &mut idx);
    }
    let owned = Frame::Task {
        id: 9,
        chain: chain.clone(),
        node: "n".into(),
        indices: vec![4, 5, 6],
        inboxes: WireInboxes::Single(values.to_vec()),
    };
    let borrowed = FrameRef::Task {
        id: 9,
        chain: &chain,
        node: "n",
        indices: &idx,
        inboxes: InboxesRef::Single(&refs),
    };
    assert_eq!(bytes(&owned), bytes(&borrowed));
    let many = [vec![&values[0], &values[1]], vec![&values[2]]];
    let owned = Frame::Task {
        id: 9,
        chain: chain.clone(),
        node: "n".into(),
        indices: vec![4, 5],
        inboxes: WireInboxes::Many(vec![
            vec![values[0].clone(), values[1].clone()],
            vec![Value::Null],
        ]),
    };
    let borrowed = FrameRef::Task {
        id: 9,
        chain: &chain,
        node: "n",
        indices: &idx[..16],
        inboxes: InboxesRef::Many(&many),
    };
    assert_eq!(bytes(&owned), bytes(&borrowed));
}

#[test]
fn borrowed_results_encode_exactly_as_owned_ones() {
    let items = [
        Ok(Value::Float(1.5)),
        Err(ItemError::new(ErrorKind::Panic, "p").at("n", 3)),
        Ok(Value::from("y")),
    ];
    let owned = Frame::Result {
        id: 2,
        results: WireResults::from_items(&items),
    };
    let borrowed = FrameRef::Result {
        id: 2,
        results: ResultsRef::Items(&items),
    };
    assert_eq!(bytes(&owned), bytes(&borrowed));
    let Frame::Result { results, .. } = &owned else {
        unreachable!()
    };
    let mut packed = Vec::new();
    packed::encode_values(results.values.iter(), &mut packed);
    let borrowed = FrameRef::Result {
        id: 2,
        results: ResultsRef::Packed {
            values: &packed,
            errors: &results.errors,
        },
    };
    assert_eq!(bytes(&owned), bytes(&borrowed));
    // And a reused buffer reads them back.
    let mut stream = bytes(&borrowed);
    stream.extend(bytes(&owned));
    let mut r = stream.as_slice();
    let mut buf = Vec::new();
    for _ in 0..2 {
        assert_eq!(
            read_frame_with::<Frame>(&mut r, &mut buf, MAX_FRAME).unwrap(),
            owned
        );
    }
}

/// Frames of both kinds behind one trait object, for the test above.
mod erased {
    pub(super) trait Frameish {
        fn write(&self, out: &mut Vec<u8>);
    }
    impl<F: serde::Serialize> Frameish for F {
        fn write(&self, out: &mut Vec<u8>) {
            super::write_frame_with(out, &mut Vec::new(), self).unwrap();
        }
    }
}

#[test]
fn a_buffer_grown_by_a_large_frame_is_given_back() {
    let mut big = Vec::with_capacity(KEEP_BUFFER + 1);
    release_large(&mut big);
    assert_eq!(big.capacity(), 0);
    let mut small: Vec<u8> = Vec::with_capacity(1 << 16);
    release_large(&mut small);
    assert_eq!(small.capacity(), 1 << 16);
}

#[test]
fn greeting_is_found_after_noise_and_required() {
    let mut stream = b"running 1 test\nWelcome to host\n".to_vec();
    stream.extend_from_slice(GREETING);
    stream.extend_from_slice(b"rest");
    let mut r = stream.as_slice();
    skip_to_greeting(&mut r, 1 << 20).unwrap();
    assert_eq!(r, b"rest");
    let err = skip_to_greeting(&mut &b"no greeting here"[..], 1 << 20).unwrap_err();
    assert!(err.to_string().contains("no papy worker greeting"), "{err}");
    assert!(matches!(
        skip_to_greeting(&mut &b""[..], 10),
        Err(ProtocolError::Closed)
    ));
}

#[test]
fn truncated_oversized_and_malformed_frames_are_errors() {
    let mut buf = Vec::new();
    write_frame(&mut buf, &Frame::Shutdown).unwrap();
    let cut = &buf[..buf.len() - 1];
    assert!(matches!(
        read_frame(&mut &cut[..], MAX_FRAME),
        Err(ProtocolError::Truncated { .. })
    ));
    assert!(matches!(
        read_frame(&mut &buf[..2], MAX_FRAME),
        Err(ProtocolError::Truncated {
            expected: 4,
            got: 2
        })
    ));
    assert!(matches!(
        read_frame(&mut &b""[..], MAX_FRAME),
        Err(ProtocolError::Closed)
    ));
    let huge = (1u32 << 30).to_be_bytes();
    let err = read_frame(&mut &huge[..], MAX_FRAME).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let junk = [0, 0, 0, 2, 0xc1, 0xc1];
    assert!(matches!(
        read_frame(&mut &junk[..], MAX_FRAME),
        Err(ProtocolError::Malformed(_))
    ));
}

/// A worker that prints to its stdout: the host says so, quoting the
/// text, instead of reading a "frame" of 1.7 GB.
#[test]
fn text_where_a_frame_belongs_is_named_as_text() {
    let printed = b"Hello from my worker\nand more\n".to_vec();
    let err = read_frame(&mut &printed[..], MAX_FRAME).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the worker wrote text to its stdout (the protocol's channel): \"Hello from my worker\\nand more\\n\""
    );
    // Frames, whatever their length bytes, are still frames: a payload
    // starts with a map or string marker, never with a character.
    let mut frame = Vec::new();
    write_frame(&mut frame, &Frame::Shutdown).unwrap();
    assert_eq!(
        read_frame(&mut &frame[..], MAX_FRAME).unwrap(),
        Frame::Shutdown
    );
    let mut big = b"AAAA".to_vec();
    big.push(0x81);
    let err = read_frame(&mut &big[..], MAX_FRAME).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let err = read_frame(&mut &big[..], usize::MAX).unwrap_err();
    assert!(matches!(err, ProtocolError::Truncated { .. }), "{err}");
}

/// A frame that does not decode says which field of which frame.
#[test]
fn a_malformed_frame_names_its_frame_and_field() {
    use crate::protocol::packed::encode_value;
    let error = Value::map([
        ("kind", Value::from("function")),
        ("message", Value::from("m")),
        ("function", Value::Null),
        ("path", Value::list(Vec::<Value>::new())),
        ("index", Value::Null),
    ]);
    let frame = Value::map([(
        "Result",
        Value::map([
            ("id", Value::Int(3)),
            (
                "results",
                Value::map([
                    ("values", Value::Bytes(vec![0xc0].into())),
                    ("errors", Value::list([Value::list([Value::Int(0), error])])),
                ]),
            ),
        ]),
    )]);
    let mut body = Vec::new();
    encode_value(&frame, &mut body);
    let mut buf = (body.len() as u32).to_be_bytes().to_vec();
    buf.extend_from_slice(&body);
    let err = read_frame(&mut &buf[..], MAX_FRAME)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Result frame, field `Result.results.errors[0][1].kind`")
            && err.starts_with(
                "malformed frame: Result frame, field `Result.results.errors[0][1].kind`: "
            ),
        "{err}"
    );
}

#[test]
fn major_mismatch_is_refused_and_unknown_fields_ignored() {
    let mut h = Hello::here(vec![], vec![]);
    h.major = MAJOR + 1;
    let err = h.check().unwrap_err();
    assert!(
        err.contains("protocol version mismatch") && err.contains(&format!("{}.", MAJOR + 1)),
        "{err}"
    );
    // A newer peer's extra field is ignored.
    #[derive(Serialize)]
    struct Newer {
        major: u16,
        minor: u16,
        codec: String,
        papy_version: String,
        shiny_new_field: u32,
    }
    let body = rmp_serde::to_vec_named(&Newer {
        major: MAJOR,
        minor: MINOR + 3,
        codec: "msgpack".into(),
        papy_version: "9.9.9".into(),
        shiny_new_field: 1,
    })
    .unwrap();
    let h: Hello = rmp_serde::from_slice(&body).unwrap();
    assert!(h.check().is_ok());
    assert_eq!(h.minor, MINOR + 3);
}

/// A `Task` frame written with its packed values as a tail is the frame
/// written whole, byte for byte, at every size of `bin` header; a frame
/// that does not end with an empty `bin` is refused, nothing written.
#[test]
fn a_frame_written_with_its_values_as_a_tail_is_the_same_bytes() {
    let chain = [Call {
        function: "papy.ipasser".into(),
        args: vec![Value::Int(3)],
    }];
    let task = |values: &'static [u8]| FrameRef::Task {
        id: 9,
        chain: &chain,
        node: "n",
        indices: &[1, 0, 0, 0, 0, 0, 0, 0],
        inboxes: InboxesRef::Single(values),
    };
    for n in [0usize, 1, 255, 256, 65_535, 65_536, 70_000] {
        let values: &'static [u8] = Vec::leak(vec![7u8; n]);
        let (mut whole, mut split) = (Vec::new(), Vec::new());
        write_frame_with(&mut whole, &mut Vec::new(), &task(values)).unwrap();
        write_frame_tail(&mut split, &mut Vec::new(), &task(&[]), values).unwrap();
        assert!(whole == split, "{n} values");
        assert!(matches!(
            read_frame(&mut split.as_slice(), MAX_FRAME),
            Ok(Frame::Task { .. })
        ));
    }
    let mut out = Vec::new();
    let e = write_frame_tail(&mut out, &mut Vec::new(), &Frame::Shutdown, &[1]).unwrap_err();
    assert!(e.to_string().contains("empty bin"), "{e}");
    assert!(out.is_empty());
}
