//! The file's `[inputs]` as [`Source`]s for the input pipers, and its
//! `[outputs]` with their paths resolved.

use std::path::PathBuf;
use std::time::Duration;

use papy_core::func::read::{self, StopSignal};
use papy_core::Source;

use crate::error::{ConfigError, Result};
use crate::load::Loaded;
use crate::model::{Format, InputSpec};

/// An output of the file: its name, piper, format and resolved path.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The output's name.
    pub name: String,
    /// The output piper whose items it writes.
    pub piper: String,
    /// How items are written.
    pub format: Format,
    /// Where (`-` = stdout).
    pub path: PathBuf,
}

fn source_of(l: &Loaded, name: &str, spec: &InputSpec, stop: &StopSignal) -> Result<Source> {
    let open = |path: &PathBuf, e: std::io::Error| ConfigError::Io {
        path: format!("input `{name}`: {}", path.display()),
        source: e,
    };
    Ok(match spec {
        InputSpec::Lines { path, follow } => {
            let path = l.resolve(path);
            if *follow {
                Source::items(
                    read::follow(&path, Duration::from_millis(100), stop.clone())
                        .map_err(|e| open(&path, e))?,
                )
            } else {
                Source::items(read::lines(&path).map_err(|e| open(&path, e))?)
            }
        }
        InputSpec::Blocks { path, bytes } => {
            let path = l.resolve(path);
            // Validated: 1 to MAX_BLOCK_BYTES.
            let size = bytes.map_or(read::DEFAULT_BLOCK_BYTES, |b| {
                usize::try_from(b).map_or(1, |b| b.min(papy_core::limits::MAX_BLOCK_BYTES))
            });
            Source::items(read::blocks(&path, size).map_err(|e| open(&path, e))?)
        }
        InputSpec::Jsonl { path } => {
            let path = l.resolve(path);
            Source::items(read::jsonl(path.clone()).map_err(|e| open(&path, e))?)
        }
        InputSpec::Records {
            path,
            delimiter,
            emit_unterminated,
        } => {
            let path = l.resolve(path);
            let unterminated = if *emit_unterminated {
                read::Unterminated::Emit
            } else {
                read::Unterminated::Report
            };
            Source::items(
                read::records(path.clone(), delimiter.as_deref())
                    .map_err(|e| open(&path, e))?
                    .unterminated(unterminated),
            )
        }
        InputSpec::Msgpack { path } => {
            let path = l.resolve(path);
            Source::items(read::msgpack(path.clone()).map_err(|e| open(&path, e))?)
        }
        InputSpec::Range { start, end } => Source::values(*start..*end),
        InputSpec::Dir { path } => {
            let dir = l.resolve(path);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| open(&dir, e))?
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

/// The sources of the input pipers, `(piper, source)`, opened now;
/// `stop` ends followed inputs.
///
/// # Errors
/// An input file that cannot be opened.
pub fn sources(l: &Loaded, stop: &StopSignal) -> Result<Vec<(String, Source)>> {
    let f = &l.file;
    let mut out = Vec::new();
    for spec in &f.pipers {
        if let [only] = spec.inputs.as_slice() {
            if f.piper(only).is_none() {
                if let Some(input) = f.inputs.get(only) {
                    out.push((spec.name.clone(), source_of(l, only, input, stop)?));
                }
            }
        }
    }
    Ok(out)
}

/// The file's outputs, paths resolved against the file's directory.
pub fn outputs(l: &Loaded) -> Vec<Output> {
    l.file
        .outputs
        .iter()
        .map(|(name, o)| Output {
            name: name.clone(),
            piper: o.piper.clone(),
            format: o.format,
            path: l.resolve(&o.path),
        })
        .collect()
}
