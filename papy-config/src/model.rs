//! The pipeline file's model, table by table (docs/pipeline-format.md).
//!
//! Loading goes through [`crate::load`], which reads each table with the
//! key path of any error, reports every unknown key with a suggestion, and
//! validates the whole model once; saving serializes these types.

use std::collections::BTreeMap;

use papy_core::piper::PiperOptions;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole pipeline file.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PipelineFile {
    /// Plugins to load before anything else.
    #[serde(skip_serializing_if = "Plugins::is_empty")]
    pub plugins: Plugins,
    /// Named NuMaps.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, Resource>,
    /// The nodes, in file order.
    pub pipers: Vec<PiperSpec>,
    /// Named external inputs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Named outputs (sinks of output pipers).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputSpec>,
}

impl PipelineFile {
    /// The keys of the top level.
    pub const KEYS: &'static [&'static str] =
        &["plugins", "resources", "pipers", "inputs", "outputs"];

    /// The spec of the piper named `name`.
    pub fn piper(&self, name: &str) -> Option<&PiperSpec> {
        self.pipers.iter().find(|p| p.name == name)
    }
}

/// `[plugins]`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Plugins {
    /// Directories to search (relative to the pipeline file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Plugins to load: names (searched) or file paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<String>,
    /// Run plugin functions in worker processes, never on this process's
    /// threads: a piper on a thread resource (or on none) that calls a
    /// plugin function runs on a process pool instead, so a native crash
    /// in the plugin costs the items in flight, not the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate: bool,
}

impl Plugins {
    /// The keys of `[plugins]`.
    pub const KEYS: &'static [&'static str] = &["paths", "load", "isolate"];

    fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.load.is_empty()
    }
}

/// `[resources.NAME]`: a NuMap, whose pool kind owns the other keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// The settings every kind shares.
    #[serde(flatten)]
    pub numap: NuMapSettings,
    /// The keys of the kind (`workers`, `remote`, `url`...), read by the
    /// kind's typed configuration ([`crate::kinds`]).
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// The settings of a resource that do not depend on its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NuMapSettings {
    /// The pool kind: `thread` (default), `process`, `remote`, or one a
    /// crate installed (`redis`).
    pub kind: String,
    /// Items per visit (none: adaptive batching).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// Items in flight at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<usize>,
    /// Results in input order.
    pub ordered: bool,
}

impl NuMapSettings {
    /// The keys every kind shares.
    pub const KEYS: &'static [&'static str] = &["kind", "stride", "buffer", "ordered"];
}

impl Default for NuMapSettings {
    fn default() -> Self {
        NuMapSettings {
            kind: "thread".into(),
            stride: None,
            buffer: None,
            ordered: true,
        }
    }
}

/// One function of a worker chain: a name, or a table with arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    /// The function name.
    pub function: String,
    /// Positional arguments.
    pub args: Vec<toml::Value>,
    /// Arguments by name.
    pub kwargs: BTreeMap<String, toml::Value>,
}

impl CallSpec {
    /// The keys of a call table.
    pub const KEYS: &'static [&'static str] = &["function", "args", "kwargs"];

    /// A call of `function` without arguments.
    pub fn named(function: impl Into<String>) -> CallSpec {
        CallSpec {
            function: function.into(),
            args: Vec::new(),
            kwargs: BTreeMap::new(),
        }
    }

    /// Reads one entry of a `worker` list: `"name"` or `{ function, args, kwargs }`.
    ///
    /// # Errors
    /// A message saying what the entry should look like.
    pub fn parse(v: &toml::Value) -> Result<CallSpec, String> {
        match v {
            toml::Value::String(s) => Ok(CallSpec::named(s.clone())),
            toml::Value::Table(t) => {
                let mut c = CallSpec::named(String::new());
                for (k, v) in t {
                    match (k.as_str(), v) {
                        ("function", toml::Value::String(s)) => c.function = s.clone(),
                        ("args", toml::Value::Array(a)) => c.args = a.clone(),
                        ("kwargs", toml::Value::Table(kw)) => {
                            c.kwargs = kw.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                        (k @ ("function" | "args" | "kwargs"), v) => {
                            return Err(format!(
                                "`{k}` must be {}, not a {}",
                                match k {
                                    "function" => "a string",
                                    "args" => "a list",
                                    _ => "a table",
                                },
                                v.type_str()
                            ))
                        }
                        // Unknown keys are reported by the schema check.
                        _ => {}
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

impl Serialize for CallSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.args.is_empty() && self.kwargs.is_empty() {
            return s.serialize_str(&self.function);
        }
        let mut t = toml::Table::new();
        t.insert(
            "function".into(),
            toml::Value::String(self.function.clone()),
        );
        if !self.args.is_empty() {
            t.insert("args".into(), toml::Value::Array(self.args.clone()));
        }
        if !self.kwargs.is_empty() {
            t.insert(
                "kwargs".into(),
                toml::Value::Table(self.kwargs.clone().into_iter().collect()),
            );
        }
        t.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CallSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CallSpec::parse(&toml::Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `[[pipers]]`: a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PiperSpec {
    /// Unique name.
    pub name: String,
    /// The resource (NuMap) it runs on; none = linear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Upstream pipers, or one input name for an input piper.
    pub inputs: Vec<String>,
    /// The node's options (`produce`, `consume`, `timeout`...).
    #[serde(flatten)]
    pub options: PiperOptions,
    /// The worker chain: names, or `{ function, args, kwargs }` tables.
    pub worker: Vec<CallSpec>,
}

/// The keys of a `[[pipers]]` table besides its [`PiperOptions`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PiperFrame {
    pub name: String,
    pub worker: Vec<CallSpec>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub inputs: Vec<String>,
}

impl Resource {
    /// The functions its workers provide (`functions = [...]` of a process
    /// or remote resource).
    pub fn provided_functions(&self) -> Vec<String> {
        match self.settings.get("functions") {
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl PiperSpec {
    /// The keys of a `[[pipers]]` table besides its [`PiperOptions::KEYS`].
    pub const FRAME_KEYS: &'static [&'static str] = &["name", "worker", "resource", "inputs"];
}

/// How an input is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The text of a file in blocks of whole lines (`-` = stdin; `.gz` and
    /// `.zst` decompressed): one item per block of about `bytes` bytes, cut
    /// after a newline, each line keeping its `"\n"`. For workers that scan
    /// text (counting, grepping): a megabyte per hand-off instead of a line.
    Blocks {
        /// File path (relative to the pipeline file).
        path: String,
        /// The block size in bytes (default 1 MiB; at most 1 GiB).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<i64>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
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

impl InputSpec {
    /// Each input kind with its keys (besides `kind`).
    pub const KINDS: &'static [(&'static str, &'static [&'static str])] = &[
        ("lines", &["path", "follow"]),
        ("blocks", &["path", "bytes"]),
        ("jsonl", &["path"]),
        ("records", &["path", "delimiter", "emit_unterminated"]),
        ("msgpack", &["path"]),
        ("range", &["start", "end"]),
        ("dir", &["path"]),
    ];
}

/// How an output is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The output piper whose items are written.
    pub piper: String,
    /// lines | jsonl.
    #[serde(default)]
    pub format: Format,
    /// File path, or `-` for stdout.
    #[serde(default = "dash")]
    pub path: String,
}

impl OutputSpec {
    /// The keys of `[outputs.NAME]`.
    pub const KEYS: &'static [&'static str] = &["piper", "format", "path"];
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys_of<T: Serialize>(t: &T) -> Vec<String> {
        let mut k: Vec<String> = toml::Table::try_from(t)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    /// The key lists the schema check uses are the serde fields, so an
    /// added field cannot be reported as unknown (or a removed one accepted).
    #[test]
    fn each_key_list_is_exactly_its_serde_fields() {
        let plugins = Plugins {
            paths: vec!["a".into()],
            load: vec!["b".into()],
            isolate: true,
        };
        assert_eq!(keys_of(&plugins), sorted(Plugins::KEYS));
        let numap = NuMapSettings {
            kind: "thread".into(),
            stride: Some(1),
            buffer: Some(1),
            ordered: true,
        };
        assert_eq!(keys_of(&numap), sorted(NuMapSettings::KEYS));
        let options = PiperOptions {
            produce: 2,
            repeat: true,
            spawn: 2,
            consume: 2,
            timeout: Some(Duration::from_secs(1)),
            branch: 1,
            debug: true,
            track: true,
            ordered: Some(false),
            retries: 1,
            retry_backoff: Duration::from_secs(1),
            once: true,
        };
        assert_eq!(keys_of(&options), sorted(PiperOptions::KEYS));
        let output = OutputSpec {
            piper: "p".into(),
            format: Format::Jsonl,
            path: "-".into(),
        };
        assert_eq!(keys_of(&output), sorted(OutputSpec::KEYS));
        let inputs = [
            InputSpec::Lines {
                path: "a".into(),
                follow: true,
            },
            InputSpec::Blocks {
                path: "a".into(),
                bytes: Some(1),
            },
            InputSpec::Jsonl { path: "a".into() },
            InputSpec::Records {
                path: "a".into(),
                delimiter: Some("x".into()),
                emit_unterminated: true,
            },
            InputSpec::Msgpack { path: "a".into() },
            InputSpec::Range { start: 0, end: 1 },
            InputSpec::Dir { path: "a".into() },
        ];
        for (i, (kind, keys)) in inputs.iter().zip(InputSpec::KINDS) {
            let mut want = keys.to_vec();
            want.push("kind");
            assert_eq!(keys_of(i), sorted(&want), "{kind}");
        }
    }
}
