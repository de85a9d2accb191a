//! What the built-ins of a Worker chain reach outside their items, read
//! from their bound arguments: the [`Permissions`](crate::permissions)
//! a worker needs to run them, which `papy run` grants the workers it
//! starts, and nothing more.

use std::path::{Path, PathBuf};

use crate::value::Value;
use crate::worker::{Step, Worker};

/// The effects of one or more chains: programs, the directories files are
/// written to or read from, sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// A function starts programs (`papy.script`).
    pub programs: bool,
    /// Directories files are made, written or read in (absolute when the
    /// working directory is known).
    pub dirs: Vec<PathBuf>,
    /// A function opens sockets (`papy.dump_item` with `kind = "socket"`).
    pub network: bool,
    /// Folders `papy.dump_item` makes items in (its `dir`): the run's
    /// locators may name what they hold ([`add_item_dir`](crate::run_key::add_item_dir)).
    pub item_dirs: Vec<PathBuf>,
}

impl Needs {
    /// Adds what `worker`'s steps need.
    ///
    /// ```
    /// use papy_core::func::effects::Needs;
    /// use papy_core::{Args, Value, Worker};
    /// let w = Worker::build("papy.dump_lines", Args::Positional(vec![Value::from("/tmp/out.txt")])).unwrap();
    /// let mut needs = Needs::default();
    /// needs.add(&w);
    /// assert_eq!(needs.dirs, vec![std::path::PathBuf::from("/tmp")]);
    /// assert!(!needs.programs && !needs.network);
    /// ```
    pub fn add(&mut self, worker: &Worker) {
        for step in worker.steps() {
            self.add_step(step);
        }
    }

    fn add_step(&mut self, step: &Step) {
        let name = crate::registry::normalise(&step.function().name);
        match name.as_str() {
            "papy.script" => self.programs = true,
            "papy.dump_lines" | "papy.dump_jsonl" | "papy.dump_stream" | "papy.dump_msgpack" => {
                if let Some(path) = arg(step, "path").and_then(Value::as_str) {
                    if path != "-" {
                        let parent = Path::new(path)
                            .parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new("."));
                        self.dir(parent);
                    }
                }
            }
            "papy.dump_item" => {
                // Without a `dir`: the run's item folder, which every
                // worker may write to.
                if arg(step, "kind").and_then(Value::as_str) == Some("socket") {
                    self.network = true;
                } else if let Some(d) = arg(step, "dir").and_then(Value::as_str) {
                    self.dir(Path::new(d));
                    let d = std::path::absolute(d).unwrap_or_else(|_| PathBuf::from(d));
                    if !self.item_dirs.contains(&d) {
                        self.item_dirs.push(d);
                    }
                }
            }
            "papy.load_item" => {
                if let Some(d) = arg(step, "dir").and_then(Value::as_str) {
                    self.dir(Path::new(d));
                }
            }
            _ => {}
        }
    }

    fn dir(&mut self, d: &Path) {
        let d = std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf());
        if !self.dirs.contains(&d) {
            self.dirs.push(d);
        }
    }
}

/// The bound argument of `step`'s parameter `name` (null when left out).
fn arg<'a>(step: &'a Step, name: &str) -> Option<&'a Value> {
    let params = step.function().params.as_ref()?;
    let i = params.iter().position(|p| p.name == name)?;
    step.args().get(i).filter(|v| !matches!(v, Value::Null))
}

#[cfg(test)]
mod tests;
