//! `papy run FILE`: load plugins, build the DAG, run it, write the outputs,
//! report statistics and failures; nothing finished is lost on a signal,
//! a closed stdout ends the run quietly, and a run can be resumed or its
//! failed items rerun.
//!
//! Exit status: 0 every item succeeded (or stdout was closed by its
//! reader), 1 some items failed (unless `--allow-errors`), 2 the pipeline
//! could not run (a problem in the file, an output that cannot be
//! written), 128 + the signal after SIGINT (130) or SIGTERM (143), 130
//! after a stop from the live view (`--ui`).

pub(crate) mod failures;
mod output;
mod rerun;
mod signals;
mod trace;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use papy_config::model::Format;
use papy_core::{Item, Plumber, PlumberState, Source};

use crate::live;
use crate::pipeline;
use failures::{Failures, Positions};
use output::Output;
use rerun::State;
use trace::Trace;

/// Exit code when some items failed.
pub const EXIT_ITEMS_FAILED: u8 = 1;
/// Exit code when the pipeline could not run.
pub const EXIT_CANNOT_RUN: u8 = 2;
/// Exit code of a run stopped from the live view (as after Ctrl-C).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Arguments of `papy run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    file: PathBuf,
    /// No progress lines and no statistics table.
    #[arg(long, short)]
    quiet: bool,
    /// Run every plugin function in worker processes, never on this
    /// process's threads (`[plugins] isolate = true`): for plugins you do
    /// not trust not to crash.
    #[arg(long)]
    isolate_plugins: bool,
    /// Write the statistics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Exit 0 even when some items failed.
    #[arg(long, visible_alias = "allow-failures")]
    allow_errors: bool,
    /// Write every failed item as a JSON line to this file (node, function,
    /// kind, message, and the input, 0-based index and 1-based line where
    /// the item is traced to one).
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    /// Print at most N failed items on stderr (all are in the summary counts
    /// and in --errors).
    #[arg(long, value_name = "N", default_value_t = 10)]
    show_errors: usize,
    /// Stop the run (gracefully) after N failed items.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_errors: Option<u64>,
    /// Stop the run at the first failed item (--max-errors 1).
    #[arg(long)]
    fail_fast: bool,
    /// Run only the input items listed in an errors file written by --errors.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    retry_failed: Option<PathBuf>,
    /// Keep the run's progress in FILE and continue from it: a run stopped
    /// by a signal (or --max-errors) resumes where it stopped, appending to
    /// its outputs.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Serve a live view of the run in the browser: the DAG with each
    /// node's counts, rates and busy share, the resources' workers,
    /// progress and ETA, throughput over time, failures, and pause /
    /// resume / stop buttons (they act only with the token in the printed
    /// address). `--ui=ADDR`: an address and optional port (default 127.0.0.1
    /// and a free port). Also `/api/state` (JSON) and `/metrics`
    /// (Prometheus). See docs/live.md.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    ui: Option<String>,
    /// Let --ui listen on an address other machines can reach.
    #[arg(long, requires = "ui")]
    ui_public: bool,
    /// Keep serving the live view for SECS after the run ends, so an open
    /// page shows the final figures.
    #[arg(long, value_name = "SECS", requires = "ui", default_value_t = 0.0)]
    ui_linger: f64,
    /// Write a report of the run to FILE (one self-contained HTML page:
    /// the DAG with totals, throughput over time, a worker timeline, the
    /// failures, the settings), at its end or on a graceful stop.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    #[command(flatten)]
    set: pipeline::SetArgs,
}

/// Runs the pipeline and returns the process exit code; `verbose` (the
/// count of `-v`) shows one progress line per node.
pub fn run(args: &RunArgs, verbose: u8) -> ExitCode {
    let result = run_inner(args, verbose);
    // Pipes of items dumped here that no reader took end with this process,
    // and the run's item folder with them when nothing is left in it.
    papy_core::func::items::remove_pending_fifos();
    papy_core::run_key::remove_item_root_if_empty();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("papy: error: {e:#}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn lock(o: &Mutex<Output>) -> MutexGuard<'_, Output> {
    o.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `--resume` continues from.
#[derive(Clone)]
struct Resume {
    path: PathBuf,
    pipeline: String,
    input: String,
    start: u64,
    outputs: Vec<String>,
}

impl Resume {
    fn state(&self, o: &Output, complete: bool) -> State {
        // An output that an earlier run took further than the others keeps
        // its count until this run passes it.
        let outputs: BTreeMap<String, u64> = self
            .outputs
            .iter()
            .map(|p| (p.clone(), self.start + o.delivered_or_skipped(p)))
            .collect();
        State {
            pipeline: self.pipeline.clone(),
            input: self.input.clone(),
            done: outputs.values().copied().min().unwrap_or(self.start),
            outputs,
            complete,
        }
    }
}

fn run_inner(args: &RunArgs, verbose: u8) -> anyhow::Result<u8> {
    // Worker commands that cannot start refuse the run; keyword arguments of
    // functions only the workers hold bind against a probed worker's signatures.
    let mut probe = pipeline::probe_for_run;
    let mut set = args.set.clone();
    if args.isolate_plugins {
        set.set.push("plugins.isolate=true".into());
        set.set_new = true;
    }
    let loaded = match pipeline::load_probed(&args.file, &set, &mut probe) {
        Ok(l) => l,
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            return Ok(EXIT_CANNOT_RUN);
        }
    };
    let ui = args
        .ui
        .as_deref()
        .map(|a| live::server::bind_address(Some(a), args.ui_public))
        .transpose()?;
    let stop = papy_core::func::read::StopSignal::new();
    let plan = live::view::Plan::of(&loaded, &args.file.display().to_string());
    let built = pipeline::build(&loaded, &stop)?;
    let trace = Trace::of(&loaded.file);
    let input_of = |piper: &str| -> String {
        loaded
            .file
            .piper(piper)
            .and_then(|p| p.inputs.first().cloned())
            .unwrap_or_default()
    };
    let max = if args.fail_fast {
        Some(1)
    } else {
        args.max_errors
    };
    let mut failures = Failures::new(trace.clone(), args.show_errors, max);
    let mut sources: Vec<(String, Source)> = built.sources;
    let output_pipers: Vec<String> = built
        .dagger
        .outputs()
        .iter()
        .map(|p| p.name().to_string())
        .collect();

    // --retry-failed: only the listed items of each input.
    if let Some(path) = &args.retry_failed {
        if sources.len() != 1 {
            bail!(
                "--retry-failed needs a pipeline with one input (this one has {}): items of several inputs meet in joins",
                sources.len()
            );
        }
        let listed = rerun::read_failed(path)?;
        for input in listed.keys() {
            if !sources.iter().any(|(p, _)| &input_of(p) == input) {
                bail!(
                    "{}: input `{input}` is not an input of this pipeline",
                    path.display()
                );
            }
        }
        let total: usize = listed.values().map(Vec::len).sum();
        eprintln!(
            "papy: rerunning {total} failed item(s) listed in {}",
            path.display()
        );
        sources = sources
            .into_iter()
            .map(|(piper, src)| {
                let keep = listed.get(&input_of(&piper)).cloned().unwrap_or_default();
                failures
                    .positions
                    .insert(input_of(&piper), Positions::Listed(keep.clone()));
                let last = keep.last().copied();
                let items = src
                    .into_items()
                    .enumerate()
                    .take_while(move |(i, _)| last.is_some_and(|l| *i as u64 <= l))
                    .filter(move |(i, _)| keep.binary_search(&(*i as u64)).is_ok())
                    .map(|(_, x)| x);
                (piper, Source::items(items))
            })
            .collect();
    }

    // --resume: continue after what the state file says is done.
    let pipeline_id = std::fs::canonicalize(&args.file)
        .unwrap_or_else(|_| args.file.clone())
        .display()
        .to_string();
    let mut resume = None;
    let mut prior: Option<State> = None;
    if let Some(path) = &args.resume {
        let [(piper, _)] = sources.as_slice() else {
            bail!(
                "--resume needs a pipeline with one input (this one has {})",
                sources.len()
            );
        };
        let input = input_of(piper);
        if let Some(o) = output_pipers
            .iter()
            .find(|o| trace.output_of.get(*o) != Some(&input))
        {
            bail!(
                "--resume needs every output to deliver one item per input item, in input order; \
                 output piper `{o}` does not (consume, produce, joins of other inputs or ordered = false on its way)"
            );
        }
        if output_pipers.is_empty() {
            bail!("--resume needs a pipeline with outputs (it counts what they received)");
        }
        prior = rerun::read_state(path)?;
        if let Some(s) = &prior {
            if s.pipeline != pipeline_id || s.input != input {
                bail!(
                    "{}: the state of input `{}`, not `{input}`",
                    path.display(),
                    s.input
                );
            }
            if s.complete {
                eprintln!(
                    "papy: {}: the run is complete; nothing to resume",
                    path.display()
                );
                return Ok(0);
            }
            eprintln!(
                "papy: resuming from {}: {} input item(s) done",
                path.display(),
                s.done
            );
        }
        let start = prior.as_ref().map_or(0, |s| s.done);
        failures
            .positions
            .insert(input.clone(), Positions::Offset(start));
        let skip = usize::try_from(start).unwrap_or(usize::MAX);
        sources = sources
            .into_iter()
            .map(|(p, src)| (p, Source::items(src.into_items().skip(skip))))
            .collect();
        resume = Some(Resume {
            path: path.clone(),
            pipeline: pipeline_id.clone(),
            input,
            start,
            outputs: output_pipers.clone(),
        });
    }
    // A resumed run continues its files; a rerun of failed items adds its
    // results to those of the run it repairs.
    let append = prior.is_some() || args.retry_failed.is_some();

    let output = Arc::new(Mutex::new(Output::new(failures)));
    {
        let mut o = lock(&output);
        if let (Some(r), Some(s)) = (&resume, &prior) {
            for p in &r.outputs {
                let before = s.outputs.get(p).copied().unwrap_or(r.start);
                o.skip_first(p, before.saturating_sub(r.start));
            }
        }
        if let Some(path) = &args.errors {
            o.open_errors(path, append)?;
        }
    }
    let mut plumber = Plumber::new(built.dagger).with_stop_signal(stop);
    if args.report.is_some() {
        plumber = plumber.with_timeline(TIMELINE_JOBS);
    }
    // The failure limit stops the inputs from the output callback itself,
    // at the failure that reaches it (the run loop would see it up to a
    // tick later, with more items taken meanwhile).
    let limit = Arc::new(Limit::default());
    for piper in &output_pipers {
        let mut targets: Vec<(usize, Format)> = Vec::new();
        for o in built.outputs.iter().filter(|o| &o.piper == piper) {
            let i = lock(&output).open(&o.path, append)?;
            targets.push((i, o.format));
        }
        let (out, name, limit) = (output.clone(), piper.clone(), limit.clone());
        plumber.on_output(piper, move |item: Item| {
            let mut o = lock(&out);
            o.deliver(&name, &targets, &item);
            if item.is_err() && o.failures.limit_reached() {
                drop(o);
                limit.reached();
            }
        })?;
    }
    let on_cancel: Option<signals::OnCancel> = resume.clone().map(|r| {
        let f: signals::OnCancel = Box::new(move |o: &Output| {
            if o.write_error.is_none() {
                let _ = rerun::write_state(&r.path, &r.state(o, false));
            }
        });
        f
    });
    let received =
        signals::watch(output.clone(), on_cancel).context("installing signal handlers")?;
    plumber.start(sources)?;
    limit.arm(plumber.stop_handle());
    let mut watch = live::Watch::start(
        &live::Options {
            ui,
            progress: !args.quiet,
            per_node: verbose > 0,
        },
        plan,
        &plumber,
    )?;
    plumber.run()?;

    let mut last_checkpoint = Instant::now();
    let mut debug_failure = None;
    let mut stopped_early = false;
    let mut stopped_from_page = false;
    loop {
        match plumber.wait(Some(Duration::from_millis(100))) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                debug_failure = Some(e);
                break;
            }
        }
        let (closed, write_error, limit) = {
            let o = lock(&output);
            (
                o.stdout_closed || crate::stderr_closed(),
                o.write_error.is_some(),
                o.failures.limit_reached(),
            )
        };
        let asked = watch.tick(&mut plumber, &lock(&output).failures);
        match asked {
            Some(live::server::Control::Pause) => {
                let _ = plumber.pause();
            }
            Some(live::server::Control::Resume) => {
                let _ = plumber.resume();
            }
            Some(live::server::Control::Stop) | None => {}
        }
        let from_page = asked == Some(live::server::Control::Stop);
        stopped_from_page |= from_page;
        if received.first().is_some() || closed || write_error || limit || from_page {
            if from_page {
                eprintln!("papy: stopping (asked from the live view)");
            }
            watch.stopping();
            if plumber.state() == PlumberState::Paused {
                let _ = plumber.resume();
            }
            stopped_early = true;
            if let Err(e) = plumber.stop() {
                debug_failure = Some(e);
            }
            break;
        }
        // Every second the outputs are flushed (a reader following them sees
        // the items as they come) and a resumable run's state is saved.
        if last_checkpoint.elapsed() >= Duration::from_secs(1) {
            last_checkpoint = Instant::now();
            let mut o = lock(&output);
            o.flush();
            if let (Some(r), None) = (&resume, &o.write_error) {
                if let Err(e) = rerun::write_state(&r.path, &r.state(&o, false)) {
                    eprintln!("papy: warning: cannot save the progress: {e:#}");
                }
            }
        }
    }
    // A limit stops the inputs itself, at the failure that reaches it: the
    // plumber then finishes, but the run stopped early (--resume goes on).
    let finished =
        plumber.state() == PlumberState::Finished && !stopped_early && limit.in_flight().is_none();
    if plumber.state() != PlumberState::Stopped {
        let _ = plumber.stop();
    }
    let stats = plumber.stats();
    let view = watch.finish(&mut plumber, &lock(&output).failures, finished);
    drop(plumber);
    if let Some(path) = &args.report {
        live::report::write(path, &view)?;
    }
    watch.linger(Duration::try_from_secs_f64(args.ui_linger).unwrap_or_default());
    drop(watch);
    let mut o = lock(&output);
    o.flush();
    if let (Some(r), None) = (&resume, &o.write_error) {
        // After a write error the counts include items that were lost:
        // the last checkpoint stands.
        rerun::write_state(&r.path, &r.state(&o, finished && debug_failure.is_none()))?;
    }
    if let Some(path) = &args.stats_json {
        write_stats_json(path, &stats, o.failures.total(), &view.series)?;
    }
    if let Some(at) = limit.in_flight() {
        eprintln!(
            "papy: stopped at the limit of {} failed item(s) ({}): {} failed in all (the items already taken when it was reached, at most {at} more, were allowed to finish)",
            o.failures.limit().unwrap_or(0),
            if args.fail_fast { "--fail-fast" } else { "--max-errors" },
            o.failures.total(),
        );
    }
    if (o.stdout_closed || crate::stderr_closed()) && o.write_error.is_none() {
        // The reader has what it wanted: end quietly, as `yes | head` does.
        return Ok(0);
    }
    if !args.quiet {
        print_stats(&stats);
    }
    for line in o.failures.summary(
        args.errors
            .as_ref()
            .map(|p| p.display().to_string())
            .as_deref(),
    ) {
        eprintln!("{line}");
    }
    if let Some(e) = &o.write_error {
        eprintln!("papy: error: {e}");
        return Ok(EXIT_CANNOT_RUN);
    }
    if let Some(e) = debug_failure {
        eprintln!("papy: {e}");
        return Ok(EXIT_ITEMS_FAILED);
    }
    if let Some(sig) = received.first() {
        return Ok(u8::try_from(128 + sig).unwrap_or(EXIT_CANNOT_RUN));
    }
    if stopped_from_page {
        // An operator's stop, as Ctrl-C is.
        return Ok(EXIT_INTERRUPTED);
    }
    if o.failures.total() > 0 && !args.allow_errors {
        return Ok(EXIT_ITEMS_FAILED);
    }
    Ok(0)
}

fn print_stats(stats: &papy_core::Stats) {
    eprintln!(
        "{:<20} {:>10} {:>10} {:>8} {:>10} {:>12} {:>9}",
        "node", "in", "out", "failed", "busy", "items/s", "items/job"
    );
    let secs = stats.run_time.unwrap_or_default().as_secs_f64().max(1e-9);
    for (name, n) in &stats.nodes {
        let per_job = n.mean_job().map_or("-".to_string(), |m| format!("{m:.1}"));
        eprintln!(
            "{:<20} {:>10} {:>10} {:>8} {:>9.2}s {:>12.0} {:>9}",
            name,
            n.items_in,
            n.items_out,
            n.failed,
            n.busy.as_secs_f64(),
            n.items_out as f64 / secs,
            per_job
        );
    }
    eprintln!("run time {secs:.3}s");
}

fn write_stats_json(
    path: &std::path::Path,
    stats: &papy_core::Stats,
    failed: u64,
    series: &live::view::Series,
) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "run_time_s": stats.run_time.map(|d| d.as_secs_f64()),
        "failed": failed,
        "series": series,
        "nodes": stats.nodes.iter().map(|(k, n)| (k.clone(), serde_json::json!({
            "in": n.items_in, "out": n.items_out, "failed": n.failed, "busy_s": n.busy.as_secs_f64(),
            "jobs": n.jobs, "items_per_job": n.mean_job()
        }))).collect::<serde_json::Map<_, _>>(),
    });
    std::fs::write(path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Jobs the report's worker timeline keeps (about 10 MB of spans).
const TIMELINE_JOBS: usize = 200_000;

/// `--max-errors` / `--fail-fast`: stops the inputs at the failure that
/// reaches the limit, and remembers how many items were taken then.
#[derive(Default)]
struct Limit {
    handle: std::sync::OnceLock<papy_core::StopHandle>,
    early: std::sync::atomic::AtomicBool,
    in_flight: std::sync::OnceLock<usize>,
}

impl Limit {
    /// The run started: a limit reached before this stops it now.
    fn arm(&self, handle: Option<papy_core::StopHandle>) {
        if let Some(h) = handle {
            let _ = self.handle.set(h);
        }
        if self.early.load(std::sync::atomic::Ordering::Acquire) {
            self.reached();
        }
    }

    /// The limit is reached (once is enough).
    fn reached(&self) {
        match self.handle.get() {
            Some(h) => {
                let _ = self.in_flight.get_or_init(|| h.request());
            }
            None => self.early.store(true, std::sync::atomic::Ordering::Release),
        }
    }

    /// The items taken when the limit stopped the run, if it did.
    fn in_flight(&self) -> Option<usize> {
        self.in_flight.get().copied()
    }
}
