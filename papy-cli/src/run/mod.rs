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
mod limit;
mod output;
mod rerun;
mod resume;
mod signals;
mod stats;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use papy_config::model::Format;
use papy_core::{Item, Plumber, PlumberState, Source};

use crate::live;
use crate::pipeline;
use failures::Failures;
use limit::Limit;
use output::{lock, Output};
use rerun::State;
use resume::Resume;
use trace::Trace;

/// Exit code when some items failed.
pub(crate) const EXIT_ITEMS_FAILED: u8 = 1;
/// Exit code when the pipeline could not run.
pub(crate) const EXIT_CANNOT_RUN: u8 = 2;
/// Exit code of a run stopped from the live view (as after Ctrl-C).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Arguments of `papy run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
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
pub(crate) fn run(args: &RunArgs, verbose: u8) -> ExitCode {
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

/// The pipeline file, its plugins loaded and its workers probed; `None`
/// (the problems printed) when it cannot run.
fn load(args: &RunArgs) -> Option<papy_config::Loaded> {
    // Worker commands that cannot start refuse the run; keyword arguments of
    // functions only the workers hold bind against a probed worker's signatures.
    let mut probe = pipeline::probe_for_run;
    let mut set = args.set.clone();
    if args.isolate_plugins {
        set.set.push("plugins.isolate=true".into());
        set.set_new = true;
    }
    match pipeline::load_probed(&args.file, &set, &mut probe) {
        Ok(l) => Some(l),
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            None
        }
    }
}

fn run_inner(args: &RunArgs, verbose: u8) -> anyhow::Result<u8> {
    let Some(loaded) = load(args) else {
        return Ok(EXIT_CANNOT_RUN);
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
    let output_pipers: Vec<String> = built
        .dagger
        .outputs()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    let mut sources = built.sources;
    let Some((failures, resume, prior)) =
        narrow_inputs(args, &mut sources, &input_of, &output_pipers, &trace)?
    else {
        return Ok(0);
    };
    // A resumed run continues its files; a rerun of failed items adds its
    // results to those of the run it repairs.
    let append = prior.is_some() || args.retry_failed.is_some();
    let output = open_output(failures, resume.as_ref(), prior.as_ref(), args, append)?;
    let mut plumber = Plumber::new(built.dagger).with_stop_signal(stop);
    if args.report.is_some() {
        plumber = plumber.with_timeline(TIMELINE_JOBS);
    }
    // The failure limit stops the inputs from the output callback itself,
    // at the failure that reaches it (the run loop would see it up to a
    // tick later, with more items taken meanwhile).
    let limit = Arc::new(Limit::default());
    for piper in &output_pipers {
        let files = built.outputs.iter().filter(|o| &o.piper == piper);
        attach_output(&mut plumber, piper, files, &output, append, &limit)?;
    }
    let on_cancel = resume.clone().map(Resume::on_cancel);
    let received =
        signals::watch(output.clone(), on_cancel).context("installing signal handlers")?;
    plumber.start(sources)?;
    limit.arm(plumber.stop_handle());
    let options = live::Options {
        ui,
        progress: !args.quiet,
        per_node: verbose > 0,
    };
    let mut watch = live::Watch::start(&options, plan, &plumber)?;
    plumber.run()?;
    let run = Ran {
        ending: watch_loop(
            &mut plumber,
            &mut watch,
            &output,
            &received,
            resume.as_ref(),
        ),
        plumber,
        watch,
        output,
        resume,
        limit,
        received,
    };
    run.finish(args)
}

/// What [`narrow_inputs`] gives: the run's failures (told where each
/// failed item sits in its input), what it resumes, the state it resumes
/// from.
type Narrowed = (Failures, Option<Resume>, Option<State>);

/// `--retry-failed` and `--resume` narrow the inputs: the run's failures
/// (told where each failed item sits in its input), what it resumes and
/// the state it resumes from. `None`: the resumed run is complete.
fn narrow_inputs(
    args: &RunArgs,
    sources: &mut Vec<(String, Source)>,
    input_of: &dyn Fn(&str) -> String,
    output_pipers: &[String],
    trace: &Trace,
) -> anyhow::Result<Option<Narrowed>> {
    let max = if args.fail_fast {
        Some(1)
    } else {
        args.max_errors
    };
    let mut failures = Failures::new(trace.clone(), args.show_errors, max);
    if let Some(path) = &args.retry_failed {
        rerun::restrict(path, sources, input_of, &mut failures)?;
    }
    let Some(path) = &args.resume else {
        return Ok(Some((failures, None, None)));
    };
    let inputs = (sources, input_of, &mut failures);
    Ok(
        Resume::prepare(path, &args.file, inputs, output_pipers, trace)?
            .map(|(r, prior)| (failures, Some(r), prior)),
    )
}

/// The run's outputs: a resumed run's outputs skip what an earlier run
/// wrote, and `--errors` opens its file.
fn open_output(
    failures: Failures,
    resume: Option<&Resume>,
    prior: Option<&State>,
    args: &RunArgs,
    append: bool,
) -> anyhow::Result<Arc<Mutex<Output>>> {
    let mut o = Output::new(failures);
    if let (Some(r), Some(s)) = (resume, prior) {
        for p in &r.outputs {
            let before = s.outputs.get(p).copied().unwrap_or(r.start);
            o.skip_first(p, before.saturating_sub(r.start));
        }
    }
    if let Some(path) = &args.errors {
        o.open_errors(path, append)?;
    }
    Ok(Arc::new(Mutex::new(o)))
}

/// Sends the items of output piper `piper` to its `files`, and a failure
/// reaching the limit to `limit`.
fn attach_output<'a>(
    plumber: &mut Plumber,
    piper: &str,
    files: impl Iterator<Item = &'a papy_config::inputs::Output>,
    output: &Arc<Mutex<Output>>,
    append: bool,
    limit: &Arc<Limit>,
) -> anyhow::Result<()> {
    let mut targets: Vec<(usize, Format)> = Vec::new();
    for o in files {
        let i = lock(output).open(&o.path, append)?;
        targets.push((i, o.format));
    }
    let (out, name, limit) = (output.clone(), piper.to_string(), limit.clone());
    plumber.on_output(piper, move |item: Item| {
        let mut o = lock(&out);
        o.deliver(&name, &targets, &item);
        if item.is_err() && o.failures.limit_reached() {
            drop(o);
            limit.reached();
        }
    })?;
    Ok(())
}

/// How the run loop ended.
#[derive(Default)]
struct Ending {
    /// The failure of a `debug` node.
    debug_failure: Option<papy_core::Error>,
    /// Stopped before its inputs ended (a signal, a closed stdout, a write
    /// error, the failure limit, the live view).
    stopped_early: bool,
    /// Stopped from the live view.
    stopped_from_page: bool,
}

/// Waits for the run, ticking the live view (and acting on its buttons),
/// until it finishes or must stop; every second the outputs are flushed
/// and a resumable run's state saved.
fn watch_loop(
    plumber: &mut Plumber,
    watch: &mut live::Watch,
    output: &Mutex<Output>,
    received: &signals::Received,
    resume: Option<&Resume>,
) -> Ending {
    let mut ending = Ending::default();
    let mut last_checkpoint = Instant::now();
    loop {
        match plumber.wait(Some(Duration::from_millis(100))) {
            Ok(true) => return ending,
            Ok(false) => {}
            Err(e) => {
                ending.debug_failure = Some(e);
                return ending;
            }
        }
        let must_stop = {
            let o = lock(output);
            o.stdout_closed
                || crate::stderr_closed()
                || o.write_error.is_some()
                || o.failures.limit_reached()
        };
        let asked = watch.tick(plumber, &lock(output).failures);
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
        ending.stopped_from_page |= from_page;
        if received.first().is_some() || must_stop || from_page {
            if from_page {
                eprintln!("papy: stopping (asked from the live view)");
            }
            watch.stopping();
            if plumber.state() == PlumberState::Paused {
                let _ = plumber.resume();
            }
            ending.stopped_early = true;
            if let Err(e) = plumber.stop() {
                ending.debug_failure = Some(e);
            }
            return ending;
        }
        // Every second the outputs are flushed (a reader following them sees
        // the items as they come) and a resumable run's state is saved.
        if last_checkpoint.elapsed() >= Duration::from_secs(1) {
            last_checkpoint = Instant::now();
            let mut o = lock(output);
            o.flush();
            if let (Some(r), None) = (resume, &o.write_error) {
                if let Err(e) = rerun::write_state(&r.path, &r.state(&o, false)) {
                    eprintln!("papy: warning: cannot save the progress: {e:#}");
                }
            }
        }
    }
}

/// A run whose loop has ended.
struct Ran {
    plumber: Plumber,
    watch: live::Watch,
    output: Arc<Mutex<Output>>,
    resume: Option<Resume>,
    limit: Arc<Limit>,
    received: Arc<signals::Received>,
    ending: Ending,
}

impl Ran {
    /// Stops what is left, writes the report, the state and the statistics,
    /// and says how the run went: its exit code.
    fn finish(self, args: &RunArgs) -> anyhow::Result<u8> {
        let Ran {
            mut plumber,
            mut watch,
            output,
            resume,
            limit,
            received,
            ending,
        } = self;
        // A limit stops the inputs itself, at the failure that reaches it: the
        // plumber then finishes, but the run stopped early (--resume goes on).
        let finished = plumber.state() == PlumberState::Finished
            && !ending.stopped_early
            && limit.in_flight().is_none();
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
            let complete = finished && ending.debug_failure.is_none();
            rerun::write_state(&r.path, &r.state(&o, complete))?;
        }
        if let Some(path) = &args.stats_json {
            stats::write_stats_json(path, &stats, o.failures.total(), &view.series)?;
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
            stats::print_stats(&stats);
        }
        Ok(exit_code(args, &o, ending, received.first()))
    }
}

/// The exit code of a run that ended this way, its failures summed up on
/// stderr.
fn exit_code(args: &RunArgs, o: &Output, ending: Ending, signal: Option<i32>) -> u8 {
    let errors = args.errors.as_ref().map(|p| p.display().to_string());
    for line in o.failures.summary(errors.as_deref()) {
        eprintln!("{line}");
    }
    if let Some(e) = &o.write_error {
        eprintln!("papy: error: {e}");
        return EXIT_CANNOT_RUN;
    }
    if let Some(e) = ending.debug_failure {
        eprintln!("papy: {e}");
        return EXIT_ITEMS_FAILED;
    }
    if let Some(sig) = signal {
        return u8::try_from(128 + sig).unwrap_or(EXIT_CANNOT_RUN);
    }
    if ending.stopped_from_page {
        // An operator's stop, as Ctrl-C is.
        return EXIT_INTERRUPTED;
    }
    if o.failures.total() > 0 && !args.allow_errors {
        return EXIT_ITEMS_FAILED;
    }
    0
}

/// Jobs the report's worker timeline keeps (about 10 MB of spans).
const TIMELINE_JOBS: usize = 200_000;
