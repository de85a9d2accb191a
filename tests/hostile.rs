//! A worker cannot hang or panic the host: a Hello full of odd strings, a
//! stream of garbage, a huge or unreadable frame, a worker that answers a
//! task with nonsense. Every item still comes back (as an error item), in
//! bounded time.

use papy::protocol::{write_frame, Frame, Hello, GREETING};
use papy::{ErrorKind, NuMap, ProcessPool, Worker, WorkerCommand};
use std::sync::Arc;
use std::time::Duration;

/// A "worker" that writes `bytes` to the host, then waits a moment and exits.
fn replaying(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> WorkerCommand {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let line = format!("cat '{}'; sleep 1", path.display());
    WorkerCommand::new("sh", ["-c".to_string(), line])
}

fn hello_with_odd_strings() -> Vec<u8> {
    let mut b = GREETING.to_vec();
    let odd = format!("abcdefghijk\u{e9}{}", "\u{1F600}".repeat(5000));
    let hello = Hello {
        functions: vec![odd.clone(); 100],
        plugins: (0..100).map(|i| (format!("p{i}"), odd.clone())).collect(),
        ..Hello::here(Vec::new(), Vec::new())
    };
    write_frame(&mut b, &Frame::Hello(hello)).unwrap();
    b
}

/// Every item of `out`, each an error, each within `bound` (a wait past it
/// means the host hangs).
fn errors_within(mut out: papy::numap::TaskResults, bound: Duration) -> Vec<papy::ItemError> {
    let mut errors = Vec::new();
    loop {
        match out.next_timeout(bound) {
            papy::numap::Next::Item(r) => errors.push(r.expect_err("no worker ran it")),
            papy::numap::Next::End => return errors,
            papy::numap::Next::TimedOut => panic!("the host hangs"),
        }
    }
}

/// Every item of a task run on `cmd` comes back, as an error, in bounded time.
fn every_item_fails_cleanly(cmd: WorkerCommand) -> Vec<papy::ItemError> {
    let pool = Arc::new(ProcessPool::new("hostile", 1, cmd).unwrap());
    let m = NuMap::builder().pool(pool).stride(4).build().unwrap();
    let t = m
        .add_task(
            Worker::new("papy.ipasser").expect("a built-in worker"),
            0..6i64,
        )
        .unwrap();
    m.start().unwrap();
    let errors = errors_within(m.results(t).unwrap(), Duration::from_secs(60));
    assert_eq!(errors.len(), 6);
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::WorkerDied, "{e}");
        assert!(
            e.message().len() < 4096,
            "a bounded message: {}",
            e.message().len()
        );
    }
    errors
}

#[test]
fn a_hello_with_odd_strings_then_silence_costs_only_its_items() {
    let dir = tempfile::tempdir().unwrap();
    every_item_fails_cleanly(replaying(&dir, "hello", &hello_with_odd_strings()));
}

#[test]
fn garbage_instead_of_a_handshake_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = GREETING.to_vec();
    b.extend((0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    let errors = every_item_fails_cleanly(replaying(&dir, "garbage", &b));
    assert!(errors[0].message().contains("handshake") || errors[0].message().contains("gave up"));
}

#[test]
fn a_huge_unexpected_frame_after_the_hello_is_not_copied_into_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = hello_with_odd_strings();
    // A 16 MiB frame of empty lists where a Result is expected.
    let n: u32 = 16 << 20;
    b.extend_from_slice(&n.to_be_bytes());
    b.resize(b.len() + n as usize, 0x90u8);
    every_item_fails_cleanly(replaying(&dir, "huge", &b));
}

#[test]
fn a_frame_length_past_the_limit_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = hello_with_odd_strings();
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    every_item_fails_cleanly(replaying(&dir, "toolong", &b));
}

/// A worker that shakes hands, then never reads its input: the host's write
/// of a large task frame blocks on the full pipe. The item's timeout still
/// fires (as a timeout, not a death 30 s later when the worker exits), and
/// the next items go to a fresh worker.
#[test]
fn a_timeout_fires_while_the_host_is_blocked_writing_to_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello");
    let mut b = GREETING.to_vec();
    write_frame(&mut b, &Frame::Hello(Hello::here(Vec::new(), Vec::new()))).unwrap();
    std::fs::write(&path, &b).unwrap();
    let line = format!("cat '{}'; exec sleep 30", path.display());
    let cmd = WorkerCommand::new("sh", ["-c".to_string(), line]);
    let pool = Arc::new(ProcessPool::new("deaf", 1, cmd).unwrap());
    let m = NuMap::builder().pool(pool).stride(1).build().unwrap();
    // 4 MiB per item: far more than a pipe holds.
    let big = "x".repeat(4 << 20);
    let t = m
        .add_task_with(
            Worker::new("papy.spasser").expect("a built-in worker"),
            vec![papy::Value::from(big.clone()), papy::Value::from(big)],
            papy::numap::TaskOptions {
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            },
        )
        .unwrap();
    m.start().unwrap();
    let errors = errors_within(m.results(t).unwrap(), Duration::from_secs(20));
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    }
}

/// The environment variable that makes [`__papy_lying_worker`] a worker.
const LIAR: &str = "PAPY_TEST_LYING_WORKER";

/// Not a test: the entry of a worker that answers every task with an
/// error per item, each claiming to be item 5 of another node, with a
/// 2 MiB message (the first item's claims no index at all). Runs only
/// when started by [`lying_worker`] with [`LIAR`] set.
#[test]
fn __papy_lying_worker() {
    if std::env::var_os(LIAR).is_none() {
        return;
    }
    use papy::protocol::{read_frame, WireError, WireResults, MAX_FRAME};
    use std::io::Write;
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    output.write_all(GREETING).unwrap();
    let hello = Hello::here(vec!["papy.ipasser".into()], Vec::new());
    write_frame(&mut output, &Frame::Hello(hello)).unwrap();
    output.flush().unwrap();
    let _host = read_frame(&mut input, MAX_FRAME).unwrap();
    while let Ok(Frame::Task { id, indices, .. }) = read_frame(&mut input, MAX_FRAME) {
        let errors = (0..indices.len() as u32)
            .map(|k| {
                let e = WireError {
                    kind: ErrorKind::Function.code(),
                    message: "x".repeat(2 << 20),
                    function: Some("papy.ipasser".into()),
                    path: vec!["elsewhere".into()],
                    index: (indices[k as usize] != 0).then_some(5),
                };
                (k, e)
            })
            .collect();
        let results = WireResults {
            values: vec![papy::Value::Null; indices.len()],
            errors,
        };
        write_frame(&mut output, &Frame::Result { id, results }).unwrap();
        output.flush().unwrap();
    }
    std::process::exit(0);
}

fn lying_worker() -> WorkerCommand {
    let exe = std::env::current_exe().unwrap();
    WorkerCommand::new(
        exe,
        [
            "__papy_lying_worker",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
    )
    .env(LIAR, "1")
}

#[test]
fn the_host_not_the_worker_says_which_input_an_error_belongs_to_and_bounds_its_text() {
    use papy::{Dagger, Piper, Plumber, Source};
    let pool = Arc::new(ProcessPool::new("liar", 1, lying_worker()).unwrap());
    let m = NuMap::builder().pool(pool).stride(3).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("node", Worker::new("papy.ipasser").unwrap()).parallel(&m))
        .unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("node").unwrap();
    p.start([("node", Source::values(0..10i64))]).unwrap();
    p.run().unwrap();
    assert!(
        p.wait(Some(Duration::from_secs(60))).unwrap(),
        "the run ended"
    );
    let items = out.take();
    assert_eq!(items.len(), 10);
    for (i, item) in items.iter().enumerate() {
        let e = item.as_ref().expect_err("the worker failed every item");
        assert_eq!(e.kind(), ErrorKind::Function, "{e}");
        // Item i is item i of `node`, whatever the worker claimed (5, or none).
        assert_eq!(e.index(), Some(i as u64), "{e:?}");
        assert_eq!(e.path(), ["node".to_string()]);
        // 2 MiB of message kept as at most 4 KiB, saying how long it was.
        assert!(e.message().len() <= 4200, "{}", e.message().len());
        assert!(e.message().ends_with("(2097152 bytes in all)"));
    }
}
