//! Pipeline files for the command line: `papy-config` does the loading and
//! the one validation pass; this module adds what only the command line
//! knows (the `papy worker --stdio` command of process resources) and
//! renders problems as `file:line:col: message`.

use std::ffi::OsString;
use std::path::Path;

use papy_config::inputs::Output;
use papy_config::kinds::BuildContext;
use papy_config::{ConfigError, LoadOptions, Loaded, Problem};
use papy_core::func::read::StopSignal;
use papy_core::{Dagger, Source, WorkerCommand};

/// `--set` options shared by the commands that read a pipeline file.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct SetArgs {
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
pub(crate) fn render(e: &ConfigError) -> Vec<String> {
    match e {
        ConfigError::Invalid { file, problems } => {
            problems.iter().map(|p| p.render(file)).collect()
        }
        other => vec![other.to_string()],
    }
}

/// Reads, parses and checks a pipeline file: plugins loaded, then `probe`
/// run (`papy check --probe` registers the signatures workers announce
/// there), then every problem found by the one validator, sorted by
/// position (rendered, one line each). A file with problems where it is
/// read is still validated as far as it could be read, so that one run
/// reports every problem.
///
/// # Errors
/// The lines to print.
pub(crate) fn load_probed(
    path: &Path,
    set: &SetArgs,
    probe: &mut dyn FnMut(&Loaded) -> Result<(), Vec<String>>,
) -> Result<Loaded, Vec<String>> {
    let (l, mut problems) =
        papy_config::load::load_file_with_problems(path, &set.options()).map_err(|e| render(&e))?;
    problems.extend(papy_config::plugins::load_plugins(&l));
    if let Err(lines) = probe(&l) {
        // Without the probe's signatures, the validator would call their
        // keyword arguments unknown: the problems found so far, then why.
        Problem::sort(&mut problems);
        let mut out: Vec<String> = problems.iter().map(|p| p.render(&l.name)).collect();
        out.extend(lines);
        return Err(out);
    }
    problems.extend(papy_config::validate::validate(&l));
    warn_forgiven();
    if problems.is_empty() {
        Ok(l)
    } else {
        Problem::sort(&mut problems);
        Err(problems.iter().map(|p| p.render(&l.name)).collect())
    }
}

/// Prints each missing import forgiven (`#[worker(forgive)]`) not printed
/// yet, once per run, as `papy: warning: ...` (the host's: worker
/// processes print none).
pub(crate) fn warn_forgiven() {
    for w in papy_core::registry::take_forgiven_imports() {
        eprintln!("papy: warning: {w}");
    }
}

/// Reads and parses a pipeline file without loading plugins or validating.
///
/// # Errors
/// The lines to print.
pub(crate) fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    papy_config::load::load_file(path, &LoadOptions::default()).map_err(|e| render(&e))
}

/// A built pipeline, ready for a Plumber.
pub(crate) struct Built {
    /// The DAG.
    pub dagger: Dagger,
    /// External inputs by input piper.
    pub sources: Vec<(String, Source)>,
    /// The outputs, paths resolved.
    pub outputs: Vec<Output>,
}

/// The command of a process worker for this file: `papy worker --stdio`
/// with the file's plugin path and loaded plugins, and the permissions its
/// pipers' built-ins need (`--allow-scripts`, `--allow-files DIR` for each
/// directory they name, `--allow-network`), and no more.
fn worker_command(l: &Loaded) -> papy_core::Result<WorkerCommand> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<OsString> = vec!["worker".into(), "--stdio".into()];
    // The pipeline's author asked for these effects: its own workers may.
    let mut needs = papy_core::func::effects::Needs::default();
    for p in &l.file.pipers {
        if let Ok(w) = papy_config::chain::worker_of(p) {
            needs.add(&w);
        }
    }
    // What the pipeline's dump_item calls make in their own folders may be
    // named by this run's locators, here and in the workers.
    for d in &needs.item_dirs {
        papy_core::run_key::add_item_dir(d);
    }
    if needs.programs {
        args.push("--allow-scripts".into());
    }
    if needs.network {
        args.push("--allow-network".into());
    }
    // A directory that does not exist yet grants nothing (and would stop
    // the worker from starting): writes there fail with their own reason.
    for d in needs.dirs.into_iter().filter(|d| d.is_dir()) {
        args.push("--allow-files".into());
        args.push(d.into_os_string());
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

/// Whether a piper passes keyword arguments to a function its resource
/// declares (`functions`) and this program does not hold: only a worker's
/// signatures can bind them.
pub(crate) fn needs_probe(l: &Loaded) -> bool {
    l.file.pipers.iter().any(|p| {
        let provided = p
            .resource
            .as_ref()
            .and_then(|r| l.file.resources.get(r))
            .map(papy_config::Resource::provided_functions)
            .unwrap_or_default();
        p.worker.iter().any(|c| {
            !c.kwargs.is_empty()
                && provided.contains(&c.function)
                && papy_core::registry::lookup(&c.function).is_err()
        })
    })
}

/// The command of a worker of resource `r` to probe (`None`: a kind of
/// resource that is not probed, or a remote one without workers).
fn probe_command(
    l: &Loaded,
    r: &papy_config::model::Resource,
) -> Result<Option<WorkerCommand>, String> {
    Ok(Some(match r.numap.kind.as_str() {
        "remote" => {
            let first = r
                .settings
                .get("remote")
                .and_then(toml::Value::as_array)
                .and_then(|a| a.first())
                .and_then(|c| c.get("command"))
                .and_then(toml::Value::as_str);
            match first {
                Some(c) => WorkerCommand::shell(c).current_dir(&l.dir),
                None => return Ok(None),
            }
        }
        // A redis resource's `command`: the worker its broker workers relay to.
        "redis" => match r.settings.get("command").and_then(toml::Value::as_str) {
            Some(c) => WorkerCommand::shell(c).current_dir(&l.dir),
            None => return Ok(None),
        },
        "process" => worker_command(l).map_err(|e| e.to_string())?,
        _ => return Ok(None),
    }))
}

/// Function `f` as resource `resource`'s workers provide it, with the
/// parameters, inputs and doc of its signature `sig`; and how it is shown
/// (`py.shout(inbox, suffix?)`).
fn probed_function(
    f: &str,
    resource: &str,
    sig: Option<&papy_core::protocol::Signature>,
) -> (papy_core::registry::Function, String) {
    use papy_core::registry::{Function, Param};
    let mut func = Function::provided_elsewhere(f.to_string(), resource);
    if let Some(sig) = sig {
        func.params = sig.params.as_ref().map(|ps| {
            ps.iter()
                .map(|p| Param {
                    name: Box::leak(p.name.clone().into_boxed_str()),
                    optional: p.optional,
                    ty: "",
                })
                .collect()
        });
        func.inputs = sig.inputs.map(|n| n as usize);
        func.doc.clone_from(&sig.doc);
    }
    let shown = match &func.params {
        None => format!("{f}(inbox, *args)"),
        Some(ps) => {
            let mut parts = vec!["inbox".to_string()];
            parts.extend(
                ps.iter()
                    .map(|p| format!("{}{}", p.name, if p.optional { "?" } else { "" })),
            );
            format!("{f}({})", parts.join(", "))
        }
    };
    (func, shown)
}

/// Starts one worker of each process, remote or redis (`command`) resource that declares
/// `functions`, and registers what its `Hello` says of them (their
/// parameters), so the validator checks their arguments, keyword arguments
/// included. Returns a line per probed function (`py.shout(inbox,
/// suffix?)`).
///
/// # Errors
/// A worker that cannot start, or lacks a declared function: one line each.
pub(crate) fn probe_resources(l: &Loaded) -> Result<Vec<String>, Vec<String>> {
    use papy_core::registry;
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    // Which resource provides each function registered here from a probe.
    let mut probed: Vec<(String, String)> = Vec::new();
    for (name, r) in &l.file.resources {
        let provided = r.provided_functions();
        if provided.is_empty() {
            continue;
        }
        let cmd = match probe_command(l, r) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                errors.push(format!("resource `{name}`: {e}"));
                continue;
            }
        };
        let (functions, signatures) = match papy_core::pool::probe(&cmd) {
            Ok(found) => found,
            Err(e) => {
                errors.push(format!("resource `{name}`: probing a worker: {e}"));
                continue;
            }
        };
        for f in &provided {
            if !functions.contains(f) {
                errors.push(format!(
                    "resource `{name}`: its worker (`{}`) does not provide `{f}`",
                    cmd.line()
                ));
                continue;
            }
            if registry::lookup(f).is_ok() {
                continue;
            }
            let sig = signatures.iter().find(|s| &s.name == f);
            let (func, shown) = probed_function(f, name, sig);
            lines.push(format!("resource `{name}`: {shown}"));
            match registry::register(func) {
                Ok(_) => probed.push((f.clone(), name.clone())),
                Err(e) => errors.push(format!("resource `{name}`: {e}")),
            }
        }
    }
    // Registered for the whole process, a probed function must still be
    // called only where its workers are.
    for p in &l.file.pipers {
        for c in &p.worker {
            let Some((_, owner)) = probed.iter().find(|(f, _)| f == &c.function) else {
                continue;
            };
            let declares = p
                .resource
                .as_ref()
                .and_then(|r| l.file.resources.get(r))
                .is_some_and(|r| r.provided_functions().contains(&c.function));
            if !declares {
                errors.push(format!(
                    "piper `{}` calls `{}`, which only the workers of resource `{owner}` provide: put the piper on `{owner}`",
                    p.name, c.function
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// What `papy run` checks by starting workers before the first item: each
/// `remote` command starts ([`start_commands`]), and the signatures of
/// worker-only functions called with keyword arguments are learnt
/// ([`needs_probe`], [`probe_resources`]).
///
/// # Errors
/// The lines to print: one per command that cannot start, or the probe's.
pub(crate) fn probe_for_run(l: &Loaded) -> Result<(), Vec<String>> {
    start_commands(l)?;
    if needs_probe(l) {
        probe_resources(l)?;
    }
    Ok(())
}

/// Starts each distinct command of the `remote` resources (and of `redis`
/// resources with local workers) at the same time, as many workers of it as
/// its first entry asks for (one for `redis`), in the pipeline file's
/// folder as the run does, and waits for their greetings, so that a command
/// that cannot start refuses the run with one line naming it and why,
/// instead of failing every item. The workers that greeted become the first
/// workers of their pool ([`papy_core::pool::warm_up`]); [`build`] stops
/// those no pool took. A command that has not greeted within 30 s is left
/// to the run (an `ssh` may be slow).
///
/// # Errors
/// One line per command that cannot start, in the file's order.
pub(crate) fn start_commands(l: &Loaded) -> Result<(), Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut distinct = Vec::new();
    for (name, r) in &l.file.resources {
        for (at, line, n) in commands_of(name, r) {
            if seen.insert(line.to_string()) {
                distinct.push((name, at, line, n));
            }
        }
    }
    let errors: Vec<String> = std::thread::scope(|s| {
        let checks: Vec<_> = distinct
            .iter()
            .map(|(_, _, line, n)| {
                let cmd = WorkerCommand::shell(line).current_dir(&l.dir);
                let wait = std::time::Duration::from_secs(30);
                s.spawn(move || papy_core::pool::warm_up(&cmd, *n, wait))
            })
            .collect();
        distinct
            .iter()
            .zip(checks)
            .filter_map(|((name, at, line, _), check)| {
                let why = match check.join() {
                    Ok(Ok(())) => return None,
                    Ok(Err(why)) => why,
                    Err(_) => "its check failed unexpectedly".to_string(),
                };
                let message = format!(
                    "resource `{name}`: the worker command `{}` cannot start: {why}",
                    line.trim()
                );
                Some(l.spans.at(at, message).render(&l.name))
            })
            .collect()
    });
    if errors.is_empty() {
        Ok(())
    } else {
        papy_core::pool::release_warm();
        Err(errors)
    }
}

/// The worker commands of resource `name`: where each is in the file, its
/// line, and how many workers the run starts with it.
fn commands_of<'a>(name: &str, r: &'a papy_config::Resource) -> Vec<(Vec<String>, &'a str, usize)> {
    let str_of = |v: &'a toml::Value| v.get("command").and_then(toml::Value::as_str);
    match r.numap.kind.as_str() {
        "remote" => r
            .settings
            .get("remote")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| {
                let at = ["resources", name, "remote", &i.to_string(), "command"];
                let n = c.get("workers").and_then(toml::Value::as_integer);
                let n = n.and_then(|n| usize::try_from(n).ok()).unwrap_or(1).max(1);
                Some((papy_config::key_path(&at), str_of(c)?, n))
            })
            .collect(),
        "redis" if r.settings.get("workers").and_then(toml::Value::as_integer) > Some(0) => r
            .settings
            .get("command")
            .and_then(toml::Value::as_str)
            .map(|c| (papy_config::key_path(&["resources", name, "command"]), c, 1))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds a checked pipeline.
///
/// # Errors
/// A pool that cannot start, an input that cannot be opened.
pub(crate) fn build(l: &Loaded, stop: &StopSignal) -> Result<Built, ConfigError> {
    let command = || worker_command(l);
    let ctx = BuildContext {
        worker_command: &command,
        functions: Vec::new(),
        dir: Some(&l.dir),
    };
    let dagger = papy_config::build::dagger_of(&l.file, &ctx);
    // Workers started by the check that no pool took.
    papy_core::pool::release_warm();
    let built = Built {
        dagger: dagger?,
        sources: papy_config::inputs::sources(l, stop)?,
        outputs: papy_config::inputs::outputs(l),
    };
    warn_forgiven();
    Ok(built)
}
