//! The `text` example plugin: tokenizing, lower-casing, counting, l33t.
//!
//! Build: `cargo build -p papy-plugin-text` (gives `target/debug/libtext.so`).

use std::collections::BTreeMap;
use std::sync::Arc;

use papy_sdk::worker;
use rustc_hash::FxHashMap;

/// Splits a line into words (letters, digits and apostrophes).
#[worker]
fn tokenize(line: String) -> Vec<String> {
    line.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Lower-cases a string, or every string of a list.
#[worker]
fn lowercase(v: papy_sdk::Value) -> Result<papy_sdk::Value, String> {
    match &v {
        papy_sdk::Value::Str(s) => Ok(papy_sdk::Value::from(s.to_lowercase())),
        papy_sdk::Value::List(l) => l
            .iter()
            .map(|x| {
                x.as_str()
                    .map(|s| papy_sdk::Value::from(s.to_lowercase()))
                    .ok_or("not a string")
            })
            .collect::<Result<Vec<_>, _>>()
            .map(papy_sdk::Value::from)
            .map_err(str::to_string),
        other => Err(format!(
            "expected a string or a list of strings, got {}",
            other.kind()
        )),
    }
}

/// Counts the words of a list: `{word: count}`.
#[worker]
fn word_counts(words: Vec<String>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for w in words {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts
}

/// Merges word-count maps (a consumed batch of them).
#[worker]
fn merge_counts(maps: Vec<BTreeMap<String, i64>>) -> BTreeMap<String, i64> {
    let mut total = BTreeMap::new();
    for m in maps {
        for (w, n) in m {
            *total.entry(w).or_insert(0) += n;
        }
    }
    total
}

/// Counts the lower-cased words of a block of text (a `blocks` input's
/// item) or of a batch of lines: `{word: count}`.
///
/// The text is read where it lies in the item (no copy of each line), and
/// counted in an FxHash map (a fast hash for short keys) whose keys become
/// the result's keys as they are (one allocation per distinct word).
#[worker]
fn count_words(text: papy_sdk::Value) -> Result<papy_sdk::Value, String> {
    let mut counts = Counts::default();
    match &text {
        papy_sdk::Value::Str(block) => counts.add(block),
        papy_sdk::Value::List(lines) => {
            for line in lines.iter() {
                counts.add(
                    line.as_str().ok_or_else(|| {
                        format!("expected a line (a string), got {}", line.kind())
                    })?,
                );
            }
        }
        other => {
            return Err(format!(
                "expected a block of text or a list of lines, got {}",
                other.kind()
            ))
        }
    }
    let map: papy_sdk::Map = counts
        .words
        .into_iter()
        .map(|(w, n)| (papy_sdk::Value::Str(w), papy_sdk::Value::Int(n)))
        .collect();
    Ok(papy_sdk::Value::Map(Arc::new(map)))
}

/// Word counts being made, with the buffer lower-casing reuses.
#[derive(Default)]
struct Counts {
    words: FxHashMap<Arc<str>, i64>,
    lower: String,
}

impl Counts {
    /// Counts the words of `text` (split on anything but letters, digits
    /// and apostrophes: newlines included).
    fn add(&mut self, text: &str) {
        for w in text
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
        {
            // Most words are already lower case: look them up as they are,
            // and allocate only for a word seen for the first time.
            let key = if w.chars().any(char::is_uppercase) {
                self.lower.clear();
                self.lower.extend(w.chars().flat_map(char::to_lowercase));
                self.lower.as_str()
            } else {
                w
            };
            match self.words.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    self.words.insert(Arc::from(key), 1);
                }
            }
        }
    }
}

/// The `n` most frequent words of a count map, as `[word, count]` pairs
/// (ties in alphabetical order).
#[worker]
fn top(counts: BTreeMap<String, i64>, n: usize) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// Writes a string in l33t: a->4, e->3, l->1, o->0, t->7.
#[worker]
fn l33t(s: String) -> String {
    s.chars()
        .map(|c| match c {
            'a' => '4',
            'e' => '3',
            'l' => '1',
            'o' => '0',
            't' => '7',
            c => c,
        })
        .collect()
}

papy_sdk::export_plugin!(name = "text", version = "0.1.0");
