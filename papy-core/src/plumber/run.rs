//! A run's moving parts: the pause gate and end count of its drains, what
//! it holds, and the [`StopHandle`] that ends its inputs from any thread.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::sink::Sink;
use crate::error::{Error, Result};
use crate::numap::NuMap;
use crate::piper::adapters::{RunCtl, Stream};
use crate::stats::NodeCounters;
use crate::stats::Stats;
use crate::sync::{lock, Monitor, StopSignal};

/// Holds the drains while a run is paused.
#[derive(Default)]
pub(super) struct Pause {
    paused: AtomicBool,
    gate: Monitor<()>,
}

impl Pause {
    pub(super) fn set(&self, on: bool) {
        let _g = self.gate.lock();
        self.paused.store(on, Ordering::Release);
        self.gate.notify_all();
    }

    pub(super) fn wait(&self) {
        if !self.paused.load(Ordering::Acquire) {
            return;
        }
        let mut g = self.gate.lock();
        while self.paused.load(Ordering::Acquire) {
            g = self.gate.wait(g);
        }
    }
}

/// How many drains have ended.
pub(super) type Done = Monitor<usize>;

/// Counts its drain as ended when dropped (a panic included).
struct DoneGuard(Arc<Done>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.notify_all();
    }
}

/// One run: its control, counters, drains and NuMaps.
pub(super) struct Run {
    pub(super) ctl: Arc<RunCtl>,
    pub(super) counters: BTreeMap<String, Arc<NodeCounters>>,
    pub(super) pending: Vec<(String, Stream)>,
    pub(super) drains: Vec<JoinHandle<()>>,
    pub(super) pause: Arc<Pause>,
    pub(super) done: Arc<Done>,
    pub(super) outputs: usize,
    pub(super) start_time: SystemTime,
    pub(super) started: Instant,
    pub(super) ended: Option<Duration>,
    pub(super) numaps: Vec<NuMap>,
}

impl Run {
    /// Joins the drain threads started so far and notes when the run ended.
    pub(super) fn join_drains(&mut self) {
        for h in self.drains.drain(..) {
            let _ = h.join();
        }
        self.ended.get_or_insert(self.started.elapsed());
    }

    /// Whether every drain started and ended.
    pub(super) fn finished(&self) -> bool {
        self.drains.len() == self.outputs && *self.done.lock() >= self.outputs
    }

    /// Starts one drain thread per output not drained yet, each putting
    /// its items into the output's sink (or nowhere).
    pub(super) fn spawn_drains(&mut self, sinks: &BTreeMap<String, Sink>) -> Result<()> {
        for (name, mut stream) in self.pending.drain(..) {
            let sink = sinks.get(&name).cloned();
            let (pause, done, ctl) = (self.pause.clone(), self.done.clone(), self.ctl.clone());
            let h = std::thread::Builder::new()
                .name(format!("papy-drain-{name}"))
                .spawn(move || {
                    let _guard = DoneGuard(done);
                    let drained = crate::catch(|| loop {
                        pause.wait();
                        let Some(item) = stream.next() else { break };
                        match &sink {
                            Some(Sink::Collect(c)) => lock(&c.0).push(item),
                            Some(Sink::Call(f)) => (lock(f))(item),
                            None => {}
                        }
                    });
                    if let Err(message) = drained {
                        // A panicking sink or input: the run fails loudly
                        // (and stops its inputs) instead of losing items.
                        ctl.fail(Error::Output {
                            node: name.clone(),
                            message,
                        });
                    }
                })?;
            self.drains.push(h);
        }
        Ok(())
    }

    /// Clears the tasks of the run's NuMaps, once their feeders are done.
    pub(super) fn release_numaps(&self) {
        for n in &self.numaps {
            // The feeder ends right after its last submission; give it a moment.
            for _ in 0..500 {
                if n.clear_tasks().is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Its statistics.
    pub(super) fn stats(&self) -> Stats {
        Stats {
            start_time: Some(self.start_time),
            run_time: Some(self.ended.unwrap_or_else(|| self.started.elapsed())),
            nodes: self
                .counters
                .iter()
                .map(|(k, c)| (k.clone(), c.snapshot()))
                .collect(),
            tracked: self
                .counters
                .iter()
                .filter_map(|(k, c)| c.tracked().map(|t| (k.clone(), t)))
                .collect(),
        }
    }

    /// Waits until every drain has ended, or `timeout`.
    pub(super) fn wait_drains(&self, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut n = self.done.lock();
        while *n < self.outputs {
            n = match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
                None => self.done.wait(n),
                Some(left) if left.is_zero() => break,
                Some(left) => self.done.wait_timeout(n, left),
            };
        }
    }
}

/// Stops a run's inputs from another thread ([`Plumber::stop_handle`](crate::Plumber::stop_handle)).
#[derive(Clone)]
pub struct StopHandle {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) signal: StopSignal,
    pub(super) numaps: Vec<NuMap>,
}

impl StopHandle {
    /// Every input ends at its next stride boundary, no NuMap pulls more
    /// and what waits for room in a buffer is dropped
    /// ([`NuMap::stop_taking`]); what is in the buffers still flows to
    /// the outputs. Returns how many items the NuMaps had taken and not
    /// delivered at that moment: at most that many can still come out
    /// (a node's own stride, for pipers without a NuMap, comes on top).
    pub fn request(&self) -> usize {
        self.stop.store(true, Ordering::Release);
        self.signal.raise();
        self.numaps
            .iter()
            .map(|m| {
                m.stop_taking();
                m.taken()
            })
            .sum()
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StopHandle({} NuMaps)", self.numaps.len())
    }
}
