//! Pipeline files: loading, checking (every problem with its line and
//! column) and building a Dagger with its NuMaps, inputs and outputs.

pub use papy_core::file as model;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use papy_core::func::read::{self, StopSignal};
use papy_core::{Dagger, Error, Piper, Source, Worker, WorkerCommand};

use model::{CallSpec, Format, InputSpec, Kind, OutputSpec, PipelineFile};

/// A problem found in a pipeline file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// A parsed pipeline file.
pub struct Loaded {
    /// The model.
    pub file: PipelineFile,
    text: String,
    dir: PathBuf,
}

impl Loaded {
    fn at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> Problem {
        let (line, col) = position(&self.text, span.start);
        Problem {
            line,
            col,
            message: message.into(),
        }
    }

    /// A path of the file, relative to the pipeline file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        if p == "-" {
            return PathBuf::from("-");
        }
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    /// The plugin search path: the file's `[plugins] paths`, then PAPY_PLUGIN_PATH.
    pub fn search_path(&self) -> papy_plugins::SearchPath {
        papy_plugins::SearchPath::with_env(self.file.plugins.paths.iter().map(|p| self.resolve(p)))
    }
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

/// Reads and parses a pipeline file.
///
/// # Errors
/// An unreadable file or a TOML/shape error, with its position.
pub fn load(path: &Path) -> Result<Loaded, Vec<Problem>> {
    load_with(path, &[])
}

fn set_problem(message: String) -> Vec<Problem> {
    vec![Problem {
        line: 0,
        col: 0,
        message,
    }]
}

/// Applies `key.path=value` overrides (`resources.pool.workers=4`,
/// `pipers.0.consume=10`) to a TOML document. The value is read as TOML, or
/// taken as a string when it is not valid TOML.
///
/// # Errors
/// A message naming the override that does not fit the document.
pub fn apply_overrides(text: &str, overrides: &[String]) -> Result<String, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| format!("--set `{o}`: expected KEY.PATH=VALUE"))?;
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let parts: Vec<&str> = key.trim().split('.').collect();
        let (last, path) = parts
            .split_last()
            .ok_or_else(|| format!("--set `{o}`: empty key"))?;
        // Walk from an owned root so tables can be created on the way.
        let mut root = toml::Value::Table(std::mem::take(&mut doc));
        let mut cur = &mut root;
        for part in path {
            cur = match cur {
                toml::Value::Table(t) => t
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new())),
                toml::Value::Array(a) => {
                    let i: usize = part.parse().map_err(|_| {
                        format!("--set `{o}`: `{part}` is not an index into a list")
                    })?;
                    let n = a.len();
                    a.get_mut(i).ok_or_else(|| {
                        format!("--set `{o}`: index {i} is past the end of a list of {n}")
                    })?
                }
                _ => return Err(format!("--set `{o}`: `{part}` is not a table")),
            };
        }
        match cur {
            toml::Value::Table(t) => {
                t.insert(last.to_string(), value);
            }
            toml::Value::Array(a) => {
                let i: usize = last
                    .parse()
                    .map_err(|_| format!("--set `{o}`: `{last}` is not an index into a list"))?;
                let n = a.len();
                *a.get_mut(i).ok_or_else(|| {
                    format!("--set `{o}`: index {i} is past the end of a list of {n}")
                })? = value;
            }
            _ => {
                return Err(format!(
                    "--set `{o}`: the parent of `{last}` is not a table"
                ))
            }
        }
        match root {
            toml::Value::Table(t) => doc = t,
            _ => return Err(format!("--set `{o}`: the document is not a table")),
        }
    }
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// Reads and parses a pipeline file, with `--set` overrides applied first
/// (positions then refer to the rewritten document).
///
/// # Errors
/// An unreadable file, a bad override, or a TOML/shape error with its position.
pub fn load_with(path: &Path, overrides: &[String]) -> Result<Loaded, Vec<Problem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| set_problem(format!("cannot read {}: {e}", path.display())))?;
    let text = if overrides.is_empty() {
        text
    } else {
        apply_overrides(&text, overrides).map_err(set_problem)?
    };
    let file: PipelineFile = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| position(&text, s.start));
        vec![Problem {
            line,
            col,
            message: e.message().trim().replace('\n', "; "),
        }]
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Loaded { file, text, dir })
}

/// Loads the file's plugins (and installs the import resolver).
///
/// # Errors
/// One problem per plugin that cannot be loaded.
pub fn load_plugins(l: &Loaded) -> Vec<Problem> {
    let search = l.search_path();
    let mut problems = Vec::new();
    for p in &l.file.plugins.load {
        let path = l.resolve(p.get_ref());
        let r = if p.get_ref().contains('/') || path.is_file() {
            papy_plugins::load(&path).map(|_| ())
        } else {
            papy_plugins::load_by_name(p.get_ref(), &search).map(|_| ())
        };
        match r {
            Ok(()) | Err(papy_plugins::PluginError::AlreadyLoaded { .. }) => {}
            Err(e) => problems.push(l.at(p.span(), e.to_string())),
        }
    }
    papy_plugins::install_resolver(search);
    problems
}

/// The calls of a piper's worker chain.
pub fn calls(spec: &model::PiperSpec) -> Vec<Result<CallSpec, String>> {
    model::calls(spec)
}

fn worker_of(l: &Loaded, spec: &model::PiperSpec) -> Result<Worker, Vec<Problem>> {
    if spec.worker.get_ref().is_empty() {
        return Err(vec![l.at(
            spec.name.span(),
            format!("piper `{}` has an empty worker chain", spec.name.get_ref()),
        )]);
    }
    model::worker_of(spec).map_err(|ps| {
        ps.into_iter()
            .map(|e| {
                l.at(
                    spec.worker.span(),
                    format!("piper `{}`: {e}", spec.name.get_ref()),
                )
            })
            .collect()
    })
}

/// Every problem of a loaded file (plugins must be loaded first).
pub fn check(l: &Loaded) -> Vec<Problem> {
    let f = &l.file;
    let mut problems = Vec::new();
    for (name, r) in &f.resources {
        let res = r.get_ref();
        if res.stride == Some(0) {
            problems.push(l.at(
                r.span(),
                format!("resource `{name}`: stride must be at least 1"),
            ));
        }
        if res.buffer == Some(0) {
            problems.push(l.at(
                r.span(),
                format!("resource `{name}`: buffer must be at least 1"),
            ));
        }
        // Without a stride the engine sizes its batches within the buffer
        // (adaptive batching): only a fixed stride must fit in it.
        if let (Some(b), Some(stride)) = (res.buffer, res.stride) {
            if b < stride {
                problems.push(l.at(
                    r.span(),
                    format!("resource `{name}`: buffer ({b}) is smaller than stride ({stride}); a buffer must hold at least one stride"),
                ));
            }
        }
        match res.kind {
            Kind::Remote if res.remote.is_empty() => problems.push(l.at(
                r.span(),
                format!("resource `{name}`: kind = \"remote\" needs `remote` commands"),
            )),
            Kind::Redis if res.url.is_none() => problems.push(l.at(
                r.span(),
                format!("resource `{name}`: kind = \"redis\" needs `url`"),
            )),
            Kind::Thread | Kind::Process if res.workers == Some(0) => problems.push(l.at(
                r.span(),
                format!("resource `{name}`: workers must be at least 1"),
            )),
            _ => {}
        }
    }
    let piper_names: BTreeSet<&str> = f
        .pipers
        .iter()
        .map(|p| p.get_ref().name.get_ref().as_str())
        .collect();
    let mut seen = BTreeSet::new();
    for p in &f.pipers {
        let spec = p.get_ref();
        let name = spec.name.get_ref();
        if !seen.insert(name.as_str()) {
            problems.push(l.at(
                spec.name.span(),
                format!("a piper named `{name}` is already defined"),
            ));
        }
        if let Some(r) = &spec.resource {
            if !f.resources.contains_key(r.get_ref()) {
                problems.push(l.at(
                    r.span(),
                    format!("piper `{name}`: unknown resource `{}`", r.get_ref()),
                ));
            }
        }
        if spec.produce == 0 || spec.spawn == 0 || spec.consume == 0 {
            problems.push(l.at(
                spec.name.span(),
                format!("piper `{name}`: produce, spawn and consume must be at least 1"),
            ));
        }
        if spec.timeout.is_some_and(|t| t <= 0.0 || !t.is_finite()) {
            problems.push(l.at(
                spec.name.span(),
                format!("piper `{name}`: timeout must be a positive number of seconds"),
            ));
        }
        if spec.timeout.is_some() && spec.resource.is_none() {
            problems.push(l.at(
                spec.name.span(),
                format!("piper `{name}`: a timeout needs a resource"),
            ));
        }
        let externals: Vec<&toml::Spanned<String>> = spec
            .inputs
            .iter()
            .filter(|i| !piper_names.contains(i.get_ref().as_str()))
            .collect();
        for i in &externals {
            if !f.inputs.contains_key(i.get_ref()) {
                let mut close: Vec<&str> = piper_names
                    .iter()
                    .copied()
                    .chain(f.inputs.keys().map(String::as_str))
                    .collect();
                close.retain(|c| strsim_like(c, i.get_ref()));
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", close.join(", "))
                };
                problems.push(l.at(
                    i.span(),
                    format!(
                        "piper `{name}`: unknown input `{}` (neither a piper nor an input){hint}",
                        i.get_ref()
                    ),
                ));
            }
        }
        if !externals.is_empty() && spec.inputs.len() > 1 {
            problems.push(l.at(
                spec.name.span(),
                format!(
                    "piper `{name}`: an input piper takes exactly one external input and no pipers"
                ),
            ));
        }
        if spec.inputs.is_empty() {
            problems.push(l.at(spec.name.span(), format!("piper `{name}` has no inputs")));
        }
        if let Err(ps) = worker_of(l, spec) {
            problems.extend(ps);
        }
    }
    for (name, o) in &f.outputs {
        let target = o.get_ref().piper.get_ref();
        if !piper_names.contains(target.as_str()) {
            problems.push(l.at(
                o.get_ref().piper.span(),
                format!("output `{name}`: unknown piper `{target}`"),
            ));
        } else if f
            .pipers
            .iter()
            .any(|p| p.get_ref().inputs.iter().any(|i| i.get_ref() == target))
        {
            problems.push(l.at(
                o.get_ref().piper.span(),
                format!(
                    "output `{name}`: `{target}` feeds other pipers; outputs must be output pipers"
                ),
            ));
        }
    }
    // Cycles: build the graph shape with pass-through workers.
    if problems.is_empty() {
        match shape(f) {
            Ok(d) => problems.extend(rate_problems(l, &d)),
            Err(e) => {
                // Point at the input that closes the cycle.
                let span = match &e {
                    Error::Cycle { from, to, .. } => f
                        .pipers
                        .iter()
                        .filter(|p| p.get_ref().name.get_ref() == to)
                        .flat_map(|p| p.get_ref().inputs.iter())
                        .find(|i| i.get_ref() == from)
                        .map(toml::Spanned::span),
                    _ => None,
                };
                problems.push(match span {
                    Some(s) => l.at(s, e.to_string()),
                    None => Problem {
                        line: 0,
                        col: 0,
                        message: e.to_string(),
                    },
                });
            }
        }
    }
    problems
}

/// Items a piper emits per item of the pipeline input, as a fraction.
type Rate = (u64, u64);

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

fn scale(r: Rate, produce: usize, consume: usize) -> Rate {
    let (n, d) = (
        r.0.saturating_mul(produce as u64),
        r.1.saturating_mul(consume as u64),
    );
    let g = gcd(n, d);
    (n / g, d / g)
}

/// produce/consume shape mismatches: the inputs of a join must deliver the
/// same number of items per pipeline input item, or the join reports
/// unmatched items on every run.
fn rate_problems(l: &Loaded, d: &Dagger) -> Vec<Problem> {
    let f = &l.file;
    let spec = |name: &str| {
        f.pipers
            .iter()
            .map(|p| p.get_ref())
            .find(|p| p.name.get_ref() == name)
    };
    let mut rates: std::collections::BTreeMap<String, Rate> = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for p in d.order() {
        let Some(s) = spec(p.name()) else { continue };
        let ups = d.upstream(p.name()).unwrap_or_default();
        let up_rates: Vec<(String, Rate)> = ups
            .iter()
            .filter_map(|u| rates.get(u.name()).map(|r| (u.name().to_string(), *r)))
            .collect();
        let base = up_rates.first().map_or((1, 1), |(_, r)| *r);
        if up_rates.iter().any(|(_, r)| *r != base) {
            let shown: Vec<String> = up_rates
                .iter()
                .map(|(n, (a, b))| {
                    if *b == 1 {
                        format!("`{n}` {a}")
                    } else {
                        format!("`{n}` {a}/{b}")
                    }
                })
                .collect();
            problems.push(l.at(
                s.name.span(),
                format!(
                    "piper `{}` joins inputs of different rates (items per pipeline input: {}); check produce/consume upstream",
                    p.name(),
                    shown.join(", ")
                ),
            ));
        }
        rates.insert(p.name().to_string(), scale(base, s.produce, s.consume));
    }
    problems
}

fn strsim_like(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    a.contains(&b) || b.contains(&a) || {
        let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        common >= 3
    }
}

fn shape(f: &PipelineFile) -> Result<Dagger, Error> {
    let mut d = Dagger::new();
    for p in &f.pipers {
        let w = Worker::new("papy.ipasser")?;
        d.add_piper(Piper::new(p.get_ref().name.get_ref().clone(), w).branch(p.get_ref().branch))?;
    }
    model::connect(f, &mut d)?;
    Ok(d)
}

/// A built pipeline, ready for a Plumber.
pub struct Built {
    /// The DAG.
    pub dagger: Dagger,
    /// External inputs by input piper.
    pub sources: Vec<(String, Source)>,
    /// Outputs: (output name, piper, spec with resolved path).
    pub outputs: Vec<(String, String, Format, PathBuf)>,
}

/// The command of a process worker for this file: `papy worker --stdio`
/// with the file's plugin path and loaded plugins.
fn worker_command(l: &Loaded) -> papy_core::Result<WorkerCommand> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<OsString> = vec!["worker".into(), "--stdio".into()];
    for d in l.search_path().dirs() {
        args.push("--plugin-path".into());
        args.push(d.clone().into_os_string());
    }
    for p in papy_plugins::plugins() {
        args.push("--plugin".into());
        args.push(p.path().as_os_str().to_owned());
    }
    Ok(WorkerCommand::new(exe, args))
}

fn source_of(l: &Loaded, spec: &InputSpec, stop: &StopSignal) -> Result<Source, String> {
    let open_error = |e: std::io::Error| format!("cannot read input: {e}");
    Ok(match spec {
        InputSpec::Lines { path, follow } => {
            let path = l.resolve(path);
            if *follow {
                Source::items(
                    read::follow(&path, Duration::from_millis(100), stop.clone())
                        .map_err(open_error)?,
                )
            } else {
                Source::items(read::lines(&path).map_err(open_error)?)
            }
        }
        InputSpec::Jsonl { path } => {
            Source::items(read::jsonl(l.resolve(path)).map_err(open_error)?)
        }
        InputSpec::Records {
            path,
            delimiter,
            emit_unterminated,
        } => {
            let unterminated = if *emit_unterminated {
                read::Unterminated::Emit
            } else {
                read::Unterminated::Report
            };
            Source::items(
                read::records(l.resolve(path), delimiter.as_deref())
                    .map_err(open_error)?
                    .unterminated(unterminated),
            )
        }
        InputSpec::Msgpack { path } => {
            Source::items(read::msgpack(l.resolve(path)).map_err(open_error)?)
        }
        InputSpec::Range { start, end } => Source::values(*start..*end),
        InputSpec::Dir { path } => {
            let dir = l.resolve(path);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            Source::values(
                files
                    .into_iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            )
        }
    })
}

/// Builds the pipeline (plugins must be loaded and the file checked).
///
/// # Errors
/// A message saying what could not be built.
pub fn build(l: &Loaded, stop: &StopSignal) -> Result<Built, String> {
    let f = &l.file;
    let dagger = model::dagger_of(f, &|| worker_command(l)).map_err(|e| e.to_string())?;
    let piper_names: BTreeSet<&str> = f
        .pipers
        .iter()
        .map(|p| p.get_ref().name.get_ref().as_str())
        .collect();
    let mut sources = Vec::new();
    for p in &f.pipers {
        let spec = p.get_ref();
        if let [only] = spec.inputs.as_slice() {
            if !piper_names.contains(only.get_ref().as_str()) {
                let input = f
                    .inputs
                    .get(only.get_ref())
                    .ok_or_else(|| format!("unknown input `{}`", only.get_ref()))?;
                sources.push((
                    spec.name.get_ref().clone(),
                    source_of(l, input.get_ref(), stop)?,
                ));
            }
        }
    }
    let outputs = f
        .outputs
        .iter()
        .map(|(name, o): (&String, &toml::Spanned<OutputSpec>)| {
            let o = o.get_ref();
            (
                name.clone(),
                o.piper.get_ref().clone(),
                o.format,
                l.resolve(&o.path),
            )
        })
        .collect();
    Ok(Built {
        dagger,
        sources,
        outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_nested_keys_and_list_items() {
        let text = "[resources.pool]\nworkers = 2\n\n[[pipers]]\nname = \"a\"\nconsume = 1\n";
        let out = apply_overrides(
            text,
            &[
                "resources.pool.workers=4".into(),
                "pipers.0.consume=10".into(),
                "inputs.x.path=data.txt".into(),
            ],
        )
        .unwrap();
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["resources"]["pool"]["workers"].as_integer(), Some(4));
        assert_eq!(t["pipers"][0]["consume"].as_integer(), Some(10));
        assert_eq!(t["inputs"]["x"]["path"].as_str(), Some("data.txt"));
        assert!(apply_overrides(text, &["pipers.5.consume=1".into()])
            .unwrap_err()
            .contains("past the end"));
        assert!(apply_overrides(text, &["novalue".into()])
            .unwrap_err()
            .contains("KEY.PATH=VALUE"));
    }
}
