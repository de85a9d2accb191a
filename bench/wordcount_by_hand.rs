//! The word count written by hand: the limit the shipped pipeline
//! (`examples/pipelines/wordcount.toml`) is measured against.
//!
//! Same semantics and output as `text.count_words` + `text.merge_counts` +
//! `text.top(n = 10)`: words are runs of alphanumeric characters and
//! apostrophes, lower-cased; the 10 most frequent are printed one JSON pair
//! per line, ties in alphabetical order. The file is read whole and counted
//! by 2 threads over line-aligned halves, each into an FxHash map; the two
//! maps are then merged.
//!
//!   cargo build --release --example wordcount_by_hand
//!   target/release/examples/wordcount_by_hand CORPUS [THREADS]

use std::io::Write;

use rustc_hash::FxHashMap;

type Counts = FxHashMap<String, u64>;

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '\''
}

/// Counts the lower-cased words of `text`.
fn count(text: &str) -> Counts {
    let mut counts = Counts::default();
    let mut lower = String::new();
    for w in text
        .split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
    {
        // Most words are lower case already: look them up as they are.
        let key = if w.chars().any(char::is_uppercase) {
            lower.clear();
            lower.extend(w.chars().flat_map(char::to_lowercase));
            lower.as_str()
        } else {
            w
        };
        match counts.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                counts.insert(key.to_owned(), 1);
            }
        }
    }
    counts
}

/// Splits `text` into `parts` pieces that end at line ends.
fn line_aligned(text: &str, parts: usize) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = text;
    for left in (1..=parts).rev() {
        let cut = if left == 1 {
            rest.len()
        } else {
            rest.len() / left
        };
        let end = rest[cut..].find('\n').map_or(rest.len(), |i| cut + i + 1);
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: wordcount_by_hand CORPUS [THREADS]")?;
    let threads: usize = args.next().map_or(Ok(2), |t| t.parse())?;
    let text = String::from_utf8(std::fs::read(path)?)?;
    let mut maps = std::thread::scope(|s| {
        let handles: Vec<_> = line_aligned(&text, threads.max(1))
            .into_iter()
            .map(|piece| s.spawn(move || count(piece)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join())
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|_| "a counting thread panicked")?;
    let mut total = maps.pop().unwrap_or_default();
    for map in maps {
        for (w, n) in map {
            *total.entry(w).or_insert(0) += n;
        }
    }
    let mut top: Vec<(String, u64)> = total.into_iter().collect();
    top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = std::io::stdout().lock();
    for (w, n) in top.iter().take(10) {
        // Words hold no character JSON escapes (no quote, backslash or control).
        writeln!(out, "[\"{w}\",{n}]")?;
    }
    Ok(())
}
