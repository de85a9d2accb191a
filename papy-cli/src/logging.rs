//! Logging: `tracing` events of papy and of worker functions, to standard
//! error and optionally to a rotating file.
//!
//! The level comes from `RUST_LOG` when set (e.g. `RUST_LOG=papy_core=debug`),
//! else from `-v` (none: warnings, `-v`: info, `-vv`: debug with the
//! `node{name}:batch{first items}` spans, `-vvv`: trace). `--log-file
//! DIR/NAME` also writes this process's events to `DIR/NAME.<date>` (or
//! `DIR/NAME` with `--log-rotate never`), a new file each `--log-rotate`
//! period, keeping the last `--log-keep` files. Worker processes get the
//! level through `RUST_LOG` and log to standard error.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

impl LogArgs {
    /// How many `-v` were given.
    pub(crate) fn verbose(&self) -> u8 {
        self.verbose
    }
}

/// How often the log file rotates.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub(crate) enum Rotate {
    /// A new file every minute.
    Minutely,
    /// A new file every hour.
    Hourly,
    /// A new file every day.
    #[default]
    Daily,
    /// One file.
    Never,
}

/// The logging options, shared by every command.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct LogArgs {
    /// More log output on standard error (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Also log to rotating files `DIR/NAME.<date>` (e.g. --log-file logs/papy).
    #[arg(long, value_name = "DIR/NAME", global = true)]
    log_file: Option<PathBuf>,
    /// How often the log file rotates.
    #[arg(long, value_enum, default_value_t = Rotate::Daily, global = true)]
    log_rotate: Rotate,
    /// How many rotated log files to keep.
    #[arg(long, value_name = "N", default_value_t = 7, global = true)]
    log_keep: usize,
}

fn level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

fn filter(verbose: u8) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level(verbose)))
}

/// Installs the subscriber; keep the returned guard alive until exit (it
/// flushes the file writer).
///
/// # Errors
/// The log directory cannot be created.
pub(crate) fn init(args: &LogArgs) -> anyhow::Result<Option<WorkerGuard>> {
    // Worker processes (`papy worker`) inherit the level through RUST_LOG
    // and log to their stderr, which is this process's stderr. Set before
    // any thread starts.
    if args.verbose > 0 && std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", level(args.verbose));
    }
    // Span fields are formatted once for all layers: colours only when
    // stderr is a terminal and no file gets the same text.
    let colour = args.log_file.is_none() && std::io::stderr().is_terminal();
    let stderr = fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_filter(filter(args.verbose));
    let Some(file) = &args.log_file else {
        let _ = tracing_subscriber::registry().with(stderr).try_init();
        return Ok(None);
    };
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let name = file
        .file_name()
        .map_or_else(|| "papy.log".into(), |n| n.to_string_lossy().into_owned());
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the log directory {}", dir.display()))?;
    let rotation = match args.log_rotate {
        Rotate::Minutely => Rotation::MINUTELY,
        Rotate::Hourly => Rotation::HOURLY,
        Rotate::Daily => Rotation::DAILY,
        Rotate::Never => Rotation::NEVER,
    };
    let appender = RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(name)
        .max_log_files(args.log_keep.max(1))
        .build(&dir)
        .with_context(|| format!("opening log files in {}", dir.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let to_file = fmt::layer()
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(filter(args.verbose.max(1)));
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(to_file)
        .try_init();
    Ok(Some(guard))
}
