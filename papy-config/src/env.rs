//! `${VAR}` and `${VAR:-default}` in string values, expanded from the
//! environment when the file is loaded; `$${` writes a literal `${`.

use crate::spans::KeyPath;

/// Expands the variables of one string.
///
/// # Errors
/// A message naming an unset variable (without a default) or an unclosed `${`.
///
/// ```
/// use papy_config::env::expand;
/// let get = |k: &str| (k == "HOME").then(|| "/home/me".to_string());
/// assert_eq!(expand("${HOME}/data", &get).unwrap(), "/home/me/data");
/// assert_eq!(expand("${NOPE:-x}.txt", &get).unwrap(), "x.txt");
/// assert_eq!(expand("$${HOME}", &get).unwrap(), "${HOME}");
/// assert!(expand("${NOPE}", &get).unwrap_err().contains("`NOPE` is not set"));
/// assert!(expand("${NOPE:-${HOME}}", &get).is_err());
/// let empty = |k: &str| (k == "E").then(String::new);
/// assert_eq!(expand("[${E}]", &empty).unwrap(), "[]");
/// assert_eq!(expand("[${E:-d}]", &empty).unwrap(), "[d]");
/// ```
pub fn expand(s: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("`${{` without a closing `}}` in \"{s}\""))?;
            let inner = &tail[..end];
            if inner.contains("${") {
                return Err(format!(
                    "`${{{inner}}}`: a default cannot hold another variable"
                ));
            }
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{inner}}}` is not a variable name (letters, digits, _)"
                ));
            }
            // As in the shell: `${V:-d}` gives `d` when V is unset or
            // empty; `${V}` of an empty V is empty.
            match (get(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` for a default)"
                    ))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every string of a document in place: `(key path, message)` per error.
pub(crate) fn expand_all(
    doc: &mut toml::Table,
    get: &dyn Fn(&str) -> Option<String>,
) -> Vec<(KeyPath, String)> {
    let mut problems = Vec::new();
    let mut path = Vec::new();
    for (k, v) in doc.iter_mut() {
        path.push(k.clone());
        value(v, get, &mut path, &mut problems);
        path.pop();
    }
    problems
}

fn value(
    v: &mut toml::Value,
    get: &dyn Fn(&str) -> Option<String>,
    path: &mut KeyPath,
    problems: &mut Vec<(KeyPath, String)>,
) {
    match v {
        toml::Value::String(s) if s.contains('$') => match expand(s, get) {
            Ok(e) => *s = e,
            Err(e) => problems.push((path.clone(), e)),
        },
        toml::Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                path.push(i.to_string());
                value(v, get, path, problems);
                path.pop();
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                path.push(k.clone());
                value(v, get, path, problems);
                path.pop();
            }
        }
        _ => {}
    }
}
