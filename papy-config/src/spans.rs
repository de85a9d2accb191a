//! [`Spans`]: where each key of the user's file is, by key path, so every
//! check can point at the line and column the user has open, whatever
//! `--set` and `${VAR}` expansion did to the values.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use crate::problem::{Origin, Problem};

/// A key path: table names, keys and list indices (`["pipers", "0", "name"]`).
pub type KeyPath = Vec<String>;

/// Makes a [`KeyPath`] from its parts.
///
/// ```
/// assert_eq!(papy_config::key_path(&["pipers", "0"]), vec!["pipers".to_string(), "0".into()]);
/// ```
pub fn key_path(parts: &[&str]) -> KeyPath {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Positions of the keys and values of a file.
#[derive(Debug, Default, Clone)]
pub struct Spans {
    line_starts: Vec<usize>,
    text_len: usize,
    keys: HashMap<KeyPath, Range<usize>>,
    values: HashMap<KeyPath, Range<usize>>,
    set: BTreeMap<KeyPath, String>,
}

impl Spans {
    /// The positions of a parsed document.
    pub(crate) fn of(text: &str, doc: &ImDocument<&str>) -> Spans {
        let mut s = Spans {
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            text_len: text.len(),
            ..Spans::default()
        };
        s.table(&mut Vec::new(), doc.as_table());
        s
    }

    /// `(line, col)` of a byte offset, 1-based.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text_len);
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.line_starts[line - 1] + 1)
    }

    /// Records that `path` was set by `--set arg`.
    pub(crate) fn mark_set(&mut self, path: KeyPath, arg: &str) {
        self.set.insert(path, arg.to_string());
    }

    /// The `--set` argument that set `path` or one of its parents.
    pub fn set_by(&self, path: &[String]) -> Option<&str> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.set.get(&path[..n]))
            .map(String::as_str)
    }

    /// Where `path` is: the `--set` that set it, else its value (or for a
    /// table its header), else the nearest parent that has a position.
    pub fn origin(&self, path: &[String]) -> Origin {
        self.find(path, false)
    }

    /// As [`origin`](Self::origin), pointing at the key rather than the value.
    pub fn key_origin(&self, path: &[String]) -> Origin {
        self.find(path, true)
    }

    fn find(&self, path: &[String], key: bool) -> Origin {
        if let Some(arg) = self.set_by(path) {
            return Origin::Set(arg.to_string());
        }
        for n in (1..=path.len()).rev() {
            let p = &path[..n];
            let span = if key {
                self.keys.get(p).or_else(|| self.values.get(p))
            } else {
                self.values.get(p).or_else(|| self.keys.get(p))
            };
            if let Some(span) = span {
                let (line, col) = self.position(span.start);
                return Origin::File { line, col };
            }
        }
        Origin::Nowhere
    }

    /// A problem at `path`'s value.
    pub fn at(&self, path: &[String], message: impl Into<String>) -> Problem {
        Problem {
            origin: self.origin(path),
            message: message.into(),
        }
    }

    /// A problem at `path`'s key.
    pub fn at_key(&self, path: &[String], message: impl Into<String>) -> Problem {
        Problem {
            origin: self.key_origin(path),
            message: message.into(),
        }
    }

    fn record(&mut self, path: &[String], key: Option<Range<usize>>, value: Option<Range<usize>>) {
        if let Some(k) = key {
            self.keys.insert(path.to_vec(), k);
        }
        if let Some(v) = value {
            self.values.insert(path.to_vec(), v);
        }
    }

    fn table(&mut self, path: &mut KeyPath, t: &Table) {
        for (name, _) in t.iter() {
            let Some((key, item)) = t.get_key_value(name) else {
                continue;
            };
            path.push(name.to_string());
            self.item(path, key.span(), item);
            path.pop();
        }
    }

    fn item(&mut self, path: &mut KeyPath, key: Option<Range<usize>>, item: &Item) {
        match item {
            Item::Table(t) => {
                self.record(path, key.clone(), t.span().or(key));
                self.table(path, t);
            }
            Item::ArrayOfTables(a) => {
                self.record(path, key.clone(), a.span().or(key));
                for (i, t) in a.iter().enumerate() {
                    path.push(i.to_string());
                    self.record(path, t.span(), t.span());
                    self.table(path, t);
                    path.pop();
                }
            }
            Item::Value(v) => self.value(path, key, v),
            Item::None => {}
        }
    }

    fn value(&mut self, path: &mut KeyPath, key: Option<Range<usize>>, v: &Value) {
        self.record(path, key, v.span());
        match v {
            Value::InlineTable(t) => {
                for (name, _) in t.iter() {
                    let Some((k, v)) = t.get_key_value(name) else {
                        continue;
                    };
                    path.push(name.to_string());
                    match v.as_value() {
                        Some(v) => self.value(path, k.span(), v),
                        None => self.record(path, k.span(), v.span()),
                    }
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    path.push(i.to_string());
                    self.value(path, None, v);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_list_items_have_their_positions() {
        let text = "[resources.pool]\nworkers = 2\n\n[[pipers]]\nname = \"a\"\nworker = [\"x\", { function = \"y\" }]\n";
        let doc = ImDocument::parse(text).unwrap();
        let s = Spans::of(text, &doc);
        let at = |p: &[&str]| s.origin(&key_path(p));
        assert_eq!(
            at(&["resources", "pool", "workers"]),
            Origin::File { line: 2, col: 11 }
        );
        assert_eq!(
            s.key_origin(&key_path(&["resources", "pool", "workers"])),
            Origin::File { line: 2, col: 1 }
        );
        assert_eq!(
            at(&["pipers", "0", "name"]),
            Origin::File { line: 5, col: 8 }
        );
        assert_eq!(
            at(&["pipers", "0", "worker", "1", "function"]),
            Origin::File { line: 6, col: 29 }
        );
        // A missing key falls back to its table.
        assert!(matches!(
            at(&["pipers", "0", "consume"]),
            Origin::File { line: 4 | 5, .. }
        ));
    }
}
