//! The protocol's frame decoder, on whatever a worker (or a broker entry)
//! might send: it may fail, never panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use papy_core::protocol::{read_frame, read_frame_with, FrameView, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let _ = read_frame(&mut r, MAX_FRAME);
    let mut r = data;
    let mut buf = Vec::new();
    let _ = read_frame_with::<FrameView<'_>>(&mut r, &mut buf, MAX_FRAME);
});
