//! Loading a pipeline file: TOML syntax, `${VAR}` expansion, `--set`
//! overrides, every unknown key, and each table read into the model with
//! the position of any error. What this accepts, [`crate::validate`] then
//! checks as a whole.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use papy_core::piper::PiperOptions;
use toml_edit::ImDocument;

use crate::error::{ConfigError, Result};
use crate::model::{
    InputSpec, NuMapSettings, OutputSpec, PipelineFile, PiperFrame, PiperSpec, Plugins, Resource,
};
use crate::overrides::{self, Override};
use crate::problem::{Origin, Problem};
use crate::spans::{KeyPath, Spans};
use crate::typed::typed;
use crate::{env, kinds, schema};

/// How to load a file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `KEY.PATH=VALUE` overrides, applied in order (see [`crate::overrides`]).
    pub overrides: Vec<String>,
    /// Let overrides create missing tables (`--set-new`).
    pub create: bool,
}

impl LoadOptions {
    /// Options with these overrides.
    pub fn with_overrides(overrides: impl IntoIterator<Item = impl Into<String>>) -> LoadOptions {
        LoadOptions {
            overrides: overrides.into_iter().map(Into::into).collect(),
            create: false,
        }
    }
}

/// A parsed pipeline file: its model and where each key is.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The model.
    pub file: PipelineFile,
    /// Positions of keys and values in the user's file.
    pub spans: Spans,
    /// The file's name as given (`<text>` for text).
    pub name: String,
    /// The directory relative paths of the file are resolved against.
    pub dir: PathBuf,
    /// `true` when the input pipers' sources are given to
    /// [`Plumber::start`](papy_core::Plumber::start) by a library (a saved
    /// pipeline): a piper without inputs is then an input piper. `false`
    /// (the command line) when the file's `[inputs]` feed them.
    pub library: bool,
    /// Names of resources, inputs, pipers and outputs the file defines but
    /// whose table could not be read (the reason is already reported): the
    /// validator does not call references to them unknown.
    pub unread: BTreeSet<String>,
}

impl Loaded {
    /// A path of the file, relative to the pipeline file's directory
    /// (`-` stays `-`).
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if p == "-" || path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// A [`ConfigError::Invalid`] of these problems.
    pub fn invalid(&self, problems: Vec<Problem>) -> ConfigError {
        ConfigError::Invalid {
            file: self.name.clone(),
            problems,
        }
    }
}

/// Reads and parses a pipeline file.
///
/// # Errors
/// [`ConfigError::Io`], or [`ConfigError::Invalid`] with every problem found.
pub fn load_file(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    strict(load_file_with_problems(path, options)?)
}

/// As [`load_file`], but a file that is valid TOML gives its model, read
/// as far as it can be, with the problems found so far, so that the
/// validator can report every other problem of the file in the same run.
///
/// # Errors
/// [`ConfigError::Io`], or [`ConfigError::Invalid`] for a TOML syntax error.
pub fn load_file_with_problems(
    path: &Path,
    options: &LoadOptions,
) -> Result<(Loaded, Vec<Problem>)> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_with_problems(&text, &path.display().to_string(), &dir, options)
}

/// Parses a pipeline file's text; `name` names it in messages and `dir`
/// is where its relative paths start.
///
/// # Errors
/// [`ConfigError::Invalid`] with every problem found.
pub fn parse(text: &str, name: &str, dir: &Path, options: &LoadOptions) -> Result<Loaded> {
    strict(parse_with_problems(text, name, dir, options)?)
}

fn strict((l, mut problems): (Loaded, Vec<Problem>)) -> Result<Loaded> {
    if problems.is_empty() {
        Ok(l)
    } else {
        Problem::sort(&mut problems);
        Err(l.invalid(problems))
    }
}

/// As [`parse`], but returns the model read as far as it can be with the
/// problems found (see [`load_file_with_problems`]).
///
/// # Errors
/// [`ConfigError::Invalid`] for a TOML syntax error.
pub fn parse_with_problems(
    text: &str,
    name: &str,
    dir: &Path,
    options: &LoadOptions,
) -> Result<(Loaded, Vec<Problem>)> {
    let invalid = |problems| ConfigError::Invalid {
        file: name.to_string(),
        problems,
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let origin = match e.span() {
            Some(s) => {
                let (line, col) = position(text, s.start);
                Origin::File { line, col }
            }
            None => Origin::Nowhere,
        };
        invalid(vec![Problem {
            origin,
            message: e.message().trim().replace('\n', "; "),
        }])
    })?;
    let mut spans = Spans::of(text, &doc);
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| invalid(vec![Problem::whole(e.message().trim().replace('\n', "; "))]))?;
    let mut problems: Vec<Problem> = env::expand_all(&mut table, &|k| std::env::var(k).ok())
        .into_iter()
        .map(|(p, e)| spans.at(&p, e))
        .collect();
    let cwd = std::env::current_dir().unwrap_or_default();
    for arg in &options.overrides {
        match Override::parse(arg)
            .and_then(|o| overrides::apply(&mut table, &o, options.create, &cwd).map(|()| o))
        {
            Ok(o) => spans.mark_set(o.path, arg),
            Err(e) => problems.push(Problem {
                origin: Origin::Set(arg.clone()),
                message: e,
            }),
        }
    }
    problems.extend(schema::check(&spans, &table));
    let mut unread = BTreeSet::new();
    let file = model_of(&spans, &table, &mut problems, &mut unread);
    let no_pipers = match table.get("pipers") {
        None => true,
        Some(toml::Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    if no_pipers {
        problems.push(Problem::whole(
            "the file defines no pipers (add a [[pipers]] table; docs/pipeline-format.md)",
        ));
    }
    let loaded = Loaded {
        file,
        spans,
        name: name.to_string(),
        dir: dir.to_path_buf(),
        library: false,
        unread,
    };
    Ok((loaded, problems))
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The keys of `t` that are in `keys`.
fn subset(t: &toml::Table, keys: &[&str]) -> toml::Table {
    t.iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads `T` from a table; each key whose value is wrong is reported and
/// left out, and the rest read again, so that every wrong key of the table
/// is reported and the table is read when its other keys allow.
fn read<T: serde::de::DeserializeOwned>(
    spans: &Spans,
    base: &[String],
    mut t: toml::Table,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut removed: Vec<String> = Vec::new();
    loop {
        let (rel, e) = match typed::<T>(toml::Value::Table(t.clone())) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let key = rel.first().filter(|k| t.contains_key(*k)).cloned();
        // A required key left out above is missing now: already reported.
        let consequence = rel.is_empty()
            && removed
                .iter()
                .any(|k| e.contains(&format!("missing field `{k}`")));
        if !consequence {
            let mut path = base.to_vec();
            path.extend(rel);
            problems.push(spans.at(&path, e));
        }
        match key {
            Some(k) => {
                t.remove(&k);
                removed.push(k);
            }
            None => return None,
        }
    }
}

/// Resource `name` (table `t`): its settings shared by every kind, and
/// its kind's own; `None` when they cannot be read.
fn resource_of(
    spans: &Spans,
    name: &str,
    t: &toml::Table,
    problems: &mut Vec<Problem>,
) -> Option<Resource> {
    let base: KeyPath = ["resources", name].iter().map(|s| s.to_string()).collect();
    let numap: NuMapSettings = read(spans, &base, subset(t, NuMapSettings::KEYS), problems)?;
    let Some(kind_keys) = kinds::keys(&numap.kind) else {
        let (_, e) = kinds::check(&numap.kind, &toml::Table::new())
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut at = base;
        at.push("kind".into());
        problems.push(spans.at(&at, format!("resource `{name}`: {e}")));
        return None;
    };
    let settings: toml::Table = t
        .iter()
        .filter(|(k, _)| kind_keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (rel, e) in kinds::check(&numap.kind, &settings) {
        let mut path = base.clone();
        path.extend(rel);
        problems.push(spans.at(&path, format!("resource `{name}`: {e}")));
    }
    Some(Resource { numap, settings })
}

fn model_of(
    spans: &Spans,
    doc: &toml::Table,
    problems: &mut Vec<Problem>,
    unread: &mut BTreeSet<String>,
) -> PipelineFile {
    let k = |parts: &[&str]| -> KeyPath { parts.iter().map(|s| s.to_string()).collect() };
    let mut f = PipelineFile::default();
    if let Some(toml::Value::Table(t)) = doc.get("plugins") {
        f.plugins = read::<Plugins>(spans, &k(&["plugins"]), subset(t, Plugins::KEYS), problems)
            .unwrap_or_default();
    }
    if let Some(toml::Value::Table(rs)) = doc.get("resources") {
        for (name, v) in rs {
            let toml::Value::Table(t) = v else { continue };
            match resource_of(spans, name, t, problems) {
                Some(r) => {
                    f.resources.insert(name.clone(), r);
                }
                None => {
                    unread.insert(name.clone());
                }
            }
        }
    }
    if let Some(toml::Value::Array(ps)) = doc.get("pipers") {
        for (i, v) in ps.iter().enumerate() {
            let toml::Value::Table(t) = v else { continue };
            let base = k(&["pipers", &i.to_string()]);
            let frame: Option<PiperFrame> =
                read(spans, &base, subset(t, PiperSpec::FRAME_KEYS), problems);
            let options: Option<PiperOptions> =
                read(spans, &base, subset(t, PiperOptions::KEYS), problems);
            if let (Some(fr), Some(options)) = (frame, options) {
                f.pipers.push(PiperSpec {
                    name: fr.name,
                    resource: fr.resource,
                    inputs: fr.inputs,
                    options,
                    worker: fr.worker,
                });
            } else if let Some(name) = t.get("name").and_then(toml::Value::as_str) {
                unread.insert(name.to_string());
            }
        }
    }
    if let Some(toml::Value::Table(is)) = doc.get("inputs") {
        for (name, v) in is {
            let toml::Value::Table(t) = v else { continue };
            let kind = t.get("kind").and_then(|v| v.as_str()).unwrap_or("");
            let keys: Vec<&str> = InputSpec::KINDS
                .iter()
                .find(|(n, _)| *n == kind)
                .map(|(_, keys)| {
                    std::iter::once("kind")
                        .chain(keys.iter().copied())
                        .collect()
                })
                .unwrap_or_else(|| vec!["kind"]);
            if let Some(i) =
                read::<InputSpec>(spans, &k(&["inputs", name]), subset(t, &keys), problems)
            {
                f.inputs.insert(name.clone(), i);
            } else {
                unread.insert(name.clone());
            }
        }
    }
    if let Some(toml::Value::Table(os)) = doc.get("outputs") {
        for (name, v) in os {
            let toml::Value::Table(t) = v else { continue };
            if let Some(o) = read::<OutputSpec>(
                spans,
                &k(&["outputs", name]),
                subset(t, OutputSpec::KEYS),
                problems,
            ) {
                f.outputs.insert(name.clone(), o);
            } else {
                unread.insert(name.clone());
            }
        }
    }
    f
}
