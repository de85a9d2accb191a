//! `papy run FILE`: load plugins, build the DAG, run it, write the outputs,
//! report statistics; nothing fails silently.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use papy_core::{Item, Plumber, Value};

use crate::pipeline::{self, model::Format};

/// Exit code when some items failed.
pub const EXIT_ITEMS_FAILED: u8 = 1;
/// Exit code when the pipeline could not run.
pub const EXIT_CANNOT_RUN: u8 = 2;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Arguments of `papy run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    file: PathBuf,
    /// No progress lines and no statistics table.
    #[arg(long, short)]
    quiet: bool,
    /// Write the statistics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Exit 0 even when some items failed.
    #[arg(long)]
    allow_failures: bool,
    /// Write every failed item (with its error) as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
    #[command(flatten)]
    set: crate::pipeline::SetArgs,
}

type Sink = Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>;

fn open(path: &Path) -> anyhow::Result<Sink> {
    let w: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    Ok(Arc::new(Mutex::new(BufWriter::new(w))))
}

fn render(v: &Value, format: Format) -> String {
    match (format, v) {
        (Format::Lines, Value::Str(s)) => s.to_string(),
        _ => serde_json::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>")),
    }
}

/// Runs the pipeline and returns the process exit code.
pub fn run(args: &RunArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("papy: error: {e:#}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn run_inner(args: &RunArgs) -> anyhow::Result<u8> {
    let loaded = match pipeline::load_checked(&args.file, &args.set) {
        Ok(l) => l,
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            return Ok(EXIT_CANNOT_RUN);
        }
    };
    let stop = papy_core::func::read::StopSignal::new();
    let built = pipeline::build(&loaded, &stop)?;
    let mut plumber = Plumber::new(built.dagger).with_stop_signal(stop);
    let failed = Arc::new(AtomicU64::new(0));
    let errors: Option<Sink> = args.errors.as_deref().map(open).transpose()?;
    let mut sinks = Vec::new();
    let outputs: Vec<String> = plumber
        .dagger()
        .outputs()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    for piper in &outputs {
        let targets: Vec<(String, Format, Sink)> = built
            .outputs
            .iter()
            .filter(|o| &o.piper == piper)
            .map(|o| Ok((o.name.clone(), o.format, open(&o.path)?)))
            .collect::<anyhow::Result<_>>()?;
        sinks.extend(targets.iter().map(|t| t.2.clone()));
        let (failed, errors, piper_name) = (failed.clone(), errors.clone(), piper.clone());
        let mut index = 0u64;
        plumber.on_output(piper, move |item: Item| {
            match &item {
                Ok(v) => {
                    for (_, format, sink) in &targets {
                        if let Ok(mut w) = sink.lock() {
                            let _ = writeln!(w, "{}", render(v, *format));
                        }
                    }
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let line = serde_json::json!({"output": piper_name, "position": index, "error": serde_json::to_value(e.to_value()).unwrap_or_default()});
                    match &errors {
                        Some(sink) => {
                            if let Ok(mut w) = sink.lock() {
                                let _ = writeln!(w, "{line}");
                            }
                        }
                        None => eprintln!("papy: failed item: {e}"),
                    }
                }
            }
            index += 1;
        })?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("papy: second interrupt, aborting");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            eprintln!("papy: interrupt: stopping (inputs stop, items in flight finish); press Ctrl-C again to abort");
        });
    }
    plumber.start(built.sources)?;
    plumber.run()?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    // Progress: bars on a terminal, a plain line every 2 s otherwise.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bars = indicatif::MultiProgress::new();
    let mut watched: Vec<(String, bool, indicatif::ProgressBar)> = Vec::new();
    if tty && !args.quiet {
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:<24} {pos:>10} items  {per_sec:>12}  {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let inputs: Vec<String> = plumber
            .dagger()
            .inputs()
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        for (name, is_input) in inputs
            .iter()
            .map(|n| (n, true))
            .chain(outputs.iter().map(|n| (n, false)))
        {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(format!("{} {name}", if is_input { "in " } else { "out" }));
            watched.push((name.clone(), is_input, bar));
        }
    }
    let mut debug_failure = None;
    loop {
        match plumber.wait(Some(Duration::from_millis(200))) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                debug_failure = Some(e);
                break;
            }
        }
        if interrupted.load(Ordering::SeqCst) {
            if let Err(e) = plumber.stop() {
                debug_failure = Some(e);
            }
            break;
        }
        if !watched.is_empty() {
            let stats = plumber.stats();
            for (name, is_input, bar) in &watched {
                let n = stats.nodes.get(name).map_or(0, |n| {
                    if *is_input {
                        n.items_in
                    } else {
                        n.items_out
                    }
                });
                bar.set_position(n);
            }
        } else if !args.quiet && last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            let stats = plumber.stats();
            let done: u64 = outputs
                .iter()
                .map(|o| stats.nodes.get(o).map_or(0, |n| n.items_out))
                .sum();
            eprintln!(
                "papy: {:.0?} elapsed, {done} output item(s) so far",
                started.elapsed()
            );
        }
    }
    for (_, _, bar) in &watched {
        bar.finish();
    }
    let stats = plumber.stats();
    if plumber.state() != papy_core::PlumberState::Stopped {
        let _ = plumber.stop();
    }
    drop(plumber);
    for s in sinks.iter().chain(errors.iter()) {
        if let Ok(mut w) = s.lock() {
            w.flush().context("flushing an output")?;
        }
    }
    if !args.quiet {
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
        eprintln!("run time {:.3}s", secs);
    }
    if let Some(path) = &args.stats_json {
        let json = serde_json::json!({
            "run_time_s": stats.run_time.map(|d| d.as_secs_f64()),
            "failed": failed.load(Ordering::Relaxed),
            "nodes": stats.nodes.iter().map(|(k, n)| (k.clone(), serde_json::json!({
                "in": n.items_in, "out": n.items_out, "failed": n.failed, "busy_s": n.busy.as_secs_f64(),
                "jobs": n.jobs, "items_per_job": n.mean_job()
            }))).collect::<serde_json::Map<_, _>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(e) = debug_failure {
        eprintln!("papy: {e}");
        return Ok(EXIT_ITEMS_FAILED);
    }
    if interrupted.load(Ordering::SeqCst) {
        return Ok(EXIT_INTERRUPTED);
    }
    if failed.load(Ordering::Relaxed) > 0 && !args.allow_failures {
        return Ok(EXIT_ITEMS_FAILED);
    }
    Ok(0)
}
