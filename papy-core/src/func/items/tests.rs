use std::time::Duration;

use super::*;

fn payloads() -> Vec<Value> {
    vec![
        Value::from(vec![42u8; 100_000].as_slice()),
        Value::from("some text"),
        Value::map([("a", Value::list([1, 2, 3]))]),
    ]
}

#[test]
fn file_items_round_trip_with_mode_0600_and_are_removed() {
    for v in payloads() {
        let d = dump(&v, &DumpOptions::default()).unwrap();
        let path = PathBuf::from(d.locator().get("path").unwrap().as_str().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tmp_papy_file"));
        assert_eq!(load(d.locator(), &LoadOptions::default()).unwrap(), v);
        assert!(!path.exists(), "removed after load");
    }
}

#[test]
fn file_items_can_stay_and_be_memory_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let v = Value::from(vec![7u8; 4096].as_slice());
    let opts = DumpOptions {
        dir: Some(dir.path().to_path_buf()),
        prefix: Some("big_".into()),
        suffix: Some(".bin".into()),
        ..DumpOptions::default()
    };
    let d = dump(&v, &opts).unwrap();
    let path = d
        .locator()
        .get("path")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(path.starts_with(&dir.path().display().to_string()) && path.ends_with(".bin"));
    let m = map(d.locator()).unwrap();
    assert_eq!(&m[..], v.as_bytes().unwrap());
    let keep = LoadOptions {
        remove: false,
        mmap: true,
        ..LoadOptions::default()
    };
    assert_eq!(load(d.locator(), &keep).unwrap(), v);
    assert!(Path::new(&path).exists());
    remove(d.locator()).unwrap();
    assert!(!Path::new(&path).exists());
}

#[test]
fn a_truncated_file_item_is_detected() {
    let d = dump(&Value::from("0123456789"), &DumpOptions::default()).unwrap();
    let path = d
        .locator()
        .get("path")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&path, "01234").unwrap();
    let e = load(d.locator(), &LoadOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("got 5 bytes, the item has 10"),
        "{e}"
    );
}

#[test]
fn fifo_and_socket_items_round_trip() {
    for transport in [Transport::Fifo, Transport::Socket] {
        for v in payloads() {
            let opts = DumpOptions {
                transport,
                timeout: Duration::from_secs(30),
                ..DumpOptions::default()
            };
            let d = dump(&v, &opts).unwrap();
            let locator = d.locator().clone();
            assert_eq!(load(&locator, &LoadOptions::default()).unwrap(), v);
            assert_eq!(d.wait(), Served::Done);
            if transport == Transport::Fifo {
                let path = locator.get("path").unwrap().as_str().unwrap().to_string();
                assert!(!Path::new(&path).exists(), "pipe removed after load");
            }
        }
    }
}

#[test]
fn a_socket_item_whose_reader_never_comes_times_out_and_closes() {
    let opts = DumpOptions {
        transport: Transport::Socket,
        timeout: Duration::from_millis(100),
        ..DumpOptions::default()
    };
    let d = dump(&Value::from("unread"), &opts).unwrap();
    let locator = d.locator().clone();
    assert_eq!(d.wait(), Served::TimedOut, "the serving thread ends");
    // The listening socket is closed: nobody answers at that port any more.
    let e = load(&locator, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("connecting to the item"), "{e}");
}

#[test]
fn a_fifo_item_whose_reader_never_comes_times_out_and_is_removed() {
    let opts = DumpOptions {
        transport: Transport::Fifo,
        timeout: Duration::from_millis(100),
        ..DumpOptions::default()
    };
    let d = dump(&Value::from("unread"), &opts).unwrap();
    let path = d
        .locator()
        .get("path")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.wait(), Served::TimedOut);
    assert!(!Path::new(&path).exists());
}

#[test]
fn bad_locators_and_options_are_refused_with_reasons() {
    let e = load(&Value::from(3), &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no `kind`"), "{e}");
    let odd = Value::map([("kind", "ftp"), ("codec", "str")]);
    let odd = Value::map(
        odd.as_map()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([(Value::from("len"), Value::from(1))]),
    );
    let e = load(&odd, &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("unknown item kind `ftp`"), "{e}");
    let opts = DumpOptions {
        transport: Transport::Socket,
        timeout: Duration::from_millis(50),
        ..DumpOptions::default()
    };
    let d = dump(&Value::from("x"), &opts).unwrap();
    let mmap = LoadOptions {
        mmap: true,
        ..LoadOptions::default()
    };
    let e = load(d.locator(), &mmap).unwrap_err();
    assert!(e.to_string().contains("only file items"), "{e}");
    assert!(Transport::parse("udp").is_err());
}

#[test]
fn the_registered_functions_pass_options_through() {
    let dump_w = crate::Worker::with_named(
        "papy.dump_item",
        [
            ("kind", Value::from("socket")),
            ("timeout", Value::from(30.0)),
        ],
    )
    .unwrap();
    let load_w = crate::Worker::new("papy.load_item").unwrap();
    let v = Value::list([1, 2, 3]);
    let locator = dump_w.call(std::slice::from_ref(&v)).unwrap();
    assert_eq!(locator.get("kind"), Some(&Value::from("socket")));
    assert_eq!(load_w.call(&[locator]).unwrap(), v);
    let bad = crate::Worker::with_named("papy.dump_item", [("kind", Value::from("udp"))]).unwrap();
    let e = bad.call(&[v]).unwrap_err().to_string();
    assert!(e.contains("unknown item transport `udp`"), "{e}");
}
