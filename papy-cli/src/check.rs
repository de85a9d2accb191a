//! `papy check FILE`: every problem of a pipeline file with its position.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pipeline;

/// Arguments of `papy check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The pipeline file (TOML).
    file: PathBuf,
}

/// Prints `file:line:col: message` per problem; exit 1 when there is any.
pub fn run(args: &CheckArgs) -> ExitCode {
    let file = args.file.display().to_string();
    let problems = match pipeline::load(&args.file) {
        Err(p) => p,
        Ok(l) => {
            let mut p = pipeline::load_plugins(&l);
            p.extend(pipeline::check(&l));
            p
        }
    };
    if problems.is_empty() {
        println!("{file}: ok");
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        eprintln!("{file}:{p}");
    }
    ExitCode::from(1)
}
