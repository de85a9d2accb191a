//! Items passed by reference between process workers and the host: a
//! payload dumped where it is made (file, fifo or socket) and loaded where
//! it is used, with only the small locator crossing the pipeline.

mod common;

use std::sync::Arc;

use common::{ints, run_all};
use papy::{Dagger, NuMap, Piper, ProcessPool, Value, Worker, WorkerCommand};

papy::enable_test_support!();

const SIZE: usize = 256 * 1024;

/// A payload of `size` bytes that depends on `i`.
#[papy::worker]
fn t_blob(i: i64, size: usize) -> Value {
    let seed = i as u8;
    let bytes: Vec<u8> = (0..size)
        .map(|k| seed.wrapping_add((k % 251) as u8))
        .collect();
    Value::from(bytes.as_slice())
}

/// An FNV-1a digest of bytes.
#[papy::worker]
fn t_digest(bytes: Value) -> Result<i64, String> {
    let b = bytes.as_bytes().ok_or("not bytes")?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b {
        h = (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3);
    }
    Ok(h as i64)
}

fn expected(n: i64) -> Vec<Value> {
    let blob = Worker::with_args("t_blob", [SIZE]).unwrap();
    let digest = Worker::new("t_digest").unwrap();
    (0..n)
        .map(|i| {
            let b = blob.call(&[Value::from(i)]).unwrap();
            digest.call(&[b]).unwrap()
        })
        .collect()
}

fn process_numap() -> NuMap {
    let pool = ProcessPool::new("items", 2, WorkerCommand::current_exe().unwrap()).unwrap();
    NuMap::builder()
        .pool(Arc::new(pool))
        .stride(2)
        .build()
        .unwrap()
}

fn dump_worker(kind: &str) -> Worker {
    Worker::with_named("papy.dump_item", [("kind", Value::from(kind))]).unwrap()
}

fn load_worker(mmap: bool) -> Worker {
    Worker::with_named("papy.load_item", [("mmap", Value::from(mmap))]).unwrap()
}

fn digests(d: Dagger, n: i64) -> Vec<Value> {
    let out = run_all(d, (0..n).map(|i| Ok(Value::from(i))).collect());
    out[0].1.iter().map(|i| i.clone().unwrap()).collect()
}

/// Made and dumped in worker processes, loaded on the host.
#[test]
fn process_workers_dump_and_the_host_loads() {
    let n = 6;
    for (kind, mmap) in [
        ("file", false),
        ("file", true),
        ("fifo", false),
        ("socket", false),
    ] {
        let make = Worker::with_args("t_blob", [SIZE])
            .unwrap()
            .then(dump_worker(kind));
        let mut d = Dagger::new();
        d.add_piper(Piper::new("make", make).parallel(&process_numap()))
            .unwrap();
        d.add_piper(Piper::new(
            "use",
            load_worker(mmap).then(Worker::new("t_digest").unwrap()),
        ))
        .unwrap();
        d.add_pipe(["make", "use"]).unwrap();
        assert_eq!(digests(d, n), expected(n), "{kind} mmap={mmap}");
    }
}

/// Made and dumped on the host, loaded and digested in worker processes.
#[test]
fn the_host_dumps_and_process_workers_load() {
    let n = 6;
    for (kind, mmap) in [("file", true), ("fifo", false), ("socket", false)] {
        let make = Worker::with_args("t_blob", [SIZE])
            .unwrap()
            .then(dump_worker(kind));
        let mut d = Dagger::new();
        d.add_piper(Piper::new("make", make)).unwrap();
        d.add_piper(
            Piper::new(
                "use",
                load_worker(mmap).then(Worker::new("t_digest").unwrap()),
            )
            .parallel(&process_numap()),
        )
        .unwrap();
        d.add_pipe(["make", "use"]).unwrap();
        assert_eq!(digests(d, n), expected(n), "{kind} mmap={mmap}");
    }
}

#[test]
fn a_worker_removes_the_pipes_no_reader_took_when_its_host_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let pool = ProcessPool::new("pipes", 1, WorkerCommand::current_exe().unwrap()).unwrap();
    let m = NuMap::builder()
        .pool(std::sync::Arc::new(pool))
        .stride(1)
        .build()
        .unwrap();
    let dump = Worker::with_named(
        "papy.dump_item",
        [
            ("kind", Value::from("fifo")),
            ("dir", Value::from(dir.path().display().to_string())),
            ("timeout", Value::Float(300.0)),
        ],
    )
    .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("dump", dump).parallel(&m)).unwrap();
    // The locators come back; nobody ever reads the pipes.
    let locators = run_all(d, ints(0..3)).remove(0).1;
    assert_eq!(locators.len(), 3);
    let pipes = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(pipes(), 3, "three pipes wait for readers");
    // The pool goes: its worker is told to shut down and removes them.
    drop(m);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pipes() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} pipes left",
            pipes()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
