//! The file's keys: every unknown key is reported (not only the first),
//! at its position, with the closest known key.

use papy_core::piper::PiperOptions;

use crate::kinds;
use crate::model::{
    CallSpec, InputSpec, NuMapSettings, OutputSpec, PipelineFile, PiperSpec, Plugins,
};
use crate::problem::Problem;
use crate::spans::{KeyPath, Spans};

pub use crate::problem::did_you_mean;

fn unknown_keys(
    spans: &Spans,
    path: &[String],
    table: &toml::Table,
    known: &[&str],
    what: &str,
    out: &mut Vec<Problem>,
) {
    for key in table.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let hint = match did_you_mean(key, known.iter().copied()) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("expected one of: {}", known.join(", ")),
        };
        let mut p = path.to_vec();
        p.push(key.clone());
        out.push(spans.at_key(&p, format!("unknown key `{key}` in {what}; {hint}")));
    }
}

fn table_at<'a>(
    spans: &Spans,
    path: &[String],
    v: &'a toml::Value,
    what: &str,
    out: &mut Vec<Problem>,
) -> Option<&'a toml::Table> {
    match v {
        toml::Value::Table(t) => Some(t),
        other => {
            out.push(spans.at(
                path,
                format!("{what} must be a table, not a {}", other.type_str()),
            ));
            None
        }
    }
}

/// The unknown keys of entry `t` (at `path`, named `label`) of `section`
/// (`resources`, `inputs` or `outputs`): a resource's depend on its kind,
/// an input's on its kind.
fn entry_keys(
    spans: &Spans,
    section: &str,
    path: &KeyPath,
    t: &toml::Table,
    label: &str,
    out: &mut Vec<Problem>,
) {
    match section {
        "resources" => {
            let kind = t.get("kind").and_then(|v| v.as_str()).unwrap_or("thread");
            if let Some(kind_keys) = kinds::keys(kind) {
                let known: Vec<&str> = NuMapSettings::KEYS
                    .iter()
                    .chain(kind_keys)
                    .copied()
                    .collect();
                unknown_keys(spans, path, t, &known, label, out);
            }
        }
        "inputs" => {
            let kind = t.get("kind").and_then(|v| v.as_str()).unwrap_or("");
            // Without a known kind, any key of some kind is accepted
            // (the kind itself is reported when the input is read).
            let known: Vec<&str> = match InputSpec::KINDS.iter().find(|(n, _)| *n == kind) {
                Some((_, keys)) => std::iter::once("kind")
                    .chain(keys.iter().copied())
                    .collect(),
                None => {
                    let mut all: Vec<&str> = std::iter::once("kind")
                        .chain(InputSpec::KINDS.iter().flat_map(|(_, k)| k.iter().copied()))
                        .collect();
                    all.sort_unstable();
                    all.dedup();
                    all
                }
            };
            unknown_keys(spans, path, t, &known, label, out);
        }
        _ => unknown_keys(spans, path, t, OutputSpec::KEYS, label, out),
    }
}

/// The unknown keys of each piper of `pipers` and of its worker entries.
fn pipers_keys(spans: &Spans, v: &toml::Value, out: &mut Vec<Problem>) {
    match v {
        toml::Value::Array(pipers) => {
            let known: Vec<&str> = PiperSpec::FRAME_KEYS
                .iter()
                .chain(PiperOptions::KEYS)
                .copied()
                .collect();
            for (i, p) in pipers.iter().enumerate() {
                let path = key_path(&["pipers", &i.to_string()]);
                let Some(t) = table_at(spans, &path, p, "a piper", out) else {
                    continue;
                };
                let label = match t.get("name").and_then(|n| n.as_str()) {
                    Some(n) => format!("piper `{n}`"),
                    None => format!("piper #{}", i + 1),
                };
                unknown_keys(spans, &path, t, &known, &label, out);
                if let Some(toml::Value::Array(calls)) = t.get("worker") {
                    for (j, c) in calls.iter().enumerate() {
                        if let toml::Value::Table(c) = c {
                            let mut cp = path.clone();
                            cp.extend(["worker".to_string(), j.to_string()]);
                            unknown_keys(
                                spans,
                                &cp,
                                c,
                                CallSpec::KEYS,
                                &format!("a worker entry of {label}"),
                                out,
                            );
                        }
                    }
                }
            }
        }
        other => out.push(spans.at(
            &key_path(&["pipers"]),
            format!(
                "`pipers` must be a list of tables ([[pipers]]), not a {}",
                other.type_str()
            ),
        )),
    }
}

/// The key path of `parts`.
fn key_path(parts: &[&str]) -> KeyPath {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Every unknown key of the document, and every section that is not a table.
pub(crate) fn check(spans: &Spans, doc: &toml::Table) -> Vec<Problem> {
    let mut out = Vec::new();
    unknown_keys(
        spans,
        &[],
        doc,
        PipelineFile::KEYS,
        "the pipeline file",
        &mut out,
    );
    if let Some(v) = doc.get("plugins") {
        if let Some(t) = table_at(spans, &key_path(&["plugins"]), v, "`plugins`", &mut out) {
            unknown_keys(
                spans,
                &key_path(&["plugins"]),
                t,
                Plugins::KEYS,
                "`[plugins]`",
                &mut out,
            );
        }
    }
    for (section, what) in [
        ("resources", "resource"),
        ("inputs", "input"),
        ("outputs", "output"),
    ] {
        let Some(v) = doc.get(section) else { continue };
        let Some(t) = table_at(
            spans,
            &key_path(&[section]),
            v,
            &format!("`{section}`"),
            &mut out,
        ) else {
            continue;
        };
        for (name, v) in t {
            let path = key_path(&[section, name]);
            let Some(t) = table_at(spans, &path, v, &format!("{what} `{name}`"), &mut out) else {
                continue;
            };
            let label = format!("{what} `{name}`");
            entry_keys(spans, section, &path, t, &label, &mut out);
        }
    }
    if let Some(v) = doc.get("pipers") {
        pipers_keys(spans, v, &mut out);
    }
    out
}
