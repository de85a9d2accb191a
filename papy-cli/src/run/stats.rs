//! The statistics of a run: the table on stderr, and `--stats-json`.

use anyhow::Context;

use crate::live;

/// The statistics table, on stderr.
pub(super) fn print_stats(stats: &papy_core::Stats) {
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
    eprintln!("run time {secs:.3}s");
}

/// `--stats-json FILE`.
pub(super) fn write_stats_json(
    path: &std::path::Path,
    stats: &papy_core::Stats,
    failed: u64,
    series: &live::view::Series,
) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "run_time_s": stats.run_time.map(|d| d.as_secs_f64()),
        "failed": failed,
        "series": series,
        "nodes": stats.nodes.iter().map(|(k, n)| (k.clone(), serde_json::json!({
            "in": n.items_in, "out": n.items_out, "failed": n.failed, "busy_s": n.busy.as_secs_f64(),
            "jobs": n.jobs, "items_per_job": n.mean_job()
        }))).collect::<serde_json::Map<_, _>>(),
    });
    std::fs::write(path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", path.display()))
}
