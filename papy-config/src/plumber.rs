//! Saving and loading a [`Plumber`]'s pipeline, and running a pipeline
//! file in one call ([`Pipeline`]).

use std::collections::BTreeMap;
use std::path::Path;

use papy_core::{Item, Plumber, Source};

use crate::build::dagger_of_loaded;
use crate::error::{ConfigError, Result};
use crate::inputs::{self, Output};
use crate::kinds::BuildContext;
use crate::load::{load_file, parse, LoadOptions, Loaded};
use crate::plugins::load_plugins;
use crate::save::{file_of, to_text};

/// Pipeline files for [`Plumber`]: `use papy_config::PlumberFile;` (the
/// `papy` facade re-exports it) and call `Plumber::load(path)`.
///
/// Loading reads the file, loads its plugins, runs the one validator
/// (every problem with its position) and builds the Dagger; process
/// resources re-execute this binary, which must call
/// [`worker_main`](papy_core::worker_main).
///
/// ```
/// use papy_config::PlumberFile;
/// use papy_core::{Dagger, Piper, Plumber, Worker};
/// let mut d = Dagger::new();
/// d.add_piper(Piper::new("a", Worker::new("papy.ipasser").unwrap())).unwrap();
/// let text = Plumber::new(d).save_string().unwrap();
/// assert!(text.contains("papy.ipasser"));
/// ```
pub trait PlumberFile: Sized {
    /// A Plumber from a pipeline file's text (its inputs and outputs are
    /// ignored: see [`Pipeline`] to run a file with them).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem, or a pool that cannot start.
    fn from_toml(text: &str) -> Result<Self>;

    /// As [`from_toml`](Self::from_toml), reading `path`.
    ///
    /// # Errors
    /// As `from_toml`, and I/O errors.
    fn load(path: impl AsRef<Path>) -> Result<Self>;

    /// The pipeline as a pipeline file: its resources and pipers.
    ///
    /// # Errors
    /// [`ConfigError::NotSaveable`]: closures, pools a file cannot describe.
    fn save_string(&self) -> Result<String>;

    /// Writes [`save_string`](Self::save_string) to `path`.
    ///
    /// # Errors
    /// As `save_string`, and I/O errors.
    fn save(&self, path: impl AsRef<Path>) -> Result<()>;
}

fn plumber_of(l: &Loaded) -> Result<Plumber> {
    let problems = load_plugins(l);
    if !problems.is_empty() {
        return Err(l.invalid(problems));
    }
    Ok(Plumber::new(dagger_of_loaded(l, &BuildContext::default())?))
}

fn library(mut l: Loaded) -> Loaded {
    l.library = true;
    l
}

impl PlumberFile for Plumber {
    fn from_toml(text: &str) -> Result<Plumber> {
        let l = parse(text, "<text>", Path::new("."), &LoadOptions::default())?;
        plumber_of(&library(l))
    }

    fn load(path: impl AsRef<Path>) -> Result<Plumber> {
        plumber_of(&library(load_file(path.as_ref(), &LoadOptions::default())?))
    }

    fn save_string(&self) -> Result<String> {
        to_text(&file_of(self.dagger())?)
    }

    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.save_string()?).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// A pipeline file ready to run: its Plumber, its inputs opened, its outputs.
#[derive(Debug)]
pub struct Pipeline {
    /// The Plumber (not started).
    pub plumber: Plumber,
    /// The input pipers' sources.
    pub sources: Vec<(String, Source)>,
    /// The file's outputs.
    pub outputs: Vec<Output>,
}

impl Pipeline {
    /// Loads, checks and builds a pipeline file, and opens its inputs.
    ///
    /// # Errors
    /// As [`PlumberFile::load`], and inputs that cannot be opened.
    pub fn open(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Pipeline> {
        let l = load_file(path.as_ref(), options)?;
        let plumber = plumber_of(&l)?;
        let sources = inputs::sources(&l, &plumber.stop_signal())?;
        Ok(Pipeline {
            plumber,
            sources,
            outputs: inputs::outputs(&l),
        })
    }

    /// Runs the pipeline to the end and returns the items of every output
    /// piper (the file's outputs' pipers, or every output piper when the
    /// file names none), by piper name.
    ///
    /// # Errors
    /// The run's errors ([`papy_core::Error`]).
    ///
    /// ```no_run
    /// use papy_config::{LoadOptions, Pipeline};
    /// let out = Pipeline::open("wordcount.toml", &LoadOptions::default())?.run()?;
    /// # Ok::<(), papy_config::ConfigError>(())
    /// ```
    pub fn run(mut self) -> Result<BTreeMap<String, Vec<Item>>> {
        let mut names: Vec<String> = self.outputs.iter().map(|o| o.piper.clone()).collect();
        if names.is_empty() {
            names = self
                .plumber
                .dagger()
                .outputs()
                .iter()
                .map(|p| p.name().to_string())
                .collect();
        }
        names.sort();
        names.dedup();
        let mut collectors = Vec::new();
        for n in &names {
            collectors.push((n.clone(), self.plumber.collect(n)?));
        }
        self.plumber.start(std::mem::take(&mut self.sources))?;
        self.plumber.run()?;
        self.plumber.wait(None)?;
        Ok(collectors.into_iter().map(|(n, c)| (n, c.take())).collect())
    }
}
