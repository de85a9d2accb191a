//! The stream readers used as pipeline inputs (lines, JSON Lines, records,
//! MessagePack), on arbitrary file contents.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use papy_core::func::read;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = tempfile::NamedTempFile::new() else {
        return;
    };
    if f.write_all(data).and_then(|()| f.flush()).is_err() {
        return;
    }
    let path = f.path();
    if let Ok(it) = read::lines(path) {
        it.take(10_000).for_each(drop);
    }
    if let Ok(it) = read::jsonl(path) {
        it.take(10_000).for_each(drop);
    }
    if let Ok(it) = read::records(path, None) {
        it.take(10_000).for_each(drop);
    }
    if let Ok(it) = read::records(path, Some("--")) {
        it.take(10_000).for_each(drop);
    }
    if let Ok(it) = read::msgpack(path) {
        it.take(10_000).for_each(drop);
    }
});
