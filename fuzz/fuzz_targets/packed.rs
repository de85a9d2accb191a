//! The packed-values decoder (worker frames, plugin batch calls).
#![no_main]

use libfuzzer_sys::fuzz_target;
use papy_sdk::packed::{decode_value, decode_values, Unpacker};

fuzz_target!(|data: &[u8]| {
    let _ = decode_values(data);
    let _ = decode_value(data);
    let mut u = Unpacker::new(data);
    for _ in 0..1024 {
        match u.next_value() {
            Some(Ok(_)) => {}
            _ => break,
        }
    }
});
