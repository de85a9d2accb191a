use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::socket::TOKEN_WAIT;
use super::trust::mac_hex;
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
fn a_truncated_file_item_is_detected_and_removed() {
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

fn with(locator: &Value, key: &str, v: Value) -> Value {
    let mut m = locator.as_map().unwrap().clone();
    m.insert(Value::from(key), v);
    Value::from(m)
}

#[test]
fn a_fifo_whose_writer_never_comes_times_out_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orphan");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let locator = Value::map([
        ("kind", Value::from("fifo")),
        ("path", Value::from(path.display().to_string())),
        ("codec", Value::from("str")),
        ("len", Value::from(3)),
    ]);
    let opts = LoadOptions {
        timeout: Duration::from_millis(200),
        dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    };
    let e = load(&locator, &opts).unwrap_err().to_string();
    assert!(e.contains("no writer within"), "{e}");
    assert!(path.exists(), "a pipe this run did not make is left alone");
}

#[test]
fn a_fifo_item_is_read_once_and_a_second_reader_gets_an_error() {
    let opts = DumpOptions {
        transport: Transport::Fifo,
        timeout: Duration::from_secs(30),
        ..DumpOptions::default()
    };
    let d = dump(&Value::from("once"), &opts).unwrap();
    let locator = d.locator().clone();
    assert_eq!(
        load(&locator, &LoadOptions::default()).unwrap(),
        Value::from("once")
    );
    assert_eq!(d.wait(), Served::Done);
    assert!(load(&locator, &LoadOptions::default()).is_err());
}

#[test]
fn a_socket_item_goes_only_to_the_holder_of_its_token() {
    let opts = DumpOptions {
        transport: Transport::Socket,
        timeout: Duration::from_secs(30),
        ..DumpOptions::default()
    };
    let d = dump(&Value::from("secret"), &opts).unwrap();
    let locator = d.locator().clone();
    let wrong = with(&locator, "token", Value::from(12345));
    let short = LoadOptions {
        timeout: Duration::from_millis(300),
        ..LoadOptions::default()
    };
    assert!(load(&wrong, &short).is_err(), "a wrong token gets nothing");
    assert_eq!(
        load(&locator, &LoadOptions::default()).unwrap(),
        Value::from("secret")
    );
    assert_eq!(d.wait(), Served::Done);
}

#[test]
fn a_huge_announced_length_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, "abc").unwrap();
    let lying = Value::map([
        ("kind", Value::from("file")),
        ("path", Value::from(path.display().to_string())),
        ("codec", Value::from("str")),
        ("len", Value::from(i64::MAX)),
    ]);
    let trusted = LoadOptions {
        dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    };
    let e = load(&lying, &trusted).unwrap_err().to_string();
    assert!(e.contains("more than max_size"), "{e}");
    // Within max_size but longer than the file: the length is checked.
    let short = with(&lying, "len", Value::from(1000));
    let e = load(&short, &trusted).unwrap_err().to_string();
    assert!(e.contains("got 3 bytes, the item has 1000"), "{e}");
    assert!(
        path.exists(),
        "a file this run did not make is never removed"
    );
}

#[test]
fn a_tampered_locator_is_refused_and_its_file_left_alone() {
    let d = dump(&Value::from("abc"), &DumpOptions::default()).unwrap();
    assert!(is_authentic(d.locator()));
    let path = d
        .locator()
        .get("path")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    for (key, v) in [
        ("len", Value::from(2)),
        ("codec", Value::from("bytes")),
        ("mac", Value::from("00".repeat(32))),
        ("mac", Value::from("not hex")),
    ] {
        let tampered = with(d.locator(), key, v);
        assert!(!is_authentic(&tampered), "{key}");
        let e = load(&tampered, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, ItemsError::Untrusted(_)), "{key}: {e}");
        assert!(Path::new(&path).exists(), "{key}: not removed");
        assert!(remove(&tampered).is_err());
        let mapped = map(&tampered);
        assert!(matches!(mapped, Err(ItemsError::Untrusted(_))), "{key}");
    }
    assert_eq!(
        load(d.locator(), &LoadOptions::default()).unwrap(),
        Value::from("abc")
    );
    assert!(
        !Path::new(&path).exists(),
        "the authentic one removes its file"
    );
}

/// A file `name` in `dir` holding "precious", and an unsigned locator
/// naming it: what a peer that did not make the file would send.
fn victim_locator(dir: &Path, name: &str) -> (PathBuf, Value) {
    let victim = dir.join(name);
    std::fs::write(&victim, "precious").unwrap();
    let locator = Value::map([
        ("kind", Value::from("file")),
        ("path", Value::from(victim.display().to_string())),
        ("codec", Value::from("str")),
        ("len", Value::from(8)),
    ]);
    (victim, locator)
}

#[test]
fn a_locator_not_made_by_this_run_neither_reads_nor_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (victim, locator) = victim_locator(dir.path(), "victim.txt");
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            mmap: true,
            ..LoadOptions::default()
        },
        // A declared directory elsewhere does not cover it.
        LoadOptions {
            dir: Some(std::env::temp_dir().join("papy-no-such-item-dir")),
            ..LoadOptions::default()
        },
    ] {
        let e = load(&locator, &opts).unwrap_err();
        assert!(matches!(e, ItemsError::Untrusted(_)), "{e}");
        assert!(
            e.to_string().contains("nothing was read or removed") || opts.mmap,
            "{e}"
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // Inside the declared item directory it is read, and still not removed.
    let inside = LoadOptions {
        dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    };
    assert_eq!(load(&locator, &inside).unwrap(), Value::from("precious"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // `..` does not lead out of it.
    let outside = dir.path().join("sub");
    std::fs::create_dir(&outside).unwrap();
    let escaping = with(
        &locator,
        "path",
        Value::from(outside.join("../victim.txt").display().to_string()),
    );
    let only_sub = LoadOptions {
        dir: Some(outside.clone()),
        ..LoadOptions::default()
    };
    assert!(matches!(
        load(&escaping, &only_sub),
        Err(ItemsError::Untrusted(_))
    ));
}

#[cfg(unix)]
#[test]
fn device_locators_are_refused_before_any_read() {
    // A declared directory of /dev still holds no item: a file item must be
    // a regular file and a fifo item a named pipe.
    let dev = LoadOptions {
        dir: Some(PathBuf::from("/dev")),
        timeout: Duration::from_millis(200),
        ..LoadOptions::default()
    };
    for kind in ["file", "fifo"] {
        let locator = Value::map([
            ("kind", Value::from(kind)),
            ("path", Value::from("/dev/zero")),
            ("codec", Value::from("bytes")),
            ("len", Value::from(1u64 << 30)),
        ]);
        let e = load(&locator, &dev).unwrap_err().to_string();
        assert!(
            e.contains("is not a regular file") || e.contains("is not a named pipe"),
            "{kind}: {e}"
        );
    }
    assert!(Path::new("/dev/zero").exists());
}

#[test]
fn a_source_longer_than_its_locator_says_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long");
    std::fs::write(&path, "0123456789").unwrap();
    let locator = Value::map([
        ("kind", Value::from("file")),
        ("path", Value::from(path.display().to_string())),
        ("codec", Value::from("str")),
        ("len", Value::from(3)),
    ]);
    let opts = LoadOptions {
        dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    };
    let e = load(&locator, &opts).unwrap_err().to_string();
    assert!(e.contains("got 4 bytes, the item has 3"), "{e}");
}

#[test]
fn idle_connections_do_not_keep_a_socket_item_from_its_reader() {
    let opts = DumpOptions {
        transport: Transport::Socket,
        timeout: Duration::from_secs(30),
        ..DumpOptions::default()
    };
    let d = dump(&Value::from("for the reader"), &opts).unwrap();
    let host = d
        .locator()
        .get("host")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let port = d.locator().get("port").unwrap().as_int().unwrap() as u16;
    // Idle connections that never send a byte, and one that sends half a token.
    let idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect((host.as_str(), port)).unwrap())
        .collect();
    let mut half = TcpStream::connect((host.as_str(), port)).unwrap();
    half.write_all(&[1, 2, 3, 4]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let v = load(d.locator(), &LoadOptions::default()).unwrap();
    assert_eq!(v, Value::from("for the reader"));
    // Waiting out each idle connection's 2 s in turn would take 20 s or
    // more; the reader waits for none of them.
    assert!(
        started.elapsed() < TOKEN_WAIT * 5,
        "the reader waited {:?} behind idle connections",
        started.elapsed()
    );
    assert_eq!(d.wait(), Served::Done);
    drop(idle);
}

#[test]
fn a_locator_signed_with_the_run_key_for_a_file_the_run_did_not_make_is_refused() {
    // Every worker holds the run key: a hostile one can sign a locator for
    // any file. Before, the host then read the file and removed it.
    let dir = tempfile::tempdir().unwrap();
    let (victim, unsigned) = victim_locator(dir.path(), "id_rsa");
    let mut pairs: Vec<(&str, Value)> = ["kind", "path", "codec", "len"]
        .iter()
        .map(|k| (*k, unsigned.get(k).cloned().unwrap()))
        .collect();
    pairs.push(("mac", Value::from(mac_hex(&unsigned))));
    let forged = Value::map(pairs);
    assert!(is_authentic(&forged), "the MAC itself is right");
    for opts in [
        LoadOptions::default(),
        LoadOptions {
            mmap: true,
            ..LoadOptions::default()
        },
    ] {
        let e = load(&forged, &opts).unwrap_err();
        assert!(matches!(e, ItemsError::Untrusted(_)), "{e}");
    }
    assert!(remove(&forged).is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // What the run dumps, in its item folder, is read and removed as before.
    let d = dump(&Value::from("ok"), &DumpOptions::default()).unwrap();
    let path = d
        .locator()
        .get("path")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&path).starts_with(crate::run_key::item_root()));
    assert_eq!(
        load(d.locator(), &LoadOptions::default()).unwrap(),
        Value::from("ok")
    );
    assert!(!Path::new(&path).exists());
}
