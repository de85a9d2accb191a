//! `--set KEY.PATH=VALUE`: changes a value of the loaded document.
//!
//! The path must name existing tables and list items (a typo in a
//! resource's name is refused with a suggestion, never silently made into
//! a new table), unless creating is allowed (`papy run --set-new`); the
//! last key may be any key the table accepts. Relative paths given to
//! `inputs.*.path`, `outputs.*.path`, `plugins.paths` and `plugins.load`
//! are relative to the working directory, as on any command line.

use std::path::Path;

use crate::schema::did_you_mean;
use crate::spans::KeyPath;

/// One parsed override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The argument as given.
    pub arg: String,
    /// The key path.
    pub path: KeyPath,
    /// The value (TOML, or the text as a string when it is not TOML).
    pub value: toml::Value,
}

impl Override {
    /// Parses `KEY.PATH=VALUE`.
    ///
    /// # Errors
    /// No `=`, or an empty key.
    ///
    /// ```
    /// use papy_config::overrides::Override;
    /// let o = Override::parse("resources.pool.workers=4").unwrap();
    /// assert_eq!(o.path, ["resources", "pool", "workers"]);
    /// assert_eq!(o.value.as_integer(), Some(4));
    /// assert_eq!(Override::parse("inputs.x.path=a b").unwrap().value.as_str(), Some("a b"));
    /// assert_eq!(Override::parse("outputs.o.path=2024-01-01").unwrap().value.as_str(), Some("2024-01-01"));
    /// ```
    pub fn parse(arg: &str) -> Result<Override, String> {
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| "expected KEY.PATH=VALUE".to_string())?;
        let path: KeyPath = key
            .trim()
            .split('.')
            .map(|s| s.trim().to_string())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "`{key}` is not a key path (e.g. resources.pool.workers)"
            ));
        }
        let raw = raw.trim();
        // Keys that only take strings keep the text as given (`2024-01-01`
        // is a path there, not a date; `2024` a run id, not a number).
        const STRING_KEYS: &[&str] = &[
            "path",
            "url",
            "run_id",
            "command",
            "name",
            "resource",
            "piper",
            "format",
            "kind",
            "delimiter",
            "function",
        ];
        let last = path.last().map(String::as_str).unwrap_or_default();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"));
        let value = match parsed {
            Some(v) if !STRING_KEYS.contains(&last) || v.is_str() => v,
            _ => toml::Value::String(raw.to_string()),
        };
        Ok(Override {
            arg: arg.to_string(),
            path,
            value,
        })
    }
}

fn absolute(v: &mut toml::Value, cwd: &Path, only_paths_with_slash: bool) {
    match v {
        toml::Value::String(s) => {
            let looks_like_path = !only_paths_with_slash || s.contains('/');
            if s != "-" && looks_like_path && Path::new(s.as_str()).is_relative() {
                *s = cwd.join(s.as_str()).display().to_string();
            }
        }
        toml::Value::Array(a) => a
            .iter_mut()
            .for_each(|v| absolute(v, cwd, only_paths_with_slash)),
        _ => {}
    }
}

/// Applies one override to `doc`.
///
/// # Errors
/// A message: a table or list item the path names does not exist (with
/// the closest existing name), or a part that is not a table or list.
pub fn apply(doc: &mut toml::Table, o: &Override, create: bool, cwd: &Path) -> Result<(), String> {
    let mut value = o.value.clone();
    let p: Vec<&str> = o.path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["inputs" | "outputs", _, "path"] => absolute(&mut value, cwd, false),
        ["plugins", "paths", ..] => absolute(&mut value, cwd, false),
        ["plugins", "load", ..] => absolute(&mut value, cwd, true),
        _ => {}
    }
    let mut root = toml::Value::Table(std::mem::take(doc));
    let result = set(&mut root, &o.path, value, create);
    if let toml::Value::Table(t) = root {
        *doc = t;
    }
    result
}

fn label(walked: &[String]) -> String {
    if walked.is_empty() {
        "the file".to_string()
    } else {
        format!("`{}`", walked.join("."))
    }
}

fn set(
    root: &mut toml::Value,
    path: &[String],
    value: toml::Value,
    create: bool,
) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut cur = root;
    for (depth, part) in parents.iter().enumerate() {
        let here = label(&path[..depth]);
        cur = match cur {
            toml::Value::Table(t) => {
                if !t.contains_key(part) {
                    if !create {
                        let hint = match did_you_mean(part, t.keys().map(String::as_str)) {
                            Some(s) => format!("; did you mean `{s}`?"),
                            None if t.is_empty() => String::new(),
                            None => format!(
                                "; it has {}",
                                t.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                            ),
                        };
                        return Err(format!(
                            "{here} has no `{part}`{hint} (--set-new adds missing tables)"
                        ));
                    }
                    t.insert(part.clone(), toml::Value::Table(toml::Table::new()));
                }
                t.get_mut(part)
                    .ok_or_else(|| format!("{here} has no `{part}`"))?
            }
            toml::Value::Array(a) => index(a, part, &here)?,
            _ => return Err(format!("{here} is not a table or a list")),
        };
    }
    let here = label(parents);
    match cur {
        toml::Value::Table(t) => {
            t.insert(last.clone(), value);
            Ok(())
        }
        toml::Value::Array(a) => {
            *index(a, last, &here)? = value;
            Ok(())
        }
        _ => Err(format!("{here} is not a table or a list")),
    }
}

fn index<'a>(
    a: &'a mut [toml::Value],
    part: &str,
    here: &str,
) -> Result<&'a mut toml::Value, String> {
    let i: usize = part
        .parse()
        .map_err(|_| format!("`{part}` is not an index into the list {here}"))?;
    let n = a.len();
    a.get_mut(i)
        .ok_or_else(|| format!("index {i} is past the end of {here} ({n} item(s))"))
}
