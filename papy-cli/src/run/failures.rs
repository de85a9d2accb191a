//! Failed items: a few lines on stderr, every one in `--errors FILE`
//! (JSON lines), a summary by node, function and kind at the end, and
//! `--max-errors` / `--fail-fast`.
//!
//! Numbering: `index` is 0-based (the position of the item in its input,
//! as in the engine), `line` and `record` are 1-based (as editors count).

use std::collections::{BTreeMap, HashSet, VecDeque};

use papy_core::ItemError;

use super::trace::Trace;

/// What a run does with failed items.
pub(crate) struct Failures {
    trace: Trace,
    show: usize,
    max: Option<u64>,
    total: u64,
    seen: HashSet<(String, u64)>,
    groups: BTreeMap<(String, String, String), (u64, String)>,
    recent: VecDeque<Recent>,
    /// Maps an index of the run to the index in the input (retries and
    /// resumed runs read a part of the input).
    pub positions: BTreeMap<String, Positions>,
}

/// How a run's item indices map to the input's.
#[derive(Debug, Clone)]
pub(crate) enum Positions {
    /// The run starts `n` items into the input.
    Offset(u64),
    /// The run reads only these indices of the input, in order.
    Listed(Vec<u64>),
}

impl Positions {
    /// The input index of the run's item `i`.
    pub(crate) fn original(&self, i: u64) -> Option<u64> {
        match self {
            Positions::Offset(n) => i.checked_add(*n),
            Positions::Listed(v) => usize::try_from(i).ok().and_then(|i| v.get(i)).copied(),
        }
    }
}

/// How many of the latest failures [`Failures::recent`] keeps.
const RECENT: usize = 20;

/// A failure as the live view lists it: one short line.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Recent {
    /// The node where it failed.
    pub node: String,
    /// Its input and index there (`words` 12), or the node's index.
    pub place: String,
    /// The kind of error.
    pub kind: String,
    /// The message's first line, at most 200 characters.
    pub message: String,
}

/// One failed item, traced to its input where it can be.
pub(crate) struct Failure {
    /// The JSON line for `--errors`.
    pub json: serde_json::Value,
    /// A line for stderr, when it is among the first shown.
    pub shown: Option<String>,
}

impl Failures {
    /// Failures of a run: `show` lines on stderr, a stop after `max`.
    pub(crate) fn new(trace: Trace, show: usize, max: Option<u64>) -> Failures {
        Failures {
            trace,
            show,
            max,
            total: 0,
            seen: HashSet::new(),
            groups: BTreeMap::new(),
            recent: VecDeque::new(),
            positions: BTreeMap::new(),
        }
    }

    /// Records a failed item reaching output `output` at its position
    /// `at`; `None` when the same failure already reached another output.
    pub(crate) fn record(&mut self, output: &str, at: u64, e: &ItemError) -> Option<Failure> {
        let node = e
            .path()
            .first()
            .cloned()
            .unwrap_or_else(|| output.to_string());
        let index = e.index();
        if let Some(i) = index {
            if !self.seen.insert((node.clone(), i)) {
                return None;
            }
        }
        self.total += 1;
        let function = e.function().unwrap_or("-").to_string();
        let kind = e.kind().to_string();
        let g = self
            .groups
            .entry((node.clone(), function.clone(), kind.clone()))
            .or_insert_with(|| (0, e.message().to_string()));
        g.0 += 1;
        let mut json = serde_json::json!({
            "node": node,
            "function": e.function(),
            "kind": kind,
            "message": e.message(),
            "path": e.path(),
            "output": output,
            "output_index": at,
        });
        let mut place = format!("node `{node}`");
        if let (Some(input), Some(i)) = (self.trace.input_at(&node), index) {
            let original = self.positions.get(input).map_or(Some(i), |p| p.original(i));
            if let Some(i) = original {
                json["input"] = input.into();
                json["index"] = i.into();
                place = format!("input `{input}` index {i}");
                if let Some(unit) = self.trace.unit.get(input) {
                    json[*unit] = (i + 1).into();
                    place = format!("input `{input}` {unit} {}", i + 1);
                }
            }
        } else if let Some(i) = index {
            json["node_index"] = i.into();
            place = format!("node `{node}` index {i}");
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Recent {
            node: node.clone(),
            place: place.clone(),
            kind: kind.clone(),
            message: e
                .message()
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        });
        let shown = (self.total <= self.show as u64).then(|| {
            format!(
                "papy: failed: {place}: {kind} in `{function}`: {}",
                e.message()
            )
        });
        Some(Failure { json, shown })
    }

    /// Failed items so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The latest failures, oldest first.
    pub(crate) fn recent(&self) -> impl Iterator<Item = &Recent> {
        self.recent.iter()
    }

    /// Failures counted by node and kind.
    pub(crate) fn counts(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for ((node, _, kind), (n, _)) in &self.groups {
            *out.entry((node.clone(), kind.clone())).or_insert(0) += n;
        }
        out
    }

    /// The limit of `--max-errors` (1 for `--fail-fast`).
    pub(crate) fn limit(&self) -> Option<u64> {
        self.max
    }

    /// `true` once `--max-errors` is reached.
    pub(crate) fn limit_reached(&self) -> bool {
        self.max.is_some_and(|m| self.total >= m)
    }

    /// The summary table (empty without failures).
    pub(crate) fn summary(&self, errors_file: Option<&str>) -> Vec<String> {
        if self.total == 0 {
            return Vec::new();
        }
        let mut out = vec![format!(
            "{} failed item(s), by node, function and kind:",
            self.total
        )];
        out.push(format!(
            "  {:>8}  {:<16} {:<24} {:<18} first message",
            "count", "node", "function", "kind"
        ));
        let mut groups: Vec<_> = self.groups.iter().collect();
        groups.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        for ((node, function, kind), (count, first)) in groups {
            let first: String = first.chars().take(100).collect();
            out.push(format!(
                "  {count:>8}  {node:<16} {function:<24} {kind:<18} {first}"
            ));
        }
        let hidden = self.total.saturating_sub(self.show as u64);
        match errors_file {
            Some(f) => out.push(format!("every failed item is in {f}")),
            None if hidden > 0 => out.push(format!(
                "{hidden} failure(s) not shown; --errors FILE keeps every one (then --retry-failed FILE reruns them)"
            )),
            None => {}
        }
        out
    }
}
