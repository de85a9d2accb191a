//! Reading a typed value from TOML with the key path of any error.

use serde::de::DeserializeOwned;

use crate::spans::KeyPath;

/// `T` from `value`; an error gives the key path (relative to `value`)
/// where deserialization failed, and serde's message.
pub(crate) fn typed<T: DeserializeOwned>(value: toml::Value) -> Result<T, (KeyPath, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        (path, plain(e.into_inner().to_string().trim()))
    })
}

/// serde's message with Rust's type names in words a pipeline file's
/// author reads (`expected f64` -> `expected a number`), on one line.
fn plain(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
    ];
    let mut m = message.replace('\n', "; ");
    for (rust, words) in WORDS {
        m = m.replace(rust, words);
    }
    m
}
