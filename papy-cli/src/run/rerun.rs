//! Running again: `--retry-failed FILE` reruns only the input items an
//! errors file lists; `--resume FILE` continues a run where it stopped.
//!
//! What is exact: after a graceful stop (SIGINT, SIGTERM, `--max-errors`)
//! or the end of a run, the state file matches the outputs, so a resumed
//! run writes every remaining item once. After a crash or SIGKILL, the
//! items finished since the last checkpoint (taken every second) are run
//! again and written twice: at least once, not exactly once.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::{bail, Context};
use papy_core::Source;
use serde::{Deserialize, Serialize};

use super::failures::{Failures, Positions};

/// Longest line of an errors file read back.
const MAX_LINE: usize = 1 << 20;

/// Where a resumable run stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct State {
    /// The pipeline file (its canonical path).
    #[serde(default)]
    pub pipeline: String,
    /// The input the run reads.
    pub input: String,
    /// Input items whose results every output has (from the start of the input).
    pub done: u64,
    /// Items each output piper delivered (from the start of the input).
    pub outputs: BTreeMap<String, u64>,
    /// The input was read to its end.
    pub complete: bool,
}

/// Reads a state file; `None` when it does not exist yet.
///
/// # Errors
/// An unreadable or malformed file.
pub(super) fn read_state(path: &Path) -> anyhow::Result<Option<State>> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a papy state file", path.display())),
    }
}

/// Writes a state file (a new file renamed over the old one).
///
/// # Errors
/// I/O errors.
pub(super) fn write_state(path: &Path, s: &State) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The input indices an errors file lists, by input, sorted and unique.
///
/// # Errors
/// An unreadable file, a line that is not JSON, or a failure not traced
/// to an input item (its line number is named).
pub(super) fn read_failed(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u64>>> {
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut r = std::io::BufReader::new(f);
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        let read = Read::by_ref(&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        n += 1;
        if line.len() > MAX_LINE {
            bail!("{}:{n}: line longer than {MAX_LINE} bytes", path.display());
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .with_context(|| format!("{}:{n}: not a JSON line", path.display()))?;
        match (v["input"].as_str(), v["index"].as_u64()) {
            (Some(input), Some(i)) => out.entry(input.to_string()).or_default().push(i),
            _ => bail!(
                "{}:{n}: this failure is not traced to an input item (node `{}`), so it cannot be rerun alone",
                path.display(),
                v["node"].as_str().unwrap_or("?")
            ),
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    Ok(out)
}

/// `--retry-failed FILE`: keeps only the input items the errors file at
/// `path` lists (a pipeline of one input: items of several meet in joins).
///
/// # Errors
/// Several inputs, an unreadable file, or one naming another input.
pub(super) fn restrict(
    path: &Path,
    sources: &mut Vec<(String, Source)>,
    input_of: &dyn Fn(&str) -> String,
    failures: &mut Failures,
) -> anyhow::Result<()> {
    if sources.len() != 1 {
        bail!(
            "--retry-failed needs a pipeline with one input (this one has {}): items of several inputs meet in joins",
            sources.len()
        );
    }
    let listed = read_failed(path)?;
    for input in listed.keys() {
        if !sources.iter().any(|(p, _)| &input_of(p) == input) {
            bail!(
                "{}: input `{input}` is not an input of this pipeline",
                path.display()
            );
        }
    }
    let total: usize = listed.values().map(Vec::len).sum();
    eprintln!(
        "papy: rerunning {total} failed item(s) listed in {}",
        path.display()
    );
    *sources = std::mem::take(sources)
        .into_iter()
        .map(|(piper, src)| {
            let keep = listed.get(&input_of(&piper)).cloned().unwrap_or_default();
            failures
                .positions
                .insert(input_of(&piper), Positions::Listed(keep.clone()));
            let last = keep.last().copied();
            let items = src
                .into_items()
                .enumerate()
                .take_while(move |(i, _)| last.is_some_and(|l| *i as u64 <= l))
                .filter(move |(i, _)| keep.binary_search(&(*i as u64)).is_ok())
                .map(|(_, x)| x);
            (piper, Source::items(items))
        })
        .collect();
    Ok(())
}
