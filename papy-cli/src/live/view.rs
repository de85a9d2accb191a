//! What the live page, `/api/state`, `/metrics`, the run report, the
//! terminal progress and `--stats-json` show: one [`View`] of the run,
//! made by a [`Sampler`] from the engine's counters. Its JSON form is
//! documented in docs/live.md (schema [`SCHEMA`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use papy_core::{Plumber, PlumberState};
use serde::Serialize;

use super::layout::{layout, Place};
use crate::run::failures::{Failures, Recent};

/// The version of the JSON form; raised when a field changes meaning or
/// goes away (new fields may appear at any version).
pub(crate) const SCHEMA: u32 = 1;

/// How many points the throughput series keeps before it halves its
/// resolution (the whole run stays on the chart).
const SERIES_POINTS: usize = 600;

/// The run as the view shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct View {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The pipeline file, as given.
    pub pipeline: String,
    /// The command line.
    pub command: Vec<String>,
    /// `starting`, `running`, `paused`, `stopping`, `finished` or `stopped`.
    pub state: String,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Progress through the inputs, where their size is known.
    pub progress: Option<Progress>,
    /// Every node (input pipers first, in the pipeline's order).
    pub nodes: Vec<NodeView>,
    /// The pipes, `[from, to]`.
    pub pipes: Vec<(String, String)>,
    /// The resources (NuMaps) the pipers run on.
    pub resources: Vec<ResourceView>,
    /// Failed items.
    pub errors: ErrorsView,
    /// Throughput over time.
    pub series: Series,
    /// The jobs, by worker and time (the run report only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// The resources as the pipeline file (and `--set`) configured them
    /// (the run report only); the job sizes the engine chose are each
    /// resource's `items_per_job`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
}

/// Progress through the inputs whose size is known.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Progress {
    /// `bytes` (files), `items` (ranges) or `mixed` (both; `fraction` is then the mean of the inputs' own).
    pub unit: &'static str,
    /// Read or taken so far.
    pub done: u64,
    /// In all.
    pub total: u64,
    /// `done / total`, 0 to 1.
    pub fraction: f64,
    /// Seconds left at the average pace so far (`None` before there is a pace).
    pub eta_s: Option<f64>,
}

/// One node.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeView {
    /// The piper's name.
    pub name: String,
    /// The input it reads, for an input piper.
    pub input: Option<String>,
    /// `true` for an output piper.
    pub output: bool,
    /// The resource it runs on (`None`: in the thread that pulls it).
    pub resource: Option<String>,
    /// Where the graph draws it.
    pub place: Place,
    /// Items received.
    pub items_in: u64,
    /// Items emitted.
    pub items_out: u64,
    /// Items that failed here.
    pub failed: u64,
    /// Seconds its function ran, summed over workers.
    pub busy_s: f64,
    /// `busy_s` over the time its resource's workers had: 1 = every worker
    /// busy with this node all the time.
    pub busy_share: f64,
    /// Items out per second over the last sample.
    pub rate_now: f64,
    /// Items out per second since the start.
    pub rate_avg: f64,
    /// Mean items per job its pool ran (the adaptive size chosen).
    pub items_per_job: Option<f64>,
    /// Inboxes received and not yet answered: `in / consume - out /
    /// produce` (taken into a buffer, queued or running).
    pub waiting: u64,
}

/// One resource (a NuMap and its pool).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResourceView {
    /// Its name in the pipeline file.
    pub name: String,
    /// `thread`, `process`, `remote`, `redis`...
    pub kind: String,
    /// Workers it runs at once.
    pub workers: usize,
    /// Workers running a job now.
    pub busy: usize,
    /// Workers waiting for a job.
    pub idle: usize,
    /// Workers started so far (replacements included).
    pub started: u64,
    /// Workers that died or were killed and were replaced.
    pub died: u64,
    /// Workers replaced by recycling.
    pub recycled: u64,
    /// Worker starts that failed (command, handshake or init).
    pub failed_starts: u64,
    /// Items taken into its buffer and not yet read out.
    pub in_flight: usize,
    /// The buffer's bound in items.
    pub buffer: usize,
    /// Mean items per job over its nodes (the adaptive size chosen).
    pub items_per_job: Option<f64>,
}

impl ResourceView {
    /// The view of resource `name`, run by `numap` whose pool reports `ps`
    /// (its items per job are summed over its nodes later).
    fn of(name: &str, numap: &papy_core::NuMap, ps: &papy_core::pool::PoolStats) -> ResourceView {
        ResourceView {
            name: name.to_string(),
            kind: ps.kind.to_string(),
            workers: ps.workers,
            busy: ps.busy,
            idle: ps.workers.saturating_sub(ps.busy),
            started: ps.started,
            died: ps.died,
            recycled: ps.recycled,
            failed_starts: ps.failed_starts,
            in_flight: numap.in_flight(),
            buffer: numap.buffer_size(),
            items_per_job: None,
        }
    }
}

/// Failed items.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ErrorsView {
    /// In all.
    pub total: u64,
    /// The stop limit (`--max-errors`, 1 with `--fail-fast`).
    pub limit: Option<u64>,
    /// The latest, oldest first.
    pub recent: Vec<Recent>,
    /// Counted by node and kind.
    pub counts: Vec<ErrorCount>,
}

/// Failures of one node and kind.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorCount {
    /// The node.
    pub node: String,
    /// The kind.
    pub kind: String,
    /// How many.
    pub count: u64,
}

/// Items out per second of every node, sampled about once a second
/// (every `step_s` seconds once the run is long: the points are thinned).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Series {
    /// Seconds between points.
    pub step_s: f64,
    /// The time of each point, seconds since the start.
    pub t: Vec<f64>,
    /// Per node, items out per second at each point.
    pub rates: BTreeMap<String, Vec<f64>>,
}

impl Series {
    fn push(&mut self, t: f64, rates: impl IntoIterator<Item = (String, f64)>) {
        self.t.push(t);
        for (node, r) in rates {
            self.rates.entry(node).or_default().push(r);
        }
        if self.t.len() > SERIES_POINTS {
            // Halve the resolution: the mean of each pair.
            self.t = self.t.chunks(2).map(|c| c[c.len() - 1]).collect();
            for v in self.rates.values_mut() {
                *v = v
                    .chunks(2)
                    .map(|c| c.iter().sum::<f64>() / c.len() as f64)
                    .collect();
            }
            self.step_s *= 2.0;
        }
    }
}

/// The jobs of the run, by worker (the report's worker timeline).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Timeline {
    /// Jobs not recorded (the timeline was full).
    pub dropped: u64,
    /// `[worker, node, start_s, busy_s, items, failed]` per job.
    pub jobs: Vec<(String, String, f64, f64, u64, u64)>,
}

/// An input whose size is known.
#[derive(Debug, Clone)]
enum Sized {
    /// A file of this many bytes.
    File(PathBuf, u64),
    /// A range of this many items.
    Items(u64),
}

/// What the view knows of the pipeline before it runs.
pub(crate) struct Plan {
    /// The pipeline file, as given.
    pub pipeline: String,
    /// The command line.
    pub command: Vec<String>,
    /// The resource of each piper that has one.
    pub resource_of: BTreeMap<String, String>,
    /// The input of each input piper.
    pub input_of: BTreeMap<String, String>,
    sized: Vec<(String, Sized)>,
    settings: serde_json::Value,
}

impl Plan {
    /// The plan of a loaded pipeline file.
    pub(crate) fn of(l: &papy_config::Loaded, pipeline: &str) -> Plan {
        use papy_config::model::InputSpec;
        let f = &l.file;
        let resource_of = f
            .pipers
            .iter()
            .filter_map(|p| p.resource.clone().map(|r| (p.name.clone(), r)))
            .collect();
        let mut input_of = BTreeMap::new();
        let mut sized = Vec::new();
        for p in &f.pipers {
            let [only] = p.inputs.as_slice() else {
                continue;
            };
            let Some(spec) = f.inputs.get(only) else {
                continue;
            };
            input_of.insert(p.name.clone(), only.clone());
            let size = match spec {
                InputSpec::Lines {
                    path,
                    follow: false,
                }
                | InputSpec::Blocks { path, .. }
                | InputSpec::Jsonl { path }
                | InputSpec::Records { path, .. }
                | InputSpec::Msgpack { path }
                    if path != "-" =>
                {
                    let path = l.resolve(path);
                    std::fs::metadata(&path)
                        .ok()
                        .filter(|m| m.is_file())
                        .map(|m| Sized::File(path, m.len()))
                }
                InputSpec::Range { start, end } => {
                    Some(Sized::Items(u64::try_from(end - start).unwrap_or(0)))
                }
                _ => None,
            };
            if let Some(s) = size {
                sized.push((p.name.clone(), s));
            }
        }
        Plan {
            pipeline: pipeline.to_string(),
            command: std::env::args().collect(),
            resource_of,
            input_of,
            sized,
            settings: serde_json::to_value(&f.resources).unwrap_or_default(),
        }
    }
}

/// Makes [`View`]s of a running Plumber: rates from one sample to the
/// next, the throughput series, progress and its ETA.
pub(crate) struct Sampler {
    plan: Plan,
    started: Instant,
    last: Option<(Instant, BTreeMap<String, u64>)>,
    last_point: Option<Instant>,
    series: Series,
    rate_now: BTreeMap<String, f64>,
    /// A stop was asked for (a signal, a limit, the page).
    pub stopping: bool,
    /// How the run ended, once it has.
    pub ended: Option<&'static str>,
}

impl Sampler {
    /// A sampler for a run starting now.
    pub(crate) fn new(plan: Plan) -> Sampler {
        Sampler {
            plan,
            started: Instant::now(),
            last: None,
            last_point: None,
            series: Series {
                step_s: 1.0,
                ..Series::default()
            },
            rate_now: BTreeMap::new(),
            stopping: false,
            ended: None,
        }
    }

    /// The view now. Every call updates the current rates; a point is
    /// added to the series when a second has passed since the last.
    pub(crate) fn sample(&mut self, plumber: &mut Plumber, failures: &Failures) -> View {
        let now = Instant::now();
        let stats = plumber.stats();
        let elapsed = stats.run_time.unwrap_or_default().as_secs_f64();
        let outs: BTreeMap<String, u64> = stats
            .nodes
            .iter()
            .map(|(k, n)| (k.clone(), n.items_out))
            .collect();
        self.update_rates(now, &outs);
        let state = self.state_name(plumber);
        let dagger = plumber.dagger();
        let (nodes, resources) = self.nodes(dagger, &stats, elapsed);
        View {
            schema: SCHEMA,
            pipeline: self.plan.pipeline.clone(),
            command: self.plan.command.clone(),
            state: state.to_string(),
            elapsed_s: elapsed,
            progress: self.progress(&stats, elapsed, state == "finished"),
            nodes,
            pipes: dagger.pipes(),
            resources,
            errors: ErrorsView {
                total: failures.total(),
                limit: failures.limit(),
                recent: failures.recent().cloned().collect(),
                counts: failures
                    .counts()
                    .into_iter()
                    .map(|((node, kind), count)| ErrorCount { node, kind, count })
                    .collect(),
            },
            series: self.series.clone(),
            timeline: None,
            settings: None,
        }
    }

    /// Folds the output counts `outs` of now into the current rates (at
    /// most every 0.2 s, and at the end), and adds a point to the series
    /// when a step has passed.
    fn update_rates(&mut self, now: Instant, outs: &BTreeMap<String, u64>) {
        if let Some((then, before)) = &self.last {
            let dt = now.duration_since(*then).as_secs_f64();
            // The last sample of a run counts however short its interval.
            if dt >= 0.2 || (self.ended.is_some() && dt > 0.0) {
                self.rate_now = outs
                    .iter()
                    .map(|(k, n)| {
                        let b = before.get(k).copied().unwrap_or(0);
                        (k.clone(), n.saturating_sub(b) as f64 / dt)
                    })
                    .collect();
                self.last = Some((now, outs.clone()));
            }
        } else {
            self.last = Some((now, outs.clone()));
        }
        if self.ended.is_some()
            || self
                .last_point
                .is_none_or(|p| now.duration_since(p).as_secs_f64() >= self.series.step_s)
        {
            self.last_point = Some(now);
            let rates: Vec<(String, f64)> = outs
                .keys()
                .map(|k| (k.clone(), self.rate_now.get(k).copied().unwrap_or(0.0)))
                .collect();
            self.series
                .push(self.started.elapsed().as_secs_f64(), rates);
        }
    }

    /// The run's state as the page names it.
    fn state_name(&self, plumber: &mut Plumber) -> &'static str {
        match plumber.state() {
            _ if self.ended.is_some() => self.ended.unwrap_or("stopped"),
            _ if self.stopping => "stopping",
            PlumberState::Idle | PlumberState::Started => "starting",
            PlumberState::Running => "running",
            PlumberState::Paused => "paused",
            PlumberState::Finished => "finished",
            PlumberState::Stopped => "stopped",
        }
    }

    /// Each node's view, in order, and each resource's.
    fn nodes(
        &self,
        dagger: &papy_core::Dagger,
        stats: &papy_core::Stats,
        elapsed: f64,
    ) -> (Vec<NodeView>, Vec<ResourceView>) {
        let mut resources: BTreeMap<String, ResourceView> = BTreeMap::new();
        let places = layout(dagger);
        let outputs: Vec<String> = dagger
            .outputs()
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        let mut job_sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut nodes = Vec::new();
        for piper in dagger.order() {
            let name = piper.name().to_string();
            let n = stats.nodes.get(&name).copied().unwrap_or_default();
            let resource = self.plan.resource_of.get(&name).cloned();
            let mut capacity = 1.0;
            if let (Some(r), Some(m)) = (&resource, piper.numap()) {
                let ps = m.pool_stats();
                capacity = ps.workers.max(1) as f64;
                resources
                    .entry(r.clone())
                    .or_insert_with(|| ResourceView::of(r, m, &ps));
                let s = job_sums.entry(r.clone()).or_default();
                s.0 += n.jobs;
                s.1 += n.job_items;
            }
            nodes.push(NodeView {
                input: self.plan.input_of.get(&name).cloned(),
                output: outputs.contains(&name),
                resource,
                place: places.get(&name).copied().unwrap_or_default(),
                items_in: n.items_in,
                items_out: n.items_out,
                failed: n.failed,
                busy_s: n.busy.as_secs_f64(),
                busy_share: if elapsed > 0.0 {
                    (n.busy.as_secs_f64() / (elapsed * capacity)).min(1.0)
                } else {
                    0.0
                },
                rate_now: self.rate_now.get(&name).copied().unwrap_or(0.0),
                rate_avg: if elapsed > 0.0 {
                    n.items_out as f64 / elapsed
                } else {
                    0.0
                },
                items_per_job: n.mean_job(),
                // In inboxes: `consume` batches its input, `produce` splits
                // its results.
                waiting: (n.items_in / piper.options().consume.max(1) as u64)
                    .saturating_sub(n.items_out / piper.options().produce.max(1) as u64),
                name,
            });
        }
        for (r, (jobs, items)) in job_sums {
            if let Some(v) = resources.get_mut(&r) {
                v.items_per_job = (jobs > 0).then(|| items as f64 / jobs as f64);
            }
        }
        (nodes, resources.into_values().collect())
    }

    fn progress(&self, stats: &papy_core::Stats, elapsed: f64, finished: bool) -> Option<Progress> {
        if self.plan.sized.is_empty() {
            return None;
        }
        let (mut done, mut total, mut fractions) = (0u64, 0u64, 0.0);
        let (mut files, mut ranges) = (0, 0);
        for (piper, s) in &self.plan.sized {
            let (d, t) = match s {
                Sized::File(path, size) => {
                    files += 1;
                    let read = papy_core::func::codec::bytes_read(path).unwrap_or(0);
                    (if finished { *size } else { read.min(*size) }, *size)
                }
                Sized::Items(n) => {
                    ranges += 1;
                    let taken = stats.nodes.get(piper).map_or(0, |s| s.items_in);
                    (if finished { *n } else { taken.min(*n) }, *n)
                }
            };
            done += d;
            total += t;
            fractions += if t == 0 { 1.0 } else { d as f64 / t as f64 };
        }
        let unit = match (files, ranges) {
            (_, 0) => "bytes",
            (0, _) => "items",
            _ => "mixed",
        };
        // Each input counts alike, whatever its unit.
        let fraction = fractions / self.plan.sized.len() as f64;
        let eta_s =
            (fraction > 0.0 && elapsed > 0.5).then(|| elapsed * (1.0 - fraction) / fraction);
        Some(Progress {
            unit,
            done,
            total,
            fraction,
            eta_s,
        })
    }
}

impl Sampler {
    /// The resources' settings, for the report.
    pub(crate) fn settings(&self) -> serde_json::Value {
        self.plan.settings.clone()
    }
}

/// The view of the jobs a Plumber recorded ([`Plumber::with_timeline`]).
pub(crate) fn timeline(plumber: &Plumber) -> Option<Timeline> {
    let t = plumber.timeline()?;
    Some(Timeline {
        dropped: t.dropped(),
        jobs: t
            .spans()
            .into_iter()
            .map(|s| {
                (
                    s.worker.to_string(),
                    s.node.to_string(),
                    s.start.as_secs_f64(),
                    s.busy.as_secs_f64(),
                    s.items,
                    s.failed,
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_series_halves_its_resolution_and_keeps_the_whole_run() {
        let mut s = Series {
            step_s: 1.0,
            ..Series::default()
        };
        for i in 0..=SERIES_POINTS {
            s.push(i as f64, [("a".to_string(), 2.0 * i as f64)]);
        }
        assert!(s.t.len() <= SERIES_POINTS);
        assert_eq!(s.step_s, 2.0);
        assert_eq!(s.t.last(), Some(&(SERIES_POINTS as f64)));
        assert_eq!(s.rates["a"].len(), s.t.len());
        // The mean of each pair: (0 + 2) / 2.
        assert_eq!(s.rates["a"][0], 1.0);
    }
}
