//! Where a run's items go: the output files (or stdout), the errors file,
//! and the counts a resumed run continues from. One lock guards them all,
//! so a checkpoint sees exactly what was written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::Context;
use papy_config::model::Format;
use papy_core::{Item, Value};

use super::failures::Failures;

/// Locks the outputs, whatever a panicking holder left.
pub(super) fn lock(o: &Mutex<Output>) -> MutexGuard<'_, Output> {
    o.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Writer {
    label: String,
    stdout: bool,
    w: BufWriter<Box<dyn Write + Send>>,
    broken: bool,
}

/// The run's outputs, errors file and counters.
pub(super) struct Output {
    writers: Vec<Writer>,
    errors: Option<usize>,
    /// Failed items.
    pub failures: Failures,
    delivered: BTreeMap<String, u64>,
    skip: BTreeMap<String, u64>,
    /// The first write error of a file (not a closed stdout).
    pub write_error: Option<String>,
    /// stdout was closed by its reader (`papy run ... | head`).
    pub stdout_closed: bool,
}

/// A value as an output line.
pub(super) fn render(v: &Value, format: Format) -> String {
    match (format, v) {
        (Format::Lines, Value::Str(s)) => s.to_string(),
        _ => serde_json::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>")),
    }
}

impl Output {
    /// No files yet.
    pub(super) fn new(failures: Failures) -> Output {
        Output {
            writers: Vec::new(),
            errors: None,
            failures,
            delivered: BTreeMap::new(),
            skip: BTreeMap::new(),
            write_error: None,
            stdout_closed: false,
        }
    }

    /// Opens `path` (`-` = stdout), appending when `append`; returns its handle.
    ///
    /// # Errors
    /// The file cannot be created.
    pub(super) fn open(&mut self, path: &Path, append: bool) -> anyhow::Result<usize> {
        let stdout = path.as_os_str() == "-";
        let w: Box<dyn Write + Send> = if stdout {
            Box::new(std::io::stdout())
        } else if append {
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            )
        } else {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        };
        self.writers.push(Writer {
            label: path.display().to_string(),
            stdout,
            w: BufWriter::new(w),
            broken: false,
        });
        Ok(self.writers.len() - 1)
    }

    /// Opens the errors file.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub(super) fn open_errors(&mut self, path: &Path, append: bool) -> anyhow::Result<()> {
        self.errors = Some(self.open(path, append)?);
        Ok(())
    }

    /// Items of output piper `piper` already written by an earlier run.
    pub(super) fn skip_first(&mut self, piper: &str, n: u64) {
        self.skip.insert(piper.to_string(), n);
    }

    /// Items that reached each output piper in this run (skipped ones included).
    pub(super) fn delivered(&self) -> &BTreeMap<String, u64> {
        &self.delivered
    }

    /// Items of output piper `piper` written so far, counting those an
    /// earlier run wrote (this run's position, or the skipped count when
    /// this run has not reached it yet).
    pub(super) fn delivered_or_skipped(&self, piper: &str) -> u64 {
        let d = self.delivered.get(piper).copied().unwrap_or(0);
        d.max(self.skip.get(piper).copied().unwrap_or(0))
    }

    fn failed(&mut self, i: usize, e: std::io::Error) {
        let w = &mut self.writers[i];
        w.broken = true;
        if w.stdout && e.kind() == ErrorKind::BrokenPipe {
            self.stdout_closed = true;
        } else if self.write_error.is_none() {
            self.write_error = Some(format!("writing {}: {e}", w.label));
        }
    }

    fn write(&mut self, i: usize, line: &str) {
        let Some(w) = self.writers.get_mut(i) else {
            return;
        };
        if w.broken {
            return;
        }
        // One write per line: a buffer spill never splits a line from its newline.
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if let Err(e) = w.w.write_all(&bytes) {
            self.failed(i, e);
        }
    }

    /// An item reaching output piper `piper`, written to `targets`.
    pub(super) fn deliver(&mut self, piper: &str, targets: &[(usize, Format)], item: &Item) {
        let at = self.delivered.entry(piper.to_string()).or_insert(0);
        let index = *at;
        *at += 1;
        if index < self.skip.get(piper).copied().unwrap_or(0) {
            return;
        }
        match item {
            Ok(v) => {
                for (i, format) in targets {
                    let line = render(v, *format);
                    self.write(*i, &line);
                }
            }
            Err(e) => {
                if let Some(f) = self.failures.record(piper, index, e) {
                    if let Some(line) = &f.shown {
                        eprintln!("{line}");
                    }
                    if let Some(i) = self.errors {
                        self.write(i, &f.json.to_string());
                    }
                }
            }
        }
    }

    /// Flushes every file; a closed stdout is not an error.
    pub(super) fn flush(&mut self) {
        for i in 0..self.writers.len() {
            if self.writers[i].broken {
                continue;
            }
            if let Err(e) = self.writers[i].w.flush() {
                self.failed(i, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::trace::Trace;
    use super::*;

    #[test]
    fn a_faster_output_keeps_its_count_until_the_run_passes_it() {
        let mut o = Output::new(Failures::new(Trace::default(), 0, None));
        // An earlier run wrote 10 items of `a` and 3 of `b`; this run
        // starts at 3 (the smaller), so `a` skips its first 7.
        o.skip_first("a", 7);
        for _ in 0..5 {
            o.deliver("a", &[], &Ok(Value::Int(1)));
            o.deliver("b", &[], &Ok(Value::Int(1)));
        }
        assert_eq!(o.delivered_or_skipped("a"), 7);
        assert_eq!(o.delivered_or_skipped("b"), 5);
        for _ in 0..5 {
            o.deliver("a", &[], &Ok(Value::Int(1)));
        }
        assert_eq!(o.delivered_or_skipped("a"), 10);
    }
}
