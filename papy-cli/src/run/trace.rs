//! Tracing items back to their inputs: which nodes see their input in the
//! input's own order, one item per input item, so that an error's index at
//! its node is the index of an input item (for `--errors`, `--retry-failed`
//! and `--resume`).

use std::collections::BTreeMap;

use papy_config::model::{InputSpec, PipelineFile};

/// Per node, the input whose items it sees one for one and in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Trace {
    /// Nodes whose *input* positions are the input's item indices.
    pub input_of: BTreeMap<String, String>,
    /// Nodes whose *output* positions are the input's item indices.
    pub output_of: BTreeMap<String, String>,
    /// Inputs whose items are lines (or records), with the word for them.
    pub unit: BTreeMap<String, &'static str>,
}

impl Trace {
    /// Works it out from the file (pipers are in any order; the graph is acyclic).
    pub(crate) fn of(f: &PipelineFile) -> Trace {
        let mut t = Trace::default();
        for (name, input) in &f.inputs {
            let unit = match input {
                // JSON Lines skips blank lines: its index is not a line number.
                InputSpec::Lines { .. } => Some("line"),
                InputSpec::Records { .. } | InputSpec::Msgpack { .. } => Some("record"),
                InputSpec::Blocks { .. }
                | InputSpec::Jsonl { .. }
                | InputSpec::Range { .. }
                | InputSpec::Dir { .. } => None,
            };
            if let Some(u) = unit {
                t.unit.insert(name.clone(), u);
            }
        }
        let ordered = |p: &papy_config::PiperSpec| match &p.resource {
            None => true,
            Some(r) => p
                .options
                .ordered
                .unwrap_or_else(|| f.resources.get(r).is_none_or(|r| r.numap.ordered)),
        };
        // Each node's output alignment once its upstream nodes have theirs
        // (`None`: not traceable); one pass per node at most.
        let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
        for _ in 0..=f.pipers.len() {
            let mut changed = false;
            for p in &f.pipers {
                if out.contains_key(&p.name) {
                    continue;
                }
                let source: Option<String> = match p.inputs.as_slice() {
                    [only] if f.piper(only).is_none() => Some(only.clone()),
                    ups => {
                        let known: Option<Vec<&Option<String>>> =
                            ups.iter().map(|u| out.get(u)).collect();
                        let Some(known) = known else { continue };
                        match known.first() {
                            Some(Some(x)) if known.iter().all(|k| k.as_ref() == Some(x)) => {
                                Some(x.clone())
                            }
                            _ => None,
                        }
                    }
                };
                let o = &p.options;
                let one_for_one = o.consume == 1;
                if let (true, Some(x)) = (one_for_one, &source) {
                    t.input_of.insert(p.name.clone(), x.clone());
                }
                let aligned = one_for_one && o.produce == 1 && ordered(p);
                out.insert(p.name.clone(), source.filter(|_| aligned));
                changed = true;
            }
            if !changed {
                break;
            }
        }
        t.output_of = out
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        t
    }

    /// The input whose item index an error's index at `node` is.
    pub(crate) fn input_at(&self, node: &str) -> Option<&str> {
        self.input_of.get(node).map(String::as_str)
    }
}
