use std::io::Write;
use std::time::Duration;

use super::*;
use crate::func::{codec, write};
use crate::{Value, Worker};

fn values(items: impl Iterator<Item = Item>) -> Vec<Value> {
    items.map(|i| i.unwrap()).collect()
}

fn dump(name: &str, path: &Path, args: Vec<(&str, Value)>, v: Value) -> Result<Value, String> {
    let mut all = vec![("path", Value::from(path.display().to_string()))];
    all.extend(args);
    let w = Worker::with_named(name, all).map_err(|e| e.to_string())?;
    w.call(&[v]).map_err(|e| e.to_string())
}

#[cfg(feature = "compress")]
#[test]
fn lines_of_plain_gzip_and_zstd_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.txt", "a.txt.gz", "a.txt.zst"] {
        let path = dir.path().join(name);
        for v in ["one", "two", "three"] {
            dump("papy.dump_lines", &path, vec![], Value::from(v)).unwrap();
        }
        write::finish_all().unwrap();
        let got = values(lines(&path).unwrap());
        assert_eq!(got, ["one", "two", "three"].map(Value::from), "{name}");
    }
    // Appending to a compressed file adds a member that readers take as one stream.
    let gz = dir.path().join("a.txt.gz");
    dump("papy.dump_lines", &gz, vec![], Value::from(4)).unwrap();
    write::finish_all().unwrap();
    assert_eq!(values(lines(&gz).unwrap()).len(), 4);
}

#[test]
fn lines_strip_crlf_and_keep_a_last_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crlf.txt");
    std::fs::write(&path, "a\r\nb\nc").unwrap();
    assert_eq!(
        values(lines(&path).unwrap()),
        ["a", "b", "c"].map(Value::from)
    );
}

#[test]
fn invalid_utf8_is_an_error_item_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, b"ok\n\xff\xfe\nok\n").unwrap();
    let items: Vec<Item> = lines(&path).unwrap().collect();
    assert_eq!(items.len(), 3);
    let e = items[1].as_ref().unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    assert!(items[2].is_ok());
}

#[test]
fn missing_file_names_it() {
    let e = match lines("/no/such/file.txt") {
        Err(e) => e,
        Ok(_) => panic!("opened a missing file"),
    };
    assert!(e.to_string().contains("/no/such/file.txt"), "{e}");
}

#[test]
fn jsonl_round_trip_and_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.jsonl");
    let vals = [
        Value::map([("a", 1)]),
        Value::list([Value::from("x"), Value::Null]),
        Value::from(2.5),
    ];
    for v in &vals {
        dump("papy.dump_jsonl", &path, vec![], v.clone()).unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"\n{broken\n").unwrap();
    let items: Vec<Item> = jsonl(&path).unwrap().collect();
    assert_eq!(items.len(), 4, "blank line skipped, broken line reported");
    for (got, want) in items.iter().zip(&vals) {
        assert_eq!(got.as_ref().unwrap(), want);
    }
    let e = items[3].as_ref().unwrap_err().to_string();
    assert!(e.contains("line 5") && e.contains("not JSON"), "{e}");
}

const PAPY_ITEMS: [&str; 3] = ["first1\nfirst2\n", "second1\nsecond2\n", "third\n"];

#[test]
fn records_round_trip_with_default_and_custom_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    for delimiter in [None, Some("XYZ")] {
        let path = dir.path().join(format!("r-{delimiter:?}.txt"));
        let args = || {
            delimiter
                .map(|d| vec![("delimiter", Value::from(d))])
                .unwrap_or_default()
        };
        for item in PAPY_ITEMS {
            dump("papy.dump_stream", &path, args(), Value::from(item)).unwrap();
        }
        let got = values(records(&path, delimiter).unwrap());
        assert_eq!(got, PAPY_ITEMS.map(Value::from), "{delimiter:?}");
    }
}

#[test]
fn a_custom_delimiter_carries_any_text_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.txt");
    let items = [
        "no newline",
        "",
        "blank\n\nlines\n\n",
        "\nleading",
        "XYZ-not-alone",
    ];
    for item in items {
        dump(
            "papy.dump_stream",
            &path,
            vec![("delimiter", Value::from("XYZ"))],
            Value::from(item),
        )
        .unwrap();
    }
    let got = values(records(&path, Some("XYZ")).unwrap());
    assert_eq!(got, items.map(Value::from));
}

#[test]
fn papy_writes_what_papy_writes() {
    // Byte-compatible with PaPy's dump_stream: item, "\n", delimiter, "\n".
    assert_eq!(
        write::record_of("a\nb\n", Some("XYZ")).unwrap(),
        "a\nb\n\nXYZ\n"
    );
    assert_eq!(write::record_of("a\nb\n", None).unwrap(), "a\nb\n\n\n");
}

#[test]
fn records_the_delimiter_cannot_carry_are_refused_not_mangled() {
    let e = write::record_of("a\nXYZ\nb", Some("XYZ")).unwrap_err();
    assert!(e.contains("line equal to the delimiter"), "{e}");
    let e = write::record_of("a\n\nb\n", None).unwrap_err();
    assert!(e.contains("blank line"), "{e}");
    assert!(write::record_of("", None).is_err());
    let e = dump(
        "papy.dump_stream",
        Path::new("/dev/null"),
        vec![],
        Value::from(3),
    )
    .unwrap_err();
    assert!(e.contains("writes strings"), "{e}");
}

#[test]
fn an_unterminated_last_record_is_reported_or_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.txt");
    std::fs::write(&path, "a\n\nXYZ\nhalf a rec").unwrap();
    let items: Vec<Item> = records(&path, Some("XYZ")).unwrap().collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap(), &Value::from("a\n"));
    let e = items[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("unterminated last record (10 bytes"), "{e}");
    let items = values(
        records(&path, Some("XYZ"))
            .unwrap()
            .unterminated(Unterminated::Emit),
    );
    assert_eq!(items, [Value::from("a\n"), Value::from("half a rec")]);
    // Default delimiter: same rule.
    std::fs::write(&path, "a\n\n\nb\n").unwrap();
    let items: Vec<Item> = records(&path, None).unwrap().collect();
    assert_eq!(items[0].as_ref().unwrap(), &Value::from("a\n"));
    assert!(items[1].is_err());
}

#[cfg(feature = "compress")]
#[test]
fn msgpack_stream_round_trip_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["m.msgpack", "m.msgpack.zst"] {
        let path = dir.path().join(name);
        let vals = [
            Value::from(1),
            Value::from(&b"\x00\x01raw"[..]),
            Value::map([("k", Value::list([1.5, 2.5]))]),
            Value::from("text"),
        ];
        for v in &vals {
            dump("papy.dump_msgpack", &path, vec![], v.clone()).unwrap();
        }
        write::finish_all().unwrap();
        assert_eq!(values(msgpack(&path).unwrap()), vals, "{name}");
    }
    let path = dir.path().join("m.msgpack");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 2);
    std::fs::write(&path, bytes).unwrap();
    let items: Vec<Item> = msgpack(&path).unwrap().collect();
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(items[3]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("value 4"));
}

#[test]
fn follow_reads_what_is_appended_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    std::fs::write(&path, "first\n").unwrap();
    let stop = StopSignal::new();
    let reader = follow(&path, Duration::from_millis(5), stop.clone()).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let t = std::thread::spawn(move || {
        for item in reader {
            tx.send(item.unwrap()).unwrap();
        }
    });
    let recv = || rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(recv(), Value::from("first"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"second\nthi").unwrap();
    assert_eq!(recv(), Value::from("second"));
    f.write_all(b"rd\nlast, no newline").unwrap();
    assert_eq!(recv(), Value::from("third"));
    stop.raise();
    t.join().unwrap();
    let rest: Vec<Value> = rx.try_iter().collect();
    assert_eq!(rest, [Value::from("last, no newline")]);
}

#[cfg(feature = "compress")]
#[test]
fn a_compressed_file_cannot_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gz");
    codec::create(&path, false).unwrap().finish().unwrap();
    let e = follow(&path, Duration::from_millis(5), StopSignal::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("cannot be followed"), "{e}");
    let e = follow("/dev/null", Duration::from_millis(5), StopSignal::new())
        .err()
        .unwrap();
    assert!(e.to_string().contains("only regular files"), "{e}");
    let e = records(&path, Some("two\nlines")).err().unwrap();
    assert!(e.to_string().contains("one line"), "{e}");
}

#[test]
#[cfg(not(feature = "compress"))]
fn without_the_compress_feature_a_gzip_file_is_an_error_naming_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt.gz");
    std::fs::write(&path, b"not read").unwrap();
    let err = codec::open(&path).err().unwrap().to_string();
    assert!(
        err.contains("compress") && err.contains("a.txt.gz"),
        "{err}"
    );
    let err = codec::create(&dir.path().join("b.zst"), false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("compress") && err.contains("b.zst"), "{err}");
}
