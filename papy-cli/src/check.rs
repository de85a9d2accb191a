//! `papy check FILE`: every problem of a pipeline file with its position,
//! from the same validator `papy run` uses.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pipeline::{self, SetArgs};

/// Arguments of `papy check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The pipeline file (TOML).
    file: PathBuf,
    #[command(flatten)]
    set: SetArgs,
}

/// Prints `file:line:col: message` per problem; exit 1 when there is any.
pub fn run(args: &CheckArgs) -> ExitCode {
    match pipeline::load_checked(&args.file, &args.set) {
        Ok(_) => {
            println!("{}: ok", args.file.display());
            ExitCode::SUCCESS
        }
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            ExitCode::from(1)
        }
    }
}
