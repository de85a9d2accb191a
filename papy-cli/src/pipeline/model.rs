//! The pipeline file (TOML), field by field; documented in docs/pipeline-format.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A whole pipeline file.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Default, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Threads of this process.
    #[default]
    Thread,
    /// Child processes (`papy worker --stdio`).
    Process,
    /// Commands (e.g. ssh) speaking the worker protocol.
    Remote,
}

/// A remote worker command.
#[derive(Debug, Clone, Deserialize)]
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

/// `[resources.NAME]`: a NuMap.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum InputSpec {
    /// The lines of a file (`-` = stdin).
    Lines {
        /// File path (relative to the pipeline file).
        path: String,
    },
    /// A file of JSON values, one per line.
    Jsonl {
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One value per line (strings as they are, others as JSON).
    #[default]
    Lines,
    /// One JSON value per line.
    Jsonl,
}
