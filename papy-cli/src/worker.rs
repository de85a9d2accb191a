//! `papy worker --stdio`: the process/remote worker endpoint.
//!
//! Speaks papy's protocol on stdin/stdout (see docs/protocol.md) and runs
//! the built-in functions and those of the plugins it is told to load
//! (`--plugin`), or that `imports` name (searched on `--plugin-path` and
//! `PAPY_PLUGIN_PATH`).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Arguments of `papy worker`.
#[derive(clap::Args, Default)]
pub struct WorkerArgs {
    /// Serve on stdin/stdout (the only transport: run it through ssh for remote hosts).
    #[arg(long)]
    stdio: bool,
    /// Load a plugin first: a file path, or a name looked up on the plugin path.
    #[arg(long = "plugin", value_name = "PLUGIN")]
    plugins: Vec<String>,
    /// A directory to look for plugins in (before PAPY_PLUGIN_PATH).
    #[arg(long = "plugin-path", value_name = "DIR")]
    plugin_path: Vec<PathBuf>,
}

/// Loads the plugins named on the command line and installs the import resolver.
pub fn load_plugins(plugins: &[String], plugin_path: &[PathBuf]) -> anyhow::Result<()> {
    let search = papy_plugins::SearchPath::with_env(plugin_path.iter().cloned());
    for p in plugins {
        let path = Path::new(p);
        if path.is_file() {
            papy_plugins::load(path).with_context(|| format!("loading plugin file `{p}`"))?;
        } else {
            papy_plugins::load_by_name(p, &search)
                .with_context(|| format!("loading plugin `{p}`"))?;
        }
    }
    papy_plugins::install_resolver(search);
    Ok(())
}

/// Serves until the host closes the connection.
pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.stdio,
        "only `papy worker --stdio` is supported (use ssh for remote hosts)"
    );
    load_plugins(&args.plugins, &args.plugin_path)?;
    let plugins = papy_plugins::plugins()
        .iter()
        .map(|p| (p.name().to_string(), p.sha256().to_string()))
        .collect();
    // Frames go to a duplicate of stdout and fd 1 to stderr, so functions
    // that print (papy.print, plugins) cannot corrupt the protocol.
    papy_core::protocol::serve::serve_stdio(plugins).context("serving the host")?;
    Ok(())
}
