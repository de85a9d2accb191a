//! The one validation pass of a loaded file: references, ranges, worker
//! chains, shapes and cycles, each problem at its position. `papy check`,
//! `papy run` and [`PlumberFile::load`](crate::PlumberFile::load) all call
//! it; whatever it accepts builds (see the tests walking `tests/broken`).

use std::collections::{BTreeMap, BTreeSet};

use papy_core::numap::settings::NuMapSizes;
use papy_core::{Dagger, Error, Piper, Worker};

use crate::chain;
use crate::load::Loaded;
use crate::model::{PipelineFile, PiperSpec};
use crate::problem::Problem;
use crate::schema::did_you_mean;
use crate::spans::KeyPath;

fn kp(parts: &[&str]) -> KeyPath {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Every problem of a loaded file (its plugins must be loaded first, so
/// that their functions are known).
pub fn validate(l: &Loaded) -> Vec<Problem> {
    let f = &l.file;
    let mut problems = resource_problems(l);
    let piper_names: BTreeSet<&str> = f.pipers.iter().map(|p| p.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    for (i, spec) in f.pipers.iter().enumerate() {
        piper_problems(l, i, spec, &piper_names, &mut seen, &mut problems);
    }
    problems.extend(block_problems(l));
    if !l.library {
        problems.extend(file_problems(l));
    }
    output_problems(l, &piper_names, &mut problems);
    shape_problems(l, &mut problems);
    problems
}

/// The problems of each resource: its kind's functions and its sizes.
fn resource_problems(l: &Loaded) -> Vec<Problem> {
    let (f, s) = (&l.file, &l.spans);
    let mut problems = Vec::new();
    for (name, r) in &f.resources {
        let at = |key: &str| kp(&["resources", name, key]);
        // Looked up now that the plugins are loaded (an `init` may name
        // one of their functions).
        for (rel, e) in crate::kinds::check_functions(&r.numap.kind, &r.settings) {
            let mut path = kp(&["resources", name]);
            path.extend(rel);
            problems.push(s.at(&path, format!("resource `{name}`: {e}")));
        }
        let sizes = NuMapSizes {
            stride: r.numap.stride,
            buffer: r.numap.buffer,
            // As in PaPy, a thread resource with a stride and no `workers`
            // has one thread per item of the stride.
            threads_from_stride: r.numap.kind == "thread" && r.settings.get("workers").is_none(),
        };
        for (key, e) in sizes.validate() {
            problems.push(s.at(&at(key), format!("resource `{name}`: {e}")));
        }
    }
    problems
}

/// The problems of piper `i`: its name (`seen` holds the names before
/// it), resource, options, inputs and worker chain.
fn piper_problems<'a>(
    l: &'a Loaded,
    i: usize,
    spec: &'a PiperSpec,
    piper_names: &BTreeSet<&str>,
    seen: &mut BTreeSet<&'a str>,
    problems: &mut Vec<Problem>,
) {
    let (f, s) = (&l.file, &l.spans);
    let idx = i.to_string();
    let at = |key: &str| kp(&["pipers", &idx, key]);
    let name = &spec.name;
    if name.is_empty() {
        problems.push(s.at(&at("name"), "a piper needs a non-empty name"));
    }
    if !seen.insert(name.as_str()) {
        problems.push(s.at(
            &at("name"),
            format!("a piper named `{name}` is already defined"),
        ));
    }
    if let Some(r) = &spec.resource {
        if !f.resources.contains_key(r) && !l.unread.contains(r) {
            let hint = did_you_mean(r, f.resources.keys().map(String::as_str))
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            problems.push(s.at(
                &at("resource"),
                format!("piper `{name}`: unknown resource `{r}`{hint}"),
            ));
        }
    }
    if let Err((key, e)) = spec.options.validate(spec.resource.is_some()) {
        problems.push(s.at(&at(key), format!("piper `{name}`: {e}")));
    }
    input_problems(l, i, spec, piper_names, problems);
    worker_problems(l, i, spec, problems);
}

/// The problems of piper `i`'s inputs: listed twice, unknown, or an
/// input piper that takes more than its one external input.
fn input_problems(
    l: &Loaded,
    i: usize,
    spec: &PiperSpec,
    piper_names: &BTreeSet<&str>,
    problems: &mut Vec<Problem>,
) {
    let (f, s) = (&l.file, &l.spans);
    let idx = i.to_string();
    let at = |key: &str| kp(&["pipers", &idx, key]);
    let name = &spec.name;
    let mut externals = 0;
    for (j, input) in spec.inputs.iter().enumerate() {
        if spec.inputs[..j].contains(input) {
            problems.push(s.at(
                &kp(&["pipers", &idx, "inputs", &j.to_string()]),
                format!("piper `{name}`: input `{input}` is listed twice"),
            ));
            continue;
        }
        if piper_names.contains(input.as_str()) {
            continue;
        }
        if l.unread.contains(input) {
            continue;
        }
        externals += 1;
        if !f.inputs.contains_key(input) {
            let known = piper_names
                .iter()
                .copied()
                .chain(f.inputs.keys().map(String::as_str));
            let hint = did_you_mean(input, known)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            problems.push(s.at(
                &kp(&["pipers", &idx, "inputs", &j.to_string()]),
                format!(
                    "piper `{name}`: unknown input `{input}` (neither a piper nor an input){hint}"
                ),
            ));
        }
    }
    if externals > 0 && spec.inputs.len() > 1 {
        problems.push(s.at(
            &at("inputs"),
            format!(
                "piper `{name}`: an input piper takes exactly one external input and no pipers"
            ),
        ));
    }
    if spec.inputs.is_empty() && !l.library {
        problems.push(s.at(&at("name"), format!("piper `{name}` has no inputs")));
    }
}

/// The problems of piper `i`'s worker chain: its functions and arguments,
/// and how many values each takes.
fn worker_problems(l: &Loaded, i: usize, spec: &PiperSpec, problems: &mut Vec<Problem>) {
    let (f, s) = (&l.file, &l.spans);
    let idx = i.to_string();
    let name = &spec.name;
    let at = |key: &str| kp(&["pipers", &idx, key]);
    let provided = spec
        .resource
        .as_ref()
        .and_then(|r| f.resources.get(r))
        .map(|r| r.provided_functions())
        .unwrap_or_default();
    match chain::worker_on(spec, &provided) {
        Err(ps) => problems.extend(ps.into_iter().map(|(rel, e)| {
            let mut path = at("worker");
            path.extend(rel);
            s.at(&path, format!("piper `{name}`: {e}"))
        })),
        Ok(w) => {
            let pipes = spec.inputs.len().max(1);
            problems.extend(chain::width_problems(&w, pipes).into_iter().map(|(j, e)| {
                s.at(
                    &kp(&["pipers", &idx, "worker", &j.to_string()]),
                    format!("piper `{name}`: {e}"),
                )
            }));
        }
    }
}

/// The problems of each output: an unknown piper, or one that feeds others.
fn output_problems(l: &Loaded, piper_names: &BTreeSet<&str>, problems: &mut Vec<Problem>) {
    let (f, s) = (&l.file, &l.spans);
    for (name, o) in &f.outputs {
        let at = kp(&["outputs", name, "piper"]);
        let target = &o.piper;
        if l.unread.contains(target) {
            continue;
        }
        if !piper_names.contains(target.as_str()) {
            let hint = did_you_mean(target, piper_names.iter().copied())
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            problems.push(s.at(
                &at,
                format!("output `{name}`: unknown piper `{target}`{hint}"),
            ));
        } else if f
            .pipers
            .iter()
            .any(|p| p.inputs.iter().any(|i| i == target))
        {
            problems.push(s.at(
                &at,
                format!(
                    "output `{name}`: `{target}` feeds other pipers; outputs must be output pipers"
                ),
            ));
        }
    }
}

/// A cycle, whatever else is wrong; the rates, only of a file otherwise
/// sound (they assume every piper and pipe is right).
fn shape_problems(l: &Loaded, problems: &mut Vec<Problem>) {
    let (f, s) = (&l.file, &l.spans);
    match shape(f) {
        Ok(d) if problems.is_empty() => problems.extend(rate_problems(l, &d)),
        Ok(_) => {}
        Err(e @ Error::Cycle { .. }) => {
            // Point at the input that closes the cycle.
            let path = match &e {
                Error::Cycle { from, to, .. } => f.pipers.iter().enumerate().find_map(|(i, p)| {
                    let j = p.inputs.iter().position(|x| x == from)?;
                    (p.name == *to)
                        .then(|| kp(&["pipers", &i.to_string(), "inputs", &j.to_string()]))
                }),
                _ => None,
            };
            problems.push(match path {
                Some(p) => s.at(&p, e.to_string()),
                None => Problem::whole(e.to_string()),
            });
        }
        Err(e) if problems.is_empty() => problems.push(Problem::whole(e.to_string())),
        // Names already reported (empty, twice).
        Err(_) => {}
    }
}

/// Adds the pipes named by the pipers' `inputs` (names that are pipers).
///
/// # Errors
/// A cycle.
pub(crate) fn connect(f: &PipelineFile, d: &mut Dagger) -> papy_core::Result<()> {
    for spec in &f.pipers {
        for i in &spec.inputs {
            if d.piper(i).is_some() {
                d.connect(i, &spec.name)?;
            }
        }
    }
    Ok(())
}

/// The graph's shape, with pass-through workers.
fn shape(f: &PipelineFile) -> papy_core::Result<Dagger> {
    let mut d = Dagger::new();
    for p in &f.pipers {
        let w = Worker::new("papy.ipasser")?;
        d.add_piper(Piper::new(p.name.clone(), w).branch(p.options.branch))?;
    }
    connect(f, &mut d)?;
    Ok(d)
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
    let mut rates: BTreeMap<String, Rate> = BTreeMap::new();
    let mut unordered: BTreeMap<String, bool> = BTreeMap::new();
    let mut problems = Vec::new();
    for p in d.order() {
        let Some((i, spec)) = f
            .pipers
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == p.name())
        else {
            continue;
        };
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
            problems.push(l.spans.at(
                &kp(&["pipers", &i.to_string(), "inputs"]),
                format!(
                    "piper `{}` joins inputs of different rates (items per pipeline input: {}); check produce/consume upstream",
                    p.name(),
                    shown.join(", ")
                ),
            ));
        }
        rates.insert(
            p.name().to_string(),
            scale(base, spec.options.produce, spec.options.consume),
        );
        // A join pairs items by position: an input that arrives in
        // completion order would pair unrelated items.
        let unordered_ups: Vec<&str> = ups
            .iter()
            .map(|u| u.name())
            .filter(|u| unordered.get(*u).copied().unwrap_or(false))
            .collect();
        if ups.len() > 1 && !unordered_ups.is_empty() {
            problems.push(l.spans.at(
                &kp(&["pipers", &i.to_string(), "inputs"]),
                format!(
                    "piper `{}` joins inputs, but {} deliver(s) items in completion order (ordered = false upstream), so the join would pair unrelated items; keep the branches of a join ordered",
                    p.name(),
                    unordered_ups.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let own = match &spec.resource {
            Some(r) => !spec
                .options
                .ordered
                .unwrap_or_else(|| f.resources.get(r).is_none_or(|r| r.numap.ordered)),
            None => false,
        };
        unordered.insert(p.name().to_string(), own || !unordered_ups.is_empty());
    }
    problems
}

/// `blocks` inputs whose block size is out of range.
fn block_problems(l: &Loaded) -> Vec<Problem> {
    use crate::model::InputSpec;
    let max = papy_core::limits::MAX_BLOCK_BYTES;
    let mut out = Vec::new();
    for (name, input) in &l.file.inputs {
        if let InputSpec::Blocks { bytes: Some(b), .. } = input {
            if !(1..=max as i64).contains(b) {
                out.push(l.spans.at(
                    &kp(&["inputs", name, "bytes"]),
                    format!("input `{name}`: bytes must be from 1 to {max} (1 GiB), not {b}"),
                ));
            }
        }
    }
    out
}

/// Inputs whose file or directory is missing, outputs whose directory is:
/// `papy run` would stop on them before the first item.
fn file_problems(l: &Loaded) -> Vec<Problem> {
    use crate::model::InputSpec;
    let mut out = Vec::new();
    for (name, input) in &l.file.inputs {
        let (path, dir) = match input {
            InputSpec::Lines { path, .. }
            | InputSpec::Blocks { path, .. }
            | InputSpec::Jsonl { path }
            | InputSpec::Records { path, .. }
            | InputSpec::Msgpack { path } => (path, false),
            InputSpec::Dir { path } => (path, true),
            InputSpec::Range { .. } => continue,
        };
        if path == "-" {
            continue;
        }
        let resolved = l.resolve(path);
        let problem = match std::fs::metadata(&resolved) {
            Err(e) => Some(format!("cannot read {}: {e}", resolved.display())),
            Ok(m) if dir && !m.is_dir() => {
                Some(format!("{} is not a directory", resolved.display()))
            }
            Ok(m) if !dir && m.is_dir() => {
                Some(format!("{} is a directory, not a file", resolved.display()))
            }
            Ok(m) if matches!(input, InputSpec::Lines { follow: true, .. }) && !m.is_file() => {
                Some(format!(
                    "{}: only regular files can be followed",
                    resolved.display()
                ))
            }
            Ok(_)
                if matches!(input, InputSpec::Lines { follow: true, .. })
                    && (path.ends_with(".gz") || path.ends_with(".zst")) =>
            {
                Some(format!(
                    "{}: a compressed file cannot be followed",
                    resolved.display()
                ))
            }
            Ok(_) => None,
        };
        if let Some(p) = problem {
            out.push(l.spans.at(
                &kp(&["inputs", name, "path"]),
                format!("input `{name}`: {p}"),
            ));
        }
    }
    for (name, o) in &l.file.outputs {
        if o.path == "-" {
            continue;
        }
        let resolved = l.resolve(&o.path);
        let parent = resolved
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            out.push(l.spans.at(
                &kp(&["outputs", name, "path"]),
                format!(
                    "output `{name}`: the directory {} does not exist",
                    parent.display()
                ),
            ));
        }
    }
    out
}
