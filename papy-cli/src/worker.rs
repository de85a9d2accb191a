//! `papy worker --stdio`: the process/remote worker endpoint; `papy worker
//! --redis URL --run RUN`: a broker worker (see docs/distributed.md).
//!
//! Speaks papy's protocol on stdin/stdout (see docs/protocol.md), or reads
//! task entries from a Redis stream, and runs
//! the built-in functions and those of the plugins it is told to load
//! (`--plugin`), or that `imports` name (searched on `--plugin-path` and
//! `PAPY_PLUGIN_PATH`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

/// Arguments of `papy worker`.
#[derive(clap::Args, Default)]
pub(crate) struct WorkerArgs {
    /// Serve on stdin/stdout (run it through ssh for remote hosts).
    #[arg(long)]
    stdio: bool,
    /// Serve a run on a Redis broker instead: `redis://[:password@]host:port`,
    /// `rediss://` for TLS, `redis+unix:///path`. `--redis env` reads the URL
    /// from PAPY_REDIS_URL, which keeps a password out of process lists.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// The run to serve (the pipeline resource's `run_id`, by default its name).
    #[arg(long = "run", value_name = "RUN_ID")]
    run: Option<String>,
    /// Exit once the host has finished the run (default: serve for ever).
    #[arg(long)]
    until_done: bool,
    /// Load a plugin first: a file path, or a name looked up on the plugin path.
    #[arg(long = "plugin", value_name = "PLUGIN")]
    plugins: Vec<String>,
    /// Run tasks naming functions that start external programs
    /// (`papy.script`). Off by default: whoever can send this worker a task
    /// (its host; anyone who can write to a Redis run's stream) would run
    /// commands here. `papy run` adds it to the local workers it starts when
    /// the pipeline uses such a function.
    #[arg(long)]
    allow_scripts: bool,
    /// Let tasks write and read files inside DIR (repeatable): the
    /// `papy.dump_*` writers, `papy.dump_item`, and `papy.load_item` with a
    /// `dir`. Without it every such task is refused: a task chooses its
    /// paths. `papy run` grants the local workers it starts the directories
    /// its pipeline names.
    #[arg(long = "allow-files", value_name = "DIR")]
    allow_files: Vec<PathBuf>,
    /// Let tasks open network sockets (`papy.dump_item` with
    /// `kind = "socket"`). Off by default.
    #[arg(long)]
    allow_network: bool,
    /// A file holding the run's broker key (`--redis`; default:
    /// PAPY_BROKER_KEY). Entries without the key's tag are never run.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// A directory to look for plugins in (before PAPY_PLUGIN_PATH).
    #[arg(long = "plugin-path", value_name = "DIR")]
    plugin_path: Vec<PathBuf>,
    /// With `--redis`: replace the relayed worker by a fresh one after it
    /// was sent this many items.
    #[arg(long, value_name = "N", requires = "command", value_parser = clap::value_parser!(u64).range(1..))]
    recycle_after: Option<u64>,
    /// With `--redis`: replace the relayed worker when its resident memory
    /// passes this many MiB (checked between batches).
    #[arg(long, value_name = "MIB", requires = "command", value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    recycle_above_mb: Option<u64>,
    /// With `--redis`: relay each batch to this stdio worker (any language,
    /// docs/protocol.md), e.g. `-- python3 my_worker.py`, instead of running
    /// it here. One child, replaced when it dies or is recycled, as in a
    /// process pool.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// With `--redis` and a command: a function the relayed worker runs
    /// once when it starts, on a null input (its result is the worker's
    /// state, as a resource's `init`).
    #[arg(long, value_name = "FUNCTION", requires = "command")]
    init: Option<String>,
    /// A positional argument of `--init` (repeatable), as JSON; text that
    /// is not JSON is a string.
    #[arg(long = "init-arg", value_name = "JSON", requires = "init")]
    init_args: Vec<String>,
}

/// The stdio worker a broker worker relays to: the command after `--`,
/// else (a worker a host's pool started) the one its environment names.
fn relay_command(
    args: &WorkerArgs,
    pool_started: bool,
) -> anyhow::Result<Option<papy_core::WorkerCommand>> {
    let Some((program, rest)) = args.command.split_first() else {
        if !pool_started {
            return Ok(None);
        }
        return papy_broker::relay_from_env().context("the relay its host described");
    };
    let cmd = papy_core::WorkerCommand::new(program, rest).recycle(papy_core::pool::Recycle {
        after_items: args.recycle_after,
        above_rss: args.recycle_above_mb.map(|m| m << 20),
    });
    // Started by hand on a farm host: a command that cannot start stops
    // this worker with why, instead of failing every batch it takes.
    papy_core::pool::probe(&cmd).map_err(|why| {
        anyhow::anyhow!("the worker command `{}` cannot start: {why}", cmd.line())
    })?;
    let Some(function) = &args.init else {
        return Ok(Some(cmd));
    };
    let args = args
        .init_args
        .iter()
        .map(|a| match serde_json::from_str::<serde_json::Value>(a) {
            Ok(json) => papy_core::to_value(&json).with_context(|| format!("--init-arg {a}")),
            Err(_) => Ok(papy_core::Value::from(a.as_str())),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(cmd.init(papy_core::protocol::Call {
        function: function.clone(),
        args,
    })))
}

/// Loads the plugins named on the command line and installs the import
/// resolver; returns the plugins named (those loaded already included).
///
/// # Errors
/// A plugin that cannot be loaded, or a directory that holds no plugin
/// library (such as the crate folder `papy new plugin` writes, before it is
/// built).
pub(crate) fn load_plugins(
    plugins: &[String],
    plugin_path: &[PathBuf],
) -> anyhow::Result<Vec<Arc<papy_plugins::Plugin>>> {
    let search = papy_plugins::SearchPath::with_env(plugin_path.iter().cloned());
    let mut named = Vec::new();
    // A plugin named twice, or loaded earlier under another path.
    let loaded = |r: Result<Arc<papy_plugins::Plugin>, papy_plugins::PluginError>| match r {
        Ok(p) => Ok(Some(p)),
        Err(papy_plugins::PluginError::AlreadyLoaded { path, existing }) => {
            Ok(papy_plugins::plugins()
                .into_iter()
                .find(|p| p.path() == existing || p.path() == path))
        }
        Err(e) => Err(e),
    };
    for p in plugins {
        let path = Path::new(p);
        if path.is_dir() {
            // Every plugin library of the directory.
            let suffix = std::env::consts::DLL_SUFFIX;
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing {p}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.to_string_lossy().ends_with(suffix))
                .collect();
            files.sort();
            let before = named.len();
            for f in files {
                match loaded(papy_plugins::load(&f)) {
                    Ok(found) => named.extend(found),
                    // Other libraries may share the directory (dependencies,
                    // test fixtures): say so, and go on.
                    Err(e) => tracing::warn!("skipping {}: {e}", f.display()),
                }
            }
            if named.len() == before {
                let built = if path.join("Cargo.toml").is_file() {
                    format!(
                        "; it is a crate: build it (cd {p} && cargo build --release) and give its library, e.g. --plugin {}",
                        path.join("target/release").display()
                    )
                } else {
                    String::new()
                };
                anyhow::bail!("the directory `{p}` holds no plugin library (*{suffix}){built}");
            }
        } else if path.is_file()
            || p.contains(std::path::MAIN_SEPARATOR)
            || p.ends_with(std::env::consts::DLL_SUFFIX)
        {
            // A path (even one that does not exist: say so, not "no plugin named").
            // The error's message already holds its cause.
            let found = loaded(papy_plugins::load(path))
                .map_err(|e| anyhow::anyhow!("loading plugin file `{p}`: {e}"))?;
            named.extend(found);
        } else {
            let found = loaded(papy_plugins::load_by_name(p, &search))
                .with_context(|| format!("loading plugin `{p}`"))?;
            named.extend(found);
        }
    }
    papy_plugins::install_resolver(search);
    Ok(named)
}

/// What this worker's flags let the tasks it runs reach.
fn permissions(args: &WorkerArgs) -> anyhow::Result<papy_core::permissions::Permissions> {
    // The run's item folder is always open: `papy.dump_item` makes fresh,
    // uniquely named files there, and locators may name nothing else.
    let items = papy_core::run_key::ensure_item_root().context("making the run's item folder")?;
    let mut p = papy_core::permissions::Permissions::none()
        .allow_programs(args.allow_scripts)
        .allow_network(args.allow_network)
        .allow_files_in(items)
        .context("the run's item folder")?;
    for dir in &args.allow_files {
        p = p
            .allow_files_in(dir)
            .with_context(|| format!("--allow-files {}", dir.display()))?;
    }
    Ok(p)
}

/// Serves until the host closes the connection (stdio) or the run is done
/// (`--redis --until-done`). A host that goes away (closed stdin or
/// stdout, even inside a frame) ends a stdio worker quietly, with success.
pub(crate) fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    papy_core::permissions::set(permissions(args)?);
    // Local workers of a broker pool are started with the pipeline's process
    // command (`papy worker --stdio ...`) and PAPY_WORKER=redis plus the
    // broker's URL and run in the environment.
    let pool_started = std::env::var_os(papy_core::pool::WORKER_ENV).is_some_and(|v| v == "redis");
    let from_env = |name: &str| std::env::var(name).ok().filter(|_| pool_started);
    let url = match args.redis.as_deref() {
        Some("env") => Some(
            std::env::var(papy_broker::URL_ENV)
                .with_context(|| format!("`--redis env` needs {}", papy_broker::URL_ENV))?,
        ),
        Some(u) => Some(u.to_string()),
        None => from_env(papy_broker::URL_ENV),
    };
    if let Some(url) = &url {
        load_plugins(&args.plugins, &args.plugin_path)?;
        let run = args
            .run
            .clone()
            .or_else(|| from_env(papy_broker::RUN_ENV))
            .context("`papy worker --redis` needs `--run RUN_ID`")?;
        let mut opts = papy_broker::ServeOptions::new(run);
        opts.key = papy_broker::seal::Sealer::key_from(args.key_file.as_deref())?;
        opts.until_done = args.until_done || from_env(papy_broker::UNTIL_DONE_ENV).is_some();
        if pool_started {
            // Started by a host's pool: leave when that host goes away.
            opts.parent = from_env(papy_broker::HOST_PID_ENV).and_then(|p| p.parse().ok());
        }
        opts.relay = relay_command(args, pool_started)?;
        papy_broker::serve(url, &opts)
            .with_context(|| format!("serving {}", papy_broker::redact(url)))?;
        return Ok(());
    }
    anyhow::ensure!(
        args.command.is_empty(),
        "a command after `--` is relayed to by broker workers only: give `--redis URL --run RUN_ID`"
    );
    anyhow::ensure!(
        args.stdio,
        "give `--stdio` (process and remote workers) or `--redis URL --run RUN_ID` (broker workers)"
    );
    load_plugins(&args.plugins, &args.plugin_path)?;
    let plugins = papy_plugins::plugins()
        .iter()
        .map(|p| (p.name().to_string(), p.sha256().to_string()))
        .collect();
    // Frames go to a duplicate of stdout and fd 1 to stderr, so functions
    // that print (papy.print, plugins) cannot corrupt the protocol.
    let served = papy_core::protocol::serve::serve_stdio(plugins);
    papy_core::run_key::remove_item_root_if_empty();
    match served {
        // The host went away (a second Ctrl-C, a crash): nobody is left to
        // tell, and the host says what happened. Exit quietly, with 0.
        Err(e) if e.is_peer_gone() => Ok(()),
        r => r.context("serving the host"),
    }
}
