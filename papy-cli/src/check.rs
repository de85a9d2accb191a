//! `papy check FILE`: every problem of a pipeline file with its position,
//! from the same validator `papy run` uses.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pipeline::{self, SetArgs};

/// Arguments of `papy check`.
#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The pipeline file (TOML).
    file: PathBuf,
    #[command(flatten)]
    set: SetArgs,
    /// Start one worker of each process or remote resource that declares
    /// `functions`, print the signatures it announces, and check those
    /// functions' arguments (keyword arguments included) against them.
    /// Without it, `check` probes by itself (as `run` does) when a piper
    /// passes keyword arguments to such a function, and prints nothing of it.
    #[arg(long)]
    probe: bool,
}

/// Prints `file:line:col: message` per problem; exit 1 when there is any.
pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    let mut shown = Vec::new();
    let mut probe = |l: &papy_config::Loaded| {
        if args.probe {
            shown = pipeline::probe_resources(l)?;
        } else if pipeline::needs_probe(l) {
            // As `papy run` does: keyword arguments of functions only the
            // workers hold bind against the signatures a worker announces.
            pipeline::probe_resources(l)?;
        }
        Ok(())
    };
    let checked = pipeline::load_probed(&args.file, &args.set, &mut probe);
    for line in &shown {
        println!("{line}");
    }
    match checked {
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
