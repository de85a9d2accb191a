//! The pipeline-file loader: any text gives a loaded file or problems with
//! positions, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use papy_config::load::{parse, LoadOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text, "fuzz.toml", std::path::Path::new("/nonexistent"), &LoadOptions::default());
    }
});
