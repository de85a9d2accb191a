//! The `papy` command line.
//!
//! Today it lists the registered worker functions (`papy list`) and serves
//! as a process or remote worker (`papy worker --stdio`); running pipeline
//! files (`papy run`, `check`, `graph`) comes with the CLI work.

mod list;
mod worker;

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
    /// Serve as a process or remote worker on stdin/stdout.
    Worker(worker::WorkerArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(args) => list::run(&args, &mut std::io::stdout().lock()),
        Command::Worker(args) => worker::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("papy: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
