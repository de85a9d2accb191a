//! What a hostile worker's result frame costs the host: a worker answers
//! its task with one frame of N MiB of empty lists (the values that
//! decode into the most memory per byte), and the host prints its peak
//! resident memory (`VmHWM`) before and after, against the frame's size.
//!
//!     cargo run --release --example hostile_frame -- 64
//!
//! The frame is refused (its items fail with a decoding error) once its
//! values would take more than `papy_sdk::packed::decode_budget` of it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use papy::protocol::{read_frame, write_frame, Frame, Hello, GREETING, MAX_FRAME};
use papy::{NuMap, ProcessPool, Worker, WorkerCommand};

const FLOOD: &str = "PAPY_EXAMPLE_FLOOD_MIB";

/// Peak resident memory of this process, in MiB (Linux).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The hostile worker: a Result of `mib` MiB of empty lists for every task.
fn flood(mib: usize) {
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let _ = output.write_all(GREETING);
    let _ = write_frame(
        &mut output,
        &Frame::Hello(Hello::here(vec!["papy.ipasser".into()], Vec::new())),
    );
    let _ = output.flush();
    let _host = read_frame(&mut input, MAX_FRAME);
    while let Ok(Frame::Task { id, .. }) = read_frame(&mut input, MAX_FRAME) {
        // {"Result": {"id": id, "results": {"values": bin(0x90 * n), "errors": []}}},
        // written by hand: the worker itself must not build the values.
        let values = vec![0x90u8; mib << 20];
        let mut body = Vec::with_capacity(values.len() + 64);
        let key = |b: &mut Vec<u8>, k: &str| {
            b.push(0xa0 | k.len() as u8);
            b.extend_from_slice(k.as_bytes());
        };
        body.push(0x81);
        key(&mut body, "Result");
        body.push(0x82);
        key(&mut body, "id");
        body.push(0xcf);
        body.extend_from_slice(&id.to_be_bytes());
        key(&mut body, "results");
        body.push(0x82);
        key(&mut body, "values");
        body.push(0xc6);
        body.extend_from_slice(&(values.len() as u32).to_be_bytes());
        body.extend_from_slice(&values);
        key(&mut body, "errors");
        body.push(0x90);
        let _ = output.write_all(&(body.len() as u32).to_be_bytes());
        let _ = output.write_all(&body);
        let _ = output.flush();
    }
}

fn main() {
    if let Some(mib) = std::env::var(FLOOD).ok().and_then(|m| m.parse().ok()) {
        flood(mib);
        return;
    }
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let before = peak_mib();
    let exe = std::env::current_exe().expect("this program");
    let cmd = WorkerCommand::new(exe, Vec::<String>::new()).env(FLOOD, mib.to_string());
    let pool = Arc::new(ProcessPool::new("flood", 1, cmd).expect("pool"));
    let m = NuMap::builder()
        .pool(pool)
        .stride(1)
        .build()
        .expect("numap");
    let t = m
        .add_task(Worker::new("papy.ipasser").expect("built-in"), 0..1i64)
        .expect("task");
    m.start().expect("start");
    let mut results = m.results(t).expect("results");
    let first = results.next_timeout(Duration::from_secs(120));
    let after = peak_mib();
    match first {
        papy::numap::Next::Item(Err(e)) => {
            println!("the item: {}", papy::error::quote_peer(e.message()))
        }
        papy::numap::Next::Item(Ok(v)) => println!("the item: {v:?}"),
        other => println!("no item: {}", matches!(other, papy::numap::Next::End)),
    }
    println!(
        "frame {mib} MiB; host peak before {before:.0} MiB, after {after:.0} MiB: {:.1}x the frame",
        after / mib as f64
    );
}
