//! Pipeline files for the command line: `papy-config` does the loading and
//! the one validation pass; this module adds what only the command line
//! knows (the `papy worker --stdio` command of process resources) and
//! renders problems as `file:line:col: message`.

use std::ffi::OsString;
use std::path::Path;

use papy_config::inputs::Output;
use papy_config::kinds::BuildContext;
use papy_config::{ConfigError, LoadOptions, Loaded};
use papy_core::func::read::StopSignal;
use papy_core::{Dagger, Source, WorkerCommand};

/// `--set` options shared by the commands that read a pipeline file.
#[derive(clap::Args, Clone, Default)]
pub struct SetArgs {
    /// Override a setting of the file, e.g. `--set resources.pool.workers=4`
    /// (repeatable). The tables named must exist; relative paths are
    /// relative to the working directory.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Let `--set` add tables the file does not have.
    #[arg(long = "set-new")]
    pub set_new: bool,
}

impl SetArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            overrides: self.set.clone(),
            create: self.set_new,
        }
    }
}

/// Renders a loading error as the lines to print.
pub fn render(e: &ConfigError) -> Vec<String> {
    match e {
        ConfigError::Invalid { file, problems } => {
            problems.iter().map(|p| p.render(file)).collect()
        }
        other => vec![other.to_string()],
    }
}

/// Reads, parses and checks a pipeline file: plugins loaded, every problem
/// found by the one validator (rendered, one line each).
///
/// # Errors
/// The lines to print.
pub fn load_checked(path: &Path, set: &SetArgs) -> Result<Loaded, Vec<String>> {
    let l = papy_config::load::load_file(path, &set.options()).map_err(|e| render(&e))?;
    let mut problems = papy_config::plugins::load_plugins(&l);
    problems.extend(papy_config::validate::validate(&l));
    if problems.is_empty() {
        Ok(l)
    } else {
        Err(problems.iter().map(|p| p.render(&l.name)).collect())
    }
}

/// Reads and parses a pipeline file without loading plugins or validating.
///
/// # Errors
/// The lines to print.
pub fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    papy_config::load::load_file(path, &LoadOptions::default()).map_err(|e| render(&e))
}

/// A built pipeline, ready for a Plumber.
pub struct Built {
    /// The DAG.
    pub dagger: Dagger,
    /// External inputs by input piper.
    pub sources: Vec<(String, Source)>,
    /// The outputs, paths resolved.
    pub outputs: Vec<Output>,
}

/// The command of a process worker for this file: `papy worker --stdio`
/// with the file's plugin path and loaded plugins, and `--allow-scripts`
/// when one of its pipers calls a function that runs programs.
fn worker_command(l: &Loaded) -> papy_core::Result<WorkerCommand> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<OsString> = vec!["worker".into(), "--stdio".into()];
    // The pipeline's author asked for programs to run: its own workers may.
    let scripts = l.file.pipers.iter().any(|p| {
        p.worker
            .iter()
            .any(|c| papy_core::protocol::serve::runs_programs(&c.function))
    });
    if scripts {
        args.push("--allow-scripts".into());
    }
    for d in papy_config::plugins::search_path(l).dirs() {
        args.push("--plugin-path".into());
        args.push(d.clone().into_os_string());
    }
    for p in papy_plugins::plugins() {
        args.push("--plugin".into());
        args.push(p.path().as_os_str().to_owned());
    }
    Ok(WorkerCommand::new(exe, args))
}

/// Builds a checked pipeline.
///
/// # Errors
/// A pool that cannot start, an input that cannot be opened.
pub fn build(l: &Loaded, stop: &StopSignal) -> Result<Built, ConfigError> {
    let command = || worker_command(l);
    let ctx = BuildContext {
        worker_command: &command,
        functions: Vec::new(),
    };
    Ok(Built {
        dagger: papy_config::build::dagger_of(&l.file, &ctx)?,
        sources: papy_config::inputs::sources(l, stop)?,
        outputs: papy_config::inputs::outputs(l),
    })
}
