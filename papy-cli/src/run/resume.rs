//! `--resume FILE`: what a run continues from, checked against the
//! pipeline, and the state it saves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use papy_core::Source;

use super::failures::{Failures, Positions};
use super::output::Output;
use super::rerun::{self, State};
use super::signals::OnCancel;
use super::trace::Trace;

/// The inputs a resume narrows: the sources by input piper, the input
/// (of the file) an input piper reads, the run's failures (told where
/// each failed item sits in its input).
type Inputs<'a> = (
    &'a mut Vec<(String, Source)>,
    &'a dyn Fn(&str) -> String,
    &'a mut Failures,
);

/// What `--resume` continues from.
#[derive(Clone)]
pub(super) struct Resume {
    /// The state file.
    pub(super) path: PathBuf,
    pipeline: String,
    input: String,
    pub(super) start: u64,
    pub(super) outputs: Vec<String>,
}

impl Resume {
    /// The state to save after what `o` delivered.
    pub(super) fn state(&self, o: &Output, complete: bool) -> State {
        // An output that an earlier run took further than the others keeps
        // its count until this run passes it.
        let outputs: BTreeMap<String, u64> = self
            .outputs
            .iter()
            .map(|p| (p.clone(), self.start + o.delivered_or_skipped(p)))
            .collect();
        State {
            pipeline: self.pipeline.clone(),
            input: self.input.clone(),
            done: outputs.values().copied().min().unwrap_or(self.start),
            outputs,
            complete,
        }
    }

    /// What a second signal does: save the progress (unless a write
    /// failed, when the counts include lost items).
    pub(super) fn on_cancel(self) -> OnCancel {
        Box::new(move |o: &Output| {
            if o.write_error.is_none() {
                let _ = rerun::write_state(&self.path, &self.state(o, false));
            }
        })
    }

    /// Checks that the pipeline of `file` can resume (one input, every
    /// output one item per input item), reads the state at `path` and skips
    /// the input items it says are done. `None`: the run is complete.
    pub(super) fn prepare(
        path: &Path,
        file: &Path,
        (sources, input_of, failures): Inputs<'_>,
        output_pipers: &[String],
        trace: &Trace,
    ) -> anyhow::Result<Option<(Resume, Option<State>)>> {
        let pipeline_id = std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .display()
            .to_string();
        let [(piper, _)] = sources.as_slice() else {
            bail!(
                "--resume needs a pipeline with one input (this one has {})",
                sources.len()
            );
        };
        let input = input_of(piper);
        if let Some(o) = output_pipers
            .iter()
            .find(|o| trace.output_of.get(*o) != Some(&input))
        {
            bail!(
                    "--resume needs every output to deliver one item per input item, in input order; \
                     output piper `{o}` does not (consume, produce, joins of other inputs or ordered = false on its way)"
                );
        }
        if output_pipers.is_empty() {
            bail!("--resume needs a pipeline with outputs (it counts what they received)");
        }
        let prior = rerun::read_state(path)?;
        if let Some(s) = &prior {
            if s.pipeline != pipeline_id || s.input != input {
                bail!(
                    "{}: the state of input `{}`, not `{input}`",
                    path.display(),
                    s.input
                );
            }
            if s.complete {
                eprintln!(
                    "papy: {}: the run is complete; nothing to resume",
                    path.display()
                );
                return Ok(None);
            }
            eprintln!(
                "papy: resuming from {}: {} input item(s) done",
                path.display(),
                s.done
            );
        }
        let start = prior.as_ref().map_or(0, |s| s.done);
        failures
            .positions
            .insert(input.clone(), Positions::Offset(start));
        let skip = usize::try_from(start).unwrap_or(usize::MAX);
        *sources = std::mem::take(sources)
            .into_iter()
            .map(|(p, src)| (p, Source::items(src.into_items().skip(skip))))
            .collect();
        let resume = Resume {
            path: path.to_path_buf(),
            pipeline: pipeline_id,
            input,
            start,
            outputs: output_pipers.to_vec(),
        };
        Ok(Some((resume, prior)))
    }
}
