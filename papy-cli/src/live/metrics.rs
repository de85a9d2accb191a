//! The view as Prometheus text (exposition format 0.0.4), served at
//! `/metrics`. The names are stable: docs/live.md lists them.

use std::fmt::Write;

use super::view::{NodeView, ResourceView, View};

/// A metric family of one kind of thing: name, type, help, value.
type Metric<T> = (&'static str, &'static str, &'static str, fn(&T) -> f64);

/// `name{label="value"}` with the value escaped as the format asks.
fn labelled(name: &str, label: &str, value: &str) -> String {
    let mut v = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => v.push_str("\\\\"),
            '"' => v.push_str("\\\""),
            '\n' => v.push_str("\\n"),
            c => v.push(c),
        }
    }
    format!("{name}{{{label}=\"{v}\"}}")
}

/// One metric family: its help, type and samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (series, value) in samples {
        let _ = writeln!(out, "{series} {value}");
    }
}

/// One family per metric of `metrics`, with a sample per item of
/// `items`, labelled `label="name of the item"`.
fn families<T>(
    out: &mut String,
    metrics: &[Metric<T>],
    items: &[T],
    label: &str,
    name_of: fn(&T) -> &String,
) {
    for (name, kind, help, f) in metrics {
        let samples: Vec<(String, f64)> = items
            .iter()
            .map(|x| (labelled(name, label, name_of(x)), f(x)))
            .collect();
        family(out, name, kind, help, &samples);
    }
}

/// The metrics of each node.
const NODES: [Metric<NodeView>; 5] = [
    (
        "papy_node_items_in_total",
        "counter",
        "Items a node received.",
        |n| n.items_in as f64,
    ),
    (
        "papy_node_items_out_total",
        "counter",
        "Items a node emitted (values and errors).",
        |n| n.items_out as f64,
    ),
    (
        "papy_node_failed_total",
        "counter",
        "Items that failed in a node.",
        |n| n.failed as f64,
    ),
    (
        "papy_node_busy_seconds_total",
        "counter",
        "Seconds a node's function ran, summed over workers.",
        |n| n.busy_s,
    ),
    (
        "papy_node_waiting_items",
        "gauge",
        "Inboxes a node received and has not answered yet.",
        |n| n.waiting as f64,
    ),
];

/// The metrics of each resource.
const RESOURCES: [Metric<ResourceView>; 8] = [
    (
        "papy_resource_workers",
        "gauge",
        "Workers a resource runs at once.",
        |r| r.workers as f64,
    ),
    (
        "papy_resource_workers_busy",
        "gauge",
        "Workers running a job now.",
        |r| r.busy as f64,
    ),
    (
        "papy_resource_worker_starts_total",
        "counter",
        "Workers started (replacements included).",
        |r| r.started as f64,
    ),
    (
        "papy_resource_worker_restarts_total",
        "counter",
        "Workers that died or were killed and were replaced.",
        |r| r.died as f64,
    ),
    (
        "papy_resource_worker_recycled_total",
        "counter",
        "Workers replaced by recycling.",
        |r| r.recycled as f64,
    ),
    (
        "papy_resource_worker_failed_starts_total",
        "counter",
        "Worker starts that failed.",
        |r| r.failed_starts as f64,
    ),
    (
        "papy_resource_buffer_items",
        "gauge",
        "Items in a resource's buffer (taken, not yet read out).",
        |r| r.in_flight as f64,
    ),
    (
        "papy_resource_buffer_capacity_items",
        "gauge",
        "The bound of a resource's buffer.",
        |r| r.buffer as f64,
    ),
];

/// The metrics of `view`.
pub(crate) fn render(view: &View) -> String {
    let mut out = String::new();
    families(&mut out, &NODES, &view.nodes, "node", |n| &n.name);
    families(&mut out, &RESOURCES, &view.resources, "resource", |r| {
        &r.name
    });
    let run = [
        (
            "papy_run_elapsed_seconds",
            "gauge",
            "Seconds since the run started.",
            view.elapsed_s,
        ),
        (
            "papy_run_failed_items_total",
            "counter",
            "Failed items of the run.",
            view.errors.total as f64,
        ),
        (
            "papy_run_progress_ratio",
            "gauge",
            "Progress through the inputs of known size, 0 to 1 (NaN when unknown).",
            view.progress.as_ref().map_or(f64::NAN, |p| p.fraction),
        ),
    ];
    for (name, kind, help, v) in run {
        family(&mut out, name, kind, help, &[(name.to_string(), v)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labelled("m", "node", "a\"b\\c\nd"),
            "m{node=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
