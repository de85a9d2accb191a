//! The pipeline file (TOML), field by field; documented in
//! docs/pipeline-format.md. `papy run` reads it; [`Plumber::save`](crate::Plumber::save)
//! writes it and [`Plumber::load`](crate::Plumber::load) reads it back.
//!
//! Every table refuses unknown keys, which makes this model the file's schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A whole pipeline file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Plugins to load before anything else.
    #[serde(default)]
    pub plugins: Plugins,
    /// Named NuMaps.
    #[serde(default)]
    pub resources: BTreeMap<String, Spanned<Resource>>,
    /// The nodes, in file order.
    #[serde(default)]
    pub pipers: Vec<Spanned<PiperSpec>>,
    /// Named external inputs.
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<InputSpec>>,
    /// Named outputs (sinks of output pipers).
    #[serde(default)]
    pub outputs: BTreeMap<String, Spanned<OutputSpec>>,
}

/// `[plugins]`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugins {
    /// Directories to search (relative to the pipeline file).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Plugins to load: names (searched) or file paths.
    #[serde(default)]
    pub load: Vec<Spanned<String>>,
}

/// Where a resource's workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Threads of this process.
    #[default]
    Thread,
    /// Child processes (`papy worker --stdio`).
    Process,
    /// Commands (e.g. ssh) speaking the worker protocol.
    Remote,
    /// Workers anywhere reading a Redis stream (`papy worker --redis URL`);
    /// needs the `redis` kind installed (`papy_broker::install()`; the
    /// command line does it).
    Redis,
}

/// A remote worker command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// A shell command line, e.g. `ssh host papy worker --stdio`.
    pub command: String,
    /// Workers started with it.
    #[serde(default = "one")]
    pub workers: usize,
}

fn one() -> usize {
    1
}

/// `[resources.NAME]`: a NuMap. Its `Debug` hides the URL's password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// thread | process | remote.
    #[serde(default)]
    pub kind: Kind,
    /// Local workers (threads or processes).
    pub workers: Option<usize>,
    /// Items per visit.
    pub stride: Option<usize>,
    /// Items in flight at most.
    pub buffer: Option<usize>,
    /// Results in input order.
    #[serde(default = "yes")]
    pub ordered: bool,
    /// Remote commands (kind = remote).
    #[serde(default)]
    pub remote: Vec<RemoteSpec>,
    /// The broker's URL (kind = redis): `redis://[:password@]host:port`,
    /// `rediss://` for TLS, `redis+unix:///path/to/socket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Names the run's keys (kind = redis); workers serve it with `--run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Deliveries of one batch before it is dead-lettered (kind = redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Seconds a silent worker may hold a batch before another takes it over
    /// (kind = redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_after: Option<f64>,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("kind", &self.kind)
            .field("workers", &self.workers)
            .field("stride", &self.stride)
            .field("buffer", &self.buffer)
            .field("ordered", &self.ordered)
            .field("remote", &self.remote)
            .field("url", &self.url.as_deref().map(crate::pool::redact_url))
            .field("run_id", &self.run_id)
            .field("max_attempts", &self.max_attempts)
            .field("claim_after", &self.claim_after)
            .finish()
    }
}

fn yes() -> bool {
    true
}

/// One function of a worker chain: a name, or a table with arguments.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The function name.
    pub function: String,
    /// Positional arguments.
    pub args: Vec<toml::Value>,
    /// Arguments by name.
    pub kwargs: BTreeMap<String, toml::Value>,
}

impl CallSpec {
    /// Reads one entry of a `worker` list: `"name"` or `{ function, args, kwargs }`.
    ///
    /// # Errors
    /// A message saying what the entry should look like.
    pub fn parse(v: &toml::Value) -> Result<CallSpec, String> {
        match v {
            toml::Value::String(s) => Ok(CallSpec {
                function: s.clone(),
                args: Vec::new(),
                kwargs: BTreeMap::new(),
            }),
            toml::Value::Table(t) => {
                let mut c = CallSpec {
                    function: String::new(),
                    args: Vec::new(),
                    kwargs: BTreeMap::new(),
                };
                for (k, v) in t {
                    match (k.as_str(), v) {
                        ("function", toml::Value::String(s)) => c.function = s.clone(),
                        ("args", toml::Value::Array(a)) => c.args = a.clone(),
                        ("kwargs", toml::Value::Table(kw)) => {
                            c.kwargs = kw.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                        (other, _) => {
                            return Err(format!(
                                "unexpected `{other}` in a worker entry (expected function = \"name\", args = [...], kwargs = {{...}})"
                            ))
                        }
                    }
                }
                if c.function.is_empty() {
                    return Err("a worker entry needs `function = \"name\"`".into());
                }
                Ok(c)
            }
            other => Err(format!(
                "a worker entry is a function name or a table, not a {}",
                other.type_str()
            )),
        }
    }
}

/// `[[pipers]]`: a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiperSpec {
    /// Unique name.
    pub name: Spanned<String>,
    /// The worker chain: names, or `{ function, args, kwargs }` tables.
    pub worker: Spanned<Vec<toml::Value>>,
    /// The resource (NuMap) it runs on; none = linear.
    pub resource: Option<Spanned<String>>,
    /// Upstream pipers, or one input name for an input piper.
    #[serde(default)]
    pub inputs: Vec<Spanned<String>>,
    /// Items emitted per result.
    #[serde(default = "one")]
    pub produce: usize,
    /// Tasks on the NuMap.
    #[serde(default = "one")]
    pub spawn: usize,
    /// Items per call.
    #[serde(default = "one")]
    pub consume: usize,
    /// Per-item timeout in seconds.
    pub timeout: Option<f64>,
    /// Topological tie-breaker.
    #[serde(default)]
    pub branch: i64,
    /// Stop on the first error.
    #[serde(default)]
    pub debug: bool,
    /// Keep outputs in the statistics.
    #[serde(default)]
    pub track: bool,
    /// Override the resource's ordering.
    pub ordered: Option<bool>,
    /// Retries of items whose worker died.
    #[serde(default)]
    pub retries: u32,
}

/// How an input is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum InputSpec {
    /// The lines of a file (`-` = stdin; `.gz` and `.zst` decompressed).
    Lines {
        /// File path (relative to the pipeline file).
        path: String,
        /// Follow the file like `tail -f` until the pipeline is stopped.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        follow: bool,
    },
    /// A file of JSON values, one per line.
    Jsonl {
        /// File path.
        path: String,
    },
    /// Text records separated by delimiter lines (PaPy's `load_stream`;
    /// written by `papy.dump_stream`).
    Records {
        /// File path.
        path: String,
        /// The delimiter line (default: a blank line).
        #[serde(default)]
        delimiter: Option<String>,
        /// Emit an unterminated last record instead of an error item.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        emit_unterminated: bool,
    },
    /// Successive MessagePack values (written by `papy.dump_msgpack`).
    Msgpack {
        /// File path.
        path: String,
    },
    /// Integers `start..end` (step 1).
    Range {
        /// First.
        start: i64,
        /// End (exclusive).
        end: i64,
    },
    /// The paths of the files of a directory, sorted.
    Dir {
        /// Directory path.
        path: String,
    },
}

/// How an output is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The output piper whose items are written.
    pub piper: Spanned<String>,
    /// lines | jsonl.
    #[serde(default)]
    pub format: Format,
    /// File path, or `-` for stdout.
    #[serde(default = "dash")]
    pub path: String,
}

fn dash() -> String {
    "-".into()
}

/// Output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One value per line (strings as they are, others as JSON).
    #[default]
    Lines,
    /// One JSON value per line.
    Jsonl,
}

// ---------------------------------------------------------------------------
// Building a Dagger from the file, and the file from a Dagger.

use std::sync::Arc;
use std::time::Duration;

use crate::dagger::Dagger;
use crate::error::{Error, Result};
use crate::numap::NuMap;
use crate::piper::Piper;
use crate::pool::{ProcessPool, WorkerCommand};
use crate::value::Value;
use crate::worker::{Args, Worker};

/// The arguments of one call.
///
/// # Errors
/// Both `args` and `kwargs`, or a value that is not a papy value.
pub fn call_args(call: &CallSpec) -> std::result::Result<Args, String> {
    let conv = |v: &toml::Value| crate::value::to_value(v).map_err(|e| e.to_string());
    if !call.args.is_empty() && !call.kwargs.is_empty() {
        return Err("give `args` or `kwargs`, not both".into());
    }
    if !call.kwargs.is_empty() {
        return Ok(Args::Named(
            call.kwargs
                .iter()
                .map(|(k, v)| Ok((k.clone(), conv(v)?)))
                .collect::<std::result::Result<_, String>>()?,
        ));
    }
    if call.args.is_empty() {
        return Ok(Args::None);
    }
    Ok(Args::Positional(
        call.args
            .iter()
            .map(conv)
            .collect::<std::result::Result<_, String>>()?,
    ))
}

/// The calls of a piper's worker chain.
pub fn calls(spec: &PiperSpec) -> Vec<std::result::Result<CallSpec, String>> {
    spec.worker.get_ref().iter().map(CallSpec::parse).collect()
}

/// The Worker of a piper: one message per call that cannot be built.
///
/// # Errors
/// Unknown functions, bad arguments, missing imports, an empty chain.
pub fn worker_of(spec: &PiperSpec) -> std::result::Result<Worker, Vec<String>> {
    let mut workers = Vec::new();
    let mut problems = Vec::new();
    for call in calls(spec) {
        match call.and_then(|c| {
            call_args(&c).and_then(|a| Worker::build(&c.function, a).map_err(|e| e.to_string()))
        }) {
            Ok(w) => workers.push(w),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Worker::chain(workers).map_err(|e| vec![e.to_string()])
}

/// A NuMap for a resource; `process` gives the command of a process worker.
///
/// # Errors
/// Invalid settings or a pool that cannot start.
pub fn numap_of(
    name: &str,
    r: &Resource,
    process: &dyn Fn() -> Result<WorkerCommand>,
) -> Result<NuMap> {
    let mut b = NuMap::builder().name(name).ordered(r.ordered);
    if let Some(s) = r.stride {
        b = b.stride(s);
    }
    if let Some(buf) = r.buffer {
        b = b.buffer(buf);
    }
    match r.kind {
        Kind::Thread => {
            if let Some(w) = r.workers {
                b = b.workers(w);
            }
        }
        Kind::Process => {
            let n = r
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            b = b.pool(Arc::new(ProcessPool::new(name, n, process()?)?));
        }
        Kind::Remote => {
            let cmds = r
                .remote
                .iter()
                .map(|c| (WorkerCommand::shell(&c.command), c.workers))
                .collect();
            b = b.pool(Arc::new(ProcessPool::remote(name, cmds)?));
        }
        Kind::Redis => b = b.pool(redis_pool(name, r, process)?),
    }
    b.build()
}

/// The pool of a `kind = "redis"` resource, through the installed builder.
fn redis_pool(
    name: &str,
    r: &Resource,
    process: &dyn Fn() -> Result<WorkerCommand>,
) -> Result<Arc<dyn crate::pool::Pool>> {
    let url = r.url.clone().ok_or_else(|| {
        Error::Config(format!(
            "resource `{name}`: kind = \"redis\" needs `url` (e.g. \"redis://127.0.0.1:6379\")"
        ))
    })?;
    let claim_after = match r.claim_after {
        None => None,
        Some(t) if t > 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t)),
        Some(_) => {
            return Err(Error::Config(format!(
                "resource `{name}`: claim_after must be a positive number of seconds"
            )))
        }
    };
    let local_workers = r.workers.unwrap_or(0);
    let spec = crate::pool::BrokerSpec {
        name: name.to_string(),
        url,
        run_id: r.run_id.clone(),
        max_attempts: r.max_attempts,
        claim_after,
        local_workers,
        command: if local_workers > 0 {
            Some(process()?)
        } else {
            None
        },
    };
    crate::pool::build_kind("redis", &spec)
}

/// The Piper of a spec, on its resource's NuMap.
///
/// # Errors
/// Its worker chain cannot be built, or an unknown resource.
pub fn piper_of(spec: &PiperSpec, numaps: &BTreeMap<String, NuMap>) -> Result<Piper> {
    let name = spec.name.get_ref();
    let worker = worker_of(spec)
        .map_err(|ps| Error::Config(format!("piper `{name}`: {}", ps.join("; "))))?;
    let mut piper = Piper::new(name.clone(), worker)
        .produce(spec.produce)
        .spawn(spec.spawn)
        .consume(spec.consume)
        .branch(spec.branch)
        .debug(spec.debug)
        .track(spec.track)
        .retries(spec.retries, Duration::from_millis(100));
    if let Some(r) = &spec.resource {
        let m = numaps.get(r.get_ref()).ok_or_else(|| {
            Error::Config(format!(
                "piper `{name}`: unknown resource `{}`",
                r.get_ref()
            ))
        })?;
        piper = piper.parallel(m);
    }
    if let Some(t) = spec.timeout {
        if !(t > 0.0 && t.is_finite()) {
            return Err(Error::Config(format!(
                "piper `{name}`: timeout must be a positive number of seconds"
            )));
        }
        piper = piper.timeout(Duration::from_secs_f64(t));
    }
    if let Some(o) = spec.ordered {
        piper = piper.ordered(o);
    }
    Ok(piper)
}

/// Adds the pipes named by the pipers' `inputs` (names that are pipers).
///
/// # Errors
/// A cycle.
pub fn connect(f: &PipelineFile, d: &mut Dagger) -> Result<()> {
    for p in &f.pipers {
        let spec = p.get_ref();
        for i in &spec.inputs {
            if d.piper(i.get_ref()).is_some() {
                d.connect(i.get_ref(), spec.name.get_ref())?;
            }
        }
    }
    Ok(())
}

/// The Dagger of a file: its NuMaps and pipers, connected.
///
/// # Errors
/// As [`numap_of`], [`piper_of`] and [`connect`].
pub fn dagger_of(f: &PipelineFile, process: &dyn Fn() -> Result<WorkerCommand>) -> Result<Dagger> {
    let mut numaps = BTreeMap::new();
    for (name, r) in &f.resources {
        numaps.insert(name.clone(), numap_of(name, r.get_ref(), process)?);
    }
    let mut d = Dagger::new();
    for p in &f.pipers {
        d.add_piper(piper_of(p.get_ref(), &numaps)?)?;
    }
    connect(f, &mut d)?;
    Ok(d)
}

fn toml_of(v: &Value, what: &str) -> Result<toml::Value> {
    toml::Value::try_from(v)
        .map_err(|e| Error::Config(format!("{what}: cannot be written as TOML: {e}")))
}

/// The file describing a Dagger (resources and pipers; inputs and outputs
/// are not part of a Dagger and are left empty).
///
/// # Errors
/// A closure in a worker chain, or an argument TOML cannot hold (null in a
/// raw function's arguments).
pub fn file_of(d: &Dagger) -> Result<PipelineFile> {
    let mut f = PipelineFile::default();
    for p in d.order() {
        let mut resource = None;
        if let Some(m) = p.numap() {
            let kind = match m.kind() {
                "process" => Kind::Process,
                "remote" => Kind::Remote,
                "redis" => Kind::Redis,
                _ => Kind::Thread,
            };
            let remote = m
                .remote_commands()
                .into_iter()
                .map(|(command, workers)| RemoteSpec { command, workers })
                .collect();
            let broker = m.broker();
            f.resources.entry(m.name().to_string()).or_insert_with(|| {
                Spanned::new(
                    0..0,
                    Resource {
                        kind,
                        workers: match &broker {
                            Some(b) => Some(b.local_workers),
                            None => (kind != Kind::Remote).then_some(m.workers()),
                        },
                        stride: m.fixed_stride(),
                        buffer: m.buffer(),
                        ordered: m.ordered(),
                        remote,
                        url: broker.as_ref().map(|b| b.url.clone()),
                        run_id: broker.as_ref().and_then(|b| b.run_id.clone()),
                        max_attempts: broker.as_ref().and_then(|b| b.max_attempts),
                        claim_after: broker
                            .as_ref()
                            .and_then(|b| b.claim_after.map(|t| t.as_secs_f64())),
                    },
                )
            });
            resource = Some(Spanned::new(0..0, m.name().to_string()));
        }
        let mut worker = Vec::new();
        for s in p.worker().steps() {
            let f = s.function();
            if !f.portable {
                return Err(Error::NotPortable {
                    function: f.name.clone(),
                    pool: "saved pipeline".into(),
                });
            }
            let mut t = toml::Table::new();
            t.insert("function".into(), toml::Value::String(f.name.clone()));
            match &f.params {
                Some(params) => {
                    let mut kwargs = toml::Table::new();
                    for (param, v) in params.iter().zip(s.args()) {
                        if !v.is_null() {
                            kwargs.insert(
                                param.name.to_string(),
                                toml_of(v, &format!("argument `{}` of `{}`", param.name, f.name))?,
                            );
                        }
                    }
                    if !kwargs.is_empty() {
                        t.insert("kwargs".into(), toml::Value::Table(kwargs));
                    }
                }
                None if !s.args().is_empty() => {
                    let args = s
                        .args()
                        .iter()
                        .map(|v| toml_of(v, &format!("an argument of `{}`", f.name)))
                        .collect::<Result<Vec<_>>>()?;
                    t.insert("args".into(), toml::Value::Array(args));
                }
                None => {}
            }
            worker.push(toml::Value::Table(t));
        }
        let inputs = d
            .upstream(p.name())?
            .iter()
            .map(|u| Spanned::new(0..0, u.name().to_string()))
            .collect();
        let (retries, _) = p.retry_policy();
        f.pipers.push(Spanned::new(
            0..0,
            PiperSpec {
                name: Spanned::new(0..0, p.name().to_string()),
                worker: Spanned::new(0..0, worker),
                resource,
                inputs,
                produce: p.produce_n(),
                spawn: p.spawn_n(),
                consume: p.consume_n(),
                timeout: p.timeout_value().map(|t| t.as_secs_f64()),
                branch: p.branch_value(),
                debug: p.is_debug(),
                track: p.is_tracked(),
                ordered: p.ordered_value(),
                retries,
            },
        ));
    }
    Ok(f)
}
