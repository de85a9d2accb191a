//! The `papy` command line.
//!
//! Today it lists the registered worker functions; running pipeline files
//! (`papy run`, `check`, `graph`, `worker --stdio`) comes with the CLI work.

mod list;

use clap::{Parser, Subcommand};

/// papy: parallel pipelines of worker functions.
#[derive(Parser)]
#[command(name = "papy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registered worker functions with their parameters and imports.
    List(list::ListArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(args) => list::run(&args, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("papy: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
