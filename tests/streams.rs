//! Stream readers and writers inside pipelines: writers in worker
//! processes (compressed files completed when the workers shut down), and
//! a followed file that ends when the pipeline is stopped.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use papy::func::read;
use papy::{Dagger, NuMap, Piper, Plumber, ProcessPool, Source, Value, Worker, WorkerCommand};

papy::enable_test_support!();

/// A 100 kB line of pseudo-random text that starts with its number: it
/// hardly compresses, so several processes writing at once overflow any
/// buffer.
#[papy::worker]
fn t_long(i: i64) -> String {
    let mut x = i as u64 + 1;
    let text: String = (0..100_000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect();
    format!("{i}:{text}")
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort();
    v
}

#[test]
fn process_workers_append_to_one_compressed_file_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["out.txt.gz", "out.txt.zst", "out.msgpack"] {
        let path = dir.path().join(name);
        let writer = if name.ends_with("msgpack") {
            "papy.dump_msgpack"
        } else {
            "papy.dump_lines"
        };
        {
            let pool = ProcessPool::new("w", 2, WorkerCommand::current_exe().unwrap()).unwrap();
            let numap = NuMap::builder()
                .pool(Arc::new(pool))
                .stride(5)
                .build()
                .unwrap();
            let w = Worker::new("t_long").unwrap().then(
                Worker::with_named(writer, [("path", Value::from(path.display().to_string()))])
                    .unwrap(),
            );
            let mut d = Dagger::new();
            d.add_piper(Piper::new("write", w).parallel(&numap))
                .unwrap();
            let out = common::run_all(d, (0..40).map(|i| Ok(Value::from(i))).collect());
            assert!(out[0].1.iter().all(|i| i.as_ref() == Ok(&Value::Null)));
            // Dropping the pipeline shuts the workers down, which completes the files.
        }
        let items: Vec<Value> = if name.ends_with("msgpack") {
            read::msgpack(&path).unwrap().map(|i| i.unwrap()).collect()
        } else {
            read::lines(&path).unwrap().map(|i| i.unwrap()).collect()
        };
        let got: Vec<Value> = items
            .iter()
            .map(|v| {
                let s = v.as_str().unwrap();
                let colon = s
                    .find(':')
                    .unwrap_or_else(|| panic!("{name}: {}", &s[..s.len().min(80)]));
                assert_eq!(s.len() - colon, 100_001, "a whole line");
                Value::from(s.split(':').next().unwrap().parse::<i64>().unwrap())
            })
            .collect();
        assert_eq!(
            sorted(got),
            (0..40).map(Value::from).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn a_followed_file_feeds_the_pipeline_until_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    std::fs::write(&path, "a\nb\n").unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("echo", Worker::new("papy.ipasser").unwrap()))
        .unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("echo").unwrap();
    let follow = read::follow(&path, Duration::from_millis(5), p.stop_signal()).unwrap();
    p.start([("echo", Source::items(follow))]).unwrap();
    p.run().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"c\n").unwrap();
    // The pipeline keeps waiting for more lines...
    assert!(!p.wait(Some(Duration::from_millis(300))).unwrap());
    // ...until it is stopped.
    p.stop().unwrap();
    let got: Vec<Value> = out.take().into_iter().map(|i| i.unwrap()).collect();
    assert_eq!(got, ["a", "b", "c"].map(Value::from));
}
