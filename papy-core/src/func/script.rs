//! `papy.script`: runs an external program per item (PaPy's `util.script`).
//!
//! The item's inbox holds maps of *port → path* (one per input pipe); the
//! config says which input ports the program reads, which output ports it
//! writes (with their file extensions), its parameters, a working
//! directory, and a timeout. papy writes the program's JSON config
//! `{"params": ..., "in": {port: path}, "out": {port: path}}` to a file in the
//! directory and runs `<executable> <script> <config file>` there; the same
//! paths and the scalar parameters are also in the environment as
//! `PAPY_IN_<PORT>`, `PAPY_OUT_<PORT>` and `PAPY_PARAM_<NAME>` (upper case,
//! other characters as `_`), which keeps shell scripts short. On success the
//! result is the map *output port → path*, so script nodes chain.
//!
//! Output files are named as PaPy names them: when the input and output
//! ports are the same names, output *i* is `<dir>/<stem of input i>_<id>.<ext>`;
//! otherwise every output is `<dir>/<stem of the first input>_<id>-<port>.<ext>`
//! (a stem is a file name up to its first dot; with no inputs, the names are
//! `<id>-<port>.<ext>`).
//!
//! Differences from PaPy, on purpose: a non-zero exit becomes an error item
//! with the program's **real** exit code (or signal), its standard output
//! and its standard error (PaPy always said 1); a program that outlives the
//! timeout is killed with its process group and the item fails with a
//! timeout message; processes a script leaves running when it exits are
//! ended too; a script that exits 0 without writing one of its output
//! files fails the item, naming the port. Relative `dir`, `script` and
//! input paths are taken from the current directory (the program runs in
//! `dir` with absolute paths).
//!
//! [`template`] gives starting scripts for bash and Python.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use papy_macros::worker_in_core as worker;
use serde::{Deserialize, Serialize};

use crate::os::{describe_status, exited_unreaped, kill_group};
use crate::value::{from_value, Value};

/// An output port: its name and the extension of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutPort {
    /// `["port", "ext"]` (PaPy's tuple).
    WithExt(String, String),
    /// `"port"`: files without extension.
    Bare(String),
}

impl OutPort {
    fn name(&self) -> &str {
        match self {
            OutPort::WithExt(n, _) | OutPort::Bare(n) => n,
        }
    }

    fn ext(&self) -> Option<&str> {
        match self {
            OutPort::WithExt(_, e) if !e.is_empty() => Some(e),
            _ => None,
        }
    }
}

/// The configuration of a script worker (the `cfg` argument of `papy.script`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptConfig {
    /// Names the outputs (`<stem>_<id>`).
    pub id: String,
    /// The program that runs the script (`bash`, `python3`, ...).
    pub executable: String,
    /// The script's path.
    pub script: PathBuf,
    /// Working and output directory (created when missing).
    pub dir: PathBuf,
    /// The input ports the script reads.
    #[serde(rename = "in", default)]
    pub inputs: Vec<String>,
    /// The output ports the script writes.
    #[serde(default)]
    pub out: Vec<OutPort>,
    /// Parameters passed to the script.
    #[serde(default)]
    pub params: Value,
    /// Seconds before the program is killed (default: no limit).
    #[serde(default)]
    pub timeout: Option<f64>,
}

fn env_name(prefix: &str, name: &str) -> String {
    let up = name.to_ascii_uppercase();
    format!(
        "{prefix}{}",
        up.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

fn stem(path: &str) -> String {
    let name = Path::new(path)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    name.split('.').next().unwrap_or_default().to_string()
}

fn with_ext(base: String, ext: Option<&str>) -> String {
    match ext {
        Some(e) => format!("{base}.{e}"),
        None => base,
    }
}

/// The input paths of each `in` port: the first inbox map that has the port.
fn input_paths(cfg: &ScriptConfig, inbox: &[Value]) -> Result<BTreeMap<String, String>, String> {
    let mut found = BTreeMap::new();
    for port in &cfg.inputs {
        let path = inbox.iter().find_map(|m| m.get(port)).ok_or_else(|| {
            let got: Vec<String> = inbox.iter().map(ToString::to_string).collect();
            format!(
                "input port `{port}` is not connected: no inbox map has it (got {})",
                got.join(", ")
            )
        })?;
        let path = path
            .as_str()
            .ok_or_else(|| format!("input port `{port}`: the path is a {}", path.kind()))?;
        found.insert(port.clone(), path.to_string());
    }
    Ok(found)
}

fn output_paths(cfg: &ScriptConfig, inputs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let dir = |name: String| cfg.dir.join(name).display().to_string();
    let one_to_one = !cfg.out.is_empty()
        && cfg.out.len() == cfg.inputs.len()
        && cfg.out.iter().zip(&cfg.inputs).all(|(o, i)| o.name() == i);
    cfg.out
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let base = if one_to_one {
                let input = &inputs[&cfg.inputs[i]];
                format!("{}_{}", stem(input), cfg.id)
            } else {
                match cfg.inputs.first().and_then(|p| inputs.get(p)) {
                    Some(first) => format!("{}_{}-{}", stem(first), cfg.id, o.name()),
                    None => format!("{}-{}", cfg.id, o.name()),
                }
            };
            (o.name().to_string(), dir(with_ext(base, o.ext())))
        })
        .collect()
}

/// At most this much of each output stream is kept (the end of it), for
/// the error message of a failed run.
const KEEP: usize = 16 * 1024;

/// The last [`KEEP`] bytes of a stream and how many came before them.
#[derive(Default)]
struct Tail {
    kept: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.kept.extend(bytes);
        let over = self.kept.len().saturating_sub(KEEP);
        if over > 0 {
            self.kept.drain(..over);
            self.dropped += over as u64;
        }
    }

    fn text(&self) -> String {
        let (a, b) = self.kept.as_slices();
        let s = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        if self.dropped > 0 {
            format!("[... {} bytes before]\n{s}", self.dropped)
        } else {
            s
        }
    }
}

fn reader(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Tail> {
    std::thread::spawn(move || {
        let mut tail = Tail::default();
        if let Some(mut r) = r {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.push(&buf[..n]);
            }
        }
        tail
    })
}

/// Polls `done` until it holds or `limit` passes (`None`: no limit);
/// whether it held.
fn wait_until(limit: Option<Duration>, mut done: impl FnMut() -> bool) -> bool {
    let deadline = limit.map(|l| Instant::now() + l);
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `/proc/self/fd` says the child's output pipes are (`pipe:[inode]`),
/// to find the processes holding them later (Linux; empty elsewhere).
fn pipe_ids(child: &std::process::Child) -> Vec<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fds = [
            child.stdout.as_ref().map(AsRawFd::as_raw_fd),
            child.stderr.as_ref().map(AsRawFd::as_raw_fd),
        ];
        fds.into_iter()
            .flatten()
            .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = child;
        Vec::new()
    }
}

/// The environment variable each script run is marked with: its
/// descendants inherit it, wherever they go (`setsid`, closed output).
const RUN_TAG: &str = "PAPY_SCRIPT_RUN";

/// Kills (SIGKILL) every other process of this user for which `matches`
/// (given its `/proc/PID` folder) is true, saying `why` in the log (Linux;
/// nothing elsewhere).
fn kill_processes(why: &str, matches: impl Fn(&Path) -> bool) {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::Pid;
        let me = rustix::process::getpid();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let pid = p.file_name().to_str().and_then(|n| n.parse().ok());
            let Some(pid) = pid.and_then(Pid::from_raw) else {
                continue;
            };
            if pid != me && matches(&p.path()) {
                tracing::warn!("ending process {pid}, which {why}");
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (why, matches);
}

/// Kills every process still marked with `tag` (from [`RUN_TAG`] in its
/// environment): what a script left running, even out of its group and
/// holding none of its pipes. A descendant that clears its environment
/// escapes this; its group, pipes and the timeout still bound the item.
fn kill_tagged(tag: &str) {
    let needle = format!("{RUN_TAG}={tag}\0");
    kill_processes("a script left running", |proc_dir| {
        std::fs::read(proc_dir.join("environ"))
            .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
    });
}

/// Kills every other process that holds one of `pipes` open.
fn kill_pipe_holders(pipes: &[PathBuf]) {
    if pipes.is_empty() {
        return;
    }
    kill_processes(
        "left a script's process group holding its output",
        |proc_dir| {
            std::fs::read_dir(proc_dir.join("fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| pipes.contains(&l)))
            })
        },
    );
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("path {}: {e}", p.display()))
}

/// Writes the script's config file (params, input and output paths) in
/// its directory.
fn config_file(
    cfg: &ScriptConfig,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
) -> Result<tempfile::NamedTempFile, String> {
    let config = serde_json::json!({ "params": cfg.params, "in": inputs, "out": outputs });
    let mut file = tempfile::Builder::new()
        .prefix(&format!("papy_script_{}_", cfg.id))
        .suffix(".json")
        .tempfile_in(&cfg.dir)
        .map_err(|e| {
            format!(
                "cannot create the config file in {}: {e}",
                cfg.dir.display()
            )
        })?;
    serde_json::to_writer(&mut file, &config).map_err(|e| format!("writing the config: {e}"))?;
    Ok(file)
}

/// The script's command: the config's path as its argument, the paths
/// and scalar parameters in its environment, in a process group of its own.
fn command(
    cfg: &ScriptConfig,
    config: &Path,
    tag: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
) -> Command {
    let mut cmd = Command::new(&cfg.executable);
    cmd.arg(&cfg.script)
        .arg(config)
        .current_dir(&cfg.dir)
        .env("PAPY_CONFIG", config)
        .env(RUN_TAG, tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (port, path) in inputs {
        cmd.env(env_name("PAPY_IN_", port), path);
    }
    for (port, path) in outputs {
        cmd.env(env_name("PAPY_OUT_", port), path);
    }
    if let Some(params) = cfg.params.as_map() {
        for (k, v) in params {
            if let (Some(k), false) = (k.as_str(), matches!(v, Value::List(_) | Value::Map(_))) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                cmd.env(env_name("PAPY_PARAM_", k), text);
            }
        }
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd
}

/// Waits for the script (at most `limit`), then ends what it left in its
/// process group.
fn wait_for(
    child: &mut std::process::Child,
    limit: Option<Duration>,
    what: &str,
) -> Result<std::process::ExitStatus, String> {
    let started = Instant::now();
    let exited = wait_until(limit, || exited_unreaped(child));
    // What the script left running in its process group is ended too, so
    // it cannot hold the output pipes (and this item) open; signalled
    // before the reap, while the group's id is reserved.
    kill_group(child.id());
    if exited {
        return child
            .wait()
            .map_err(|e| format!("waiting for `{what}`: {e}"));
    }
    let _ = child.wait();
    Err(format!(
        "`{what}` timed out after {:.1} s and was killed",
        started.elapsed().as_secs_f64()
    ))
}

/// The script's standard output and error, waiting a little for
/// processes outside its group that still hold the pipes (then ended).
fn collect(readers: [std::thread::JoinHandle<Tail>; 2], pipes: &[PathBuf]) -> (String, String) {
    // A process that left it may also hold the output pipes (one that
    // cleared its environment): it is ended, and the output is not waited
    // for past a short grace.
    let finished = |r: &[std::thread::JoinHandle<Tail>; 2]| r.iter().all(|h| h.is_finished());
    if !wait_until(Some(Duration::from_millis(200)), || finished(&readers)) {
        kill_pipe_holders(pipes);
        wait_until(Some(Duration::from_secs(1)), || finished(&readers));
    }
    let [out, err] = readers;
    let collect = |h: std::thread::JoinHandle<Tail>| {
        if h.is_finished() {
            h.join().unwrap_or_default().text()
        } else {
            // Left to end by itself when the last holder of the pipe goes.
            "(not collected: a process outside the script's group still holds this pipe)".into()
        }
    };
    (collect(out), collect(err))
}

/// Runs the script of `cfg` for one item; returns the map *output port → path*.
///
/// # Errors
/// A message: unconnected input port, the directory or config file cannot
/// be made, the program cannot start, it timed out, or it exited non-zero
/// (with its exit code, standard output and standard error).
pub fn run(cfg: &ScriptConfig, inbox: &[Value]) -> Result<Value, String> {
    // Checked before anything starts, so a bad config never leaves a child behind.
    let limit = cfg
        .timeout
        .map(|s| Duration::try_from_secs_f64(s).map_err(|e| format!("timeout {s}: {e}")))
        .transpose()?;
    // The program runs in `dir`: every path it gets is made absolute first.
    let cfg = &ScriptConfig {
        dir: absolute(&cfg.dir)?,
        script: absolute(&cfg.script)?,
        ..cfg.clone()
    };
    std::fs::create_dir_all(&cfg.dir)
        .map_err(|e| format!("cannot create directory {}: {e}", cfg.dir.display()))?;
    let mut inputs = input_paths(cfg, inbox)?;
    for path in inputs.values_mut() {
        *path = absolute(Path::new(path.as_str()))?.display().to_string();
    }
    let outputs = output_paths(cfg, &inputs);
    let file = config_file(cfg, &inputs, &outputs)?;
    let tag = crate::run_key::hex(&crate::run_key::random::<8>());
    let mut cmd = command(cfg, file.path(), &tag, &inputs, &outputs);
    let what = format!("{} {}", cfg.executable, cfg.script.display());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{what}`: {e}"))?;
    let pipes = pipe_ids(&child);
    let readers = [reader(child.stdout.take()), reader(child.stderr.take())];
    let status = wait_for(&mut child, limit, &what);
    // The group is gone. What the script started and left running out
    // of it (`setsid`, a daemon) is found by its mark and ended.
    kill_tagged(&tag);
    let (stdout, stderr) = collect(readers, &pipes);
    let status = status?;
    if status.success() {
        let missing: Vec<&str> = outputs
            .iter()
            .filter(|(_, path)| !Path::new(path.as_str()).exists())
            .map(|(port, _)| port.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "`{what}` exited with code 0 but did not write output port(s) {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                missing.join(", ")
            ));
        }
        return Ok(Value::map(outputs));
    }
    let how = match status.code() {
        Some(c) => format!("exited with code {c}"),
        None => format!("was killed by {}", describe_status(status)),
    };
    Err(format!(
        "`{what}` {how}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    ))
}

/// Runs an external script for the item (see the [module](self) docs);
/// `cfg` is a [`ScriptConfig`] as a map.
#[worker(name = "papy.script")]
fn script(inbox: &[Value], cfg: Value) -> Result<Value, String> {
    let cfg: ScriptConfig = from_value(&cfg).map_err(|e| format!("script config: {e}"))?;
    run(&cfg, inbox)
}

/// A starting script for `lang` (`bash` or `python`), reading the config
/// papy passes; it copies input `data` upper-cased to output `result`.
pub fn template(lang: &str) -> Option<&'static str> {
    match lang {
        "bash" | "sh" => Some(BASH),
        "python" | "py" => Some(PYTHON),
        _ => None,
    }
}

const BASH: &str = r#"#!/usr/bin/env bash
# A papy script worker. papy runs: bash THIS_FILE CONFIG.json, in the
# config's `dir`. The config is {"params": {...}, "in": {port: path},
# "out": {port: path}}; the same paths are in PAPY_IN_<PORT> and
# PAPY_OUT_<PORT>, scalar parameters in PAPY_PARAM_<NAME>.
# A non-zero exit fails the item with this exit code, stdout and stderr.
set -euo pipefail

tr '[:lower:]' '[:upper:]' < "$PAPY_IN_DATA" > "$PAPY_OUT_RESULT"
"#;

const PYTHON: &str = r#"#!/usr/bin/env python3
"""A papy script worker. papy runs: python3 THIS_FILE CONFIG.json, in the
config's `dir`. A non-zero exit (or an exception) fails the item with the
exit code, stdout and stderr."""
import json
import sys

with open(sys.argv[1]) as f:
    CONFIG = json.load(f)
PARAMS, IN, OUT = CONFIG["params"], CONFIG["in"], CONFIG["out"]

with open(IN["data"]) as src, open(OUT["result"], "w") as dst:
    dst.write(src.read().upper())
"#;

#[cfg(test)]
mod tests;
