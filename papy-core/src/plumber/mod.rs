//! [`Plumber`]: runs a [`Dagger`].
//!
//! States and transitions (anything else is an [`Error::State`]):
//!
//! ```text
//! Idle/Finished/Stopped --start--> Started --run--> Running --pause--> Paused
//!                                     |                 |  <--run/resume--'
//!                                     |                 '--(outputs end)--> Finished
//!   Started/Running/Paused/Finished --stop--> Stopped
//! ```
//!
//! `run` starts one drain thread per output node, so every output is
//! consumed (PaPy's "unconsumed output stalls the pipeline" cannot happen);
//! what a drain reads goes to a [`Collector`], a callback, or nowhere.
//! `stop` ends every input at a stride boundary and lets everything already
//! taken from the inputs flow to the outputs; a stopped pipeline can be
//! started again with new inputs.
//!
//! ```
//! use papy_core::{Dagger, Piper, Plumber, Source, Value, Worker, NuMap};
//! let numap = NuMap::builder().workers(2).stride(4).build().unwrap();
//! let mut d = Dagger::new();
//! d.add_piper(Piper::new("double", Worker::typed("double", |x: i64| x * 2)).parallel(&numap)).unwrap();
//! d.add_piper(Piper::new("show", Worker::typed("show", |x: i64| format!("<{x}>")))).unwrap();
//! d.connect("double", "show").unwrap();
//! let mut p = Plumber::new(d);
//! let out = p.collect("show").unwrap();
//! p.start([("double", Source::values(1..=3i64))]).unwrap();
//! p.run().unwrap();
//! assert!(p.wait(None).unwrap());
//! let got: Vec<Value> = out.take().into_iter().map(|r| r.unwrap()).collect();
//! assert_eq!(got, [Value::from("<2>"), Value::from("<4>"), Value::from("<6>")]);
//! assert_eq!(p.stats().nodes["double"].items_out, 3);
//! ```

mod connect;
mod run;
mod sink;
mod source;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::dagger::Dagger;
use crate::error::{Error, Item, Result};
use crate::numap::NuMap;
use crate::piper::adapters::{RunCtl, Stream};
use crate::stats::Stats;
use crate::sync::StopSignal;
use connect::connect;
use run::Run;
use sink::Sink;

pub use run::StopHandle;
pub use sink::Collector;
pub use source::Source;

/// The state of a [`Plumber`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlumberState {
    /// Built, never started.
    Idle,
    /// Connected, inputs bound; nothing is drained yet.
    Started,
    /// Outputs are being drained.
    Running,
    /// Draining is paused; parallel nodes go on until their buffers are full.
    Paused,
    /// Every output ended.
    Finished,
    /// Stopped by [`Plumber::stop`].
    Stopped,
}

impl fmt::Display for PlumberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, &mut *f)
    }
}

/// Runs a [`Dagger`]: see the module docs for the state machine.
pub struct Plumber {
    dagger: Dagger,
    state: PlumberState,
    sinks: BTreeMap<String, Sink>,
    run: Option<Run>,
    stop_signal: StopSignal,
    /// Keep a timeline of at most this many jobs per run.
    timeline: Option<usize>,
}

impl fmt::Debug for Plumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plumber({:?}, {:?})", self.state, self.dagger)
    }
}

impl Plumber {
    /// A Plumber for `dagger`.
    pub fn new(dagger: Dagger) -> Plumber {
        Plumber {
            dagger,
            state: PlumberState::Idle,
            sinks: BTreeMap::new(),
            run: None,
            stop_signal: StopSignal::new(),
            timeline: None,
        }
    }

    setters! {
        /// Records every job of the runs that start from now on (which
        /// worker ran which node's items, when), up to `capacity` jobs a run:
        /// see [`timeline`](Self::timeline). Off by default; when on, a job
        /// costs one more lock.
        ///
        /// ```
        /// use papy_core::{Dagger, NuMap, Piper, Plumber, Source, Worker};
        /// let pool = NuMap::builder().workers(2).stride(2).build().unwrap();
        /// let mut d = Dagger::new();
        /// d.add_piper(Piper::new("p", Worker::new("papy.ipasser").unwrap()).parallel(&pool)).unwrap();
        /// let mut p = Plumber::new(d).with_timeline(1000);
        /// let out = p.collect("p").unwrap();
        /// p.start([("p", Source::values(0..10i64))]).unwrap();
        /// p.run().unwrap();
        /// p.wait(None).unwrap();
        /// let spans = p.timeline().unwrap().spans();
        /// assert_eq!(spans.iter().map(|s| s.items).sum::<u64>(), 10);
        /// assert!(spans.iter().all(|s| &*s.node == "p"));
        /// ```
        with_timeline(capacity: usize) => timeline = Some(capacity);
        /// Uses `signal` as this Plumber's [`stop_signal`](Self::stop_signal)
        /// (for inputs made before the Plumber).
        with_stop_signal(signal: StopSignal) => stop_signal = signal;
    }

    /// A handle that stops the current run's inputs from any thread, at
    /// once: for an output callback that decides the run must end (a
    /// failure limit). `None` before a run starts. [`stop`](Self::stop)
    /// is still needed to drain and end the run.
    ///
    /// ```
    /// use papy_core::{Dagger, Piper, Plumber, Source, Worker};
    /// let mut d = Dagger::new();
    /// d.add_piper(Piper::new("p", Worker::new("papy.ipasser").unwrap())).unwrap();
    /// let mut p = Plumber::new(d);
    /// assert!(p.stop_handle().is_none());
    /// let out = p.collect("p").unwrap();
    /// p.start([("p", Source::values(0..1_000_000i64))]).unwrap();
    /// p.stop_handle().unwrap().request();
    /// p.run().unwrap();
    /// p.wait(None).unwrap();
    /// assert!(out.len() < 1_000_000);
    /// ```
    pub fn stop_handle(&self) -> Option<StopHandle> {
        let r = self.run.as_ref()?;
        Some(StopHandle {
            stop: r.ctl.stop.clone(),
            signal: self.stop_signal.clone(),
            numaps: r.numaps.clone(),
        })
    }

    /// The timeline of the current or last run, when
    /// [`with_timeline`](Self::with_timeline) asked for one.
    pub fn timeline(&self) -> Option<Arc<crate::stats::Timeline>> {
        self.run.as_ref()?.ctl.timeline.clone()
    }

    /// The signal [`stop`](Self::stop) raises (and `start` lowers): give it
    /// to inputs that would otherwise wait for data forever, such as
    /// [`func::read::follow`](crate::func::read::follow).
    ///
    /// ```
    /// use papy_core::{Dagger, Piper, Plumber, Worker};
    /// let mut d = Dagger::new();
    /// d.add_piper(Piper::new("p", Worker::new("papy.ipasser").unwrap())).unwrap();
    /// let p = Plumber::new(d);
    /// let signal = p.stop_signal();
    /// assert!(!signal.is_raised());
    /// ```
    pub fn stop_signal(&self) -> StopSignal {
        self.stop_signal.clone()
    }

    /// The pipeline.
    pub fn dagger(&self) -> &Dagger {
        &self.dagger
    }

    /// The pipeline, for changes between runs.
    ///
    /// # Errors
    /// [`Error::State`] while a run is active.
    pub fn dagger_mut(&mut self) -> Result<&mut Dagger> {
        match self.state() {
            PlumberState::Idle | PlumberState::Finished | PlumberState::Stopped => {
                Ok(&mut self.dagger)
            }
            s => Err(self.state_error("change the pipeline of", s)),
        }
    }

    fn state_error(&self, op: &'static str, s: PlumberState) -> Error {
        Error::State {
            op,
            what: "the Plumber".into(),
            state: s.to_string(),
        }
    }

    /// The current state (a running pipeline whose outputs all ended reports `Finished`).
    pub fn state(&mut self) -> PlumberState {
        if self.state == PlumberState::Running && self.run.as_ref().is_some_and(Run::finished) {
            self.finish();
        }
        self.state
    }

    fn finish(&mut self) {
        if let Some(r) = &mut self.run {
            r.join_drains();
            // Keep `finished()` true: every drain has reported.
            r.outputs = 0;
            *r.done.lock() = 0;
        }
        self.state = PlumberState::Finished;
        crate::hooks::run(crate::hooks::When::RunEnd);
    }

    fn output_check(&self, node: &str) -> Result<()> {
        if self.dagger.downstream(node)?.is_empty() {
            return Ok(());
        }
        let e = format!("`{node}` is not an output piper (it has downstream pipers)");
        Err(Error::Graph(e))
    }

    /// Collects the items of output node `node` (across runs, until taken).
    ///
    /// # Errors
    /// `node` is not an output piper.
    pub fn collect(&mut self, node: &str) -> Result<Collector> {
        self.output_check(node)?;
        if let Some(Sink::Collect(c)) = self.sinks.get(node) {
            return Ok(c.clone());
        }
        let c = Collector::default();
        self.sinks
            .insert(node.to_string(), Sink::Collect(c.clone()));
        Ok(c)
    }

    /// Calls `f` with every item of output node `node`, in the drain thread.
    ///
    /// # Errors
    /// `node` is not an output piper.
    pub fn on_output(&mut self, node: &str, f: impl FnMut(Item) + Send + 'static) -> Result<()> {
        self.output_check(node)?;
        self.sinks
            .insert(node.to_string(), Sink::Call(Arc::new(Mutex::new(f))));
        Ok(())
    }

    /// Binds an external input to each input piper, by name, and connects the
    /// pipeline. Nothing is pulled until [`run`](Self::run).
    ///
    /// # Errors
    /// Wrong state, unknown/missing/duplicate input names, or a NuMap refusing a task.
    pub fn start<S: Into<String>>(
        &mut self,
        inputs: impl IntoIterator<Item = (S, Source)>,
    ) -> Result<()> {
        let s = self.state();
        if !matches!(
            s,
            PlumberState::Idle | PlumberState::Finished | PlumberState::Stopped
        ) {
            return Err(self.state_error("start", s));
        }
        let sources = self.bind_inputs(inputs)?;
        if self.dagger.is_empty() {
            return Err(Error::Graph("the dagger has no pipers".into()));
        }
        if self.state == PlumberState::Finished {
            self.release_numaps();
        }
        self.stop_signal.lower();
        let ctl = Arc::new(RunCtl {
            timeline: self
                .timeline
                .map(|cap| Arc::new(crate::stats::Timeline::new(cap))),
            ..RunCtl::default()
        });
        let connected = connect(&self.dagger, sources, &ctl)?;
        // Two phases: every NuMap readable before any feeder pulls, so no
        // task reads a NuMap that has not started (a stream ends only when
        // its input ends or a stop is requested).
        let started = connected
            .numaps
            .iter()
            .try_for_each(NuMap::ready)
            .and_then(|()| {
                crate::chaos::point("plumber.start");
                connected.numaps.iter().try_for_each(NuMap::launch)
            });
        if let Err(e) = started {
            for m in &connected.numaps {
                m.stop();
                let _ = m.clear_tasks();
            }
            return Err(e);
        }
        let outputs = connected.outputs.len();
        self.run = Some(Run {
            ctl,
            counters: connected.counters,
            pending: connected.outputs,
            drains: Vec::new(),
            pause: Arc::default(),
            done: Arc::default(),
            outputs,
            start_time: SystemTime::now(),
            started: Instant::now(),
            ended: None,
            numaps: connected.numaps,
        });
        self.state = PlumberState::Started;
        Ok(())
    }

    /// The stream of each input piper, by name: every input piper given
    /// exactly once, and nothing else.
    fn bind_inputs<S: Into<String>>(
        &self,
        inputs: impl IntoIterator<Item = (S, Source)>,
    ) -> Result<BTreeMap<String, Stream>> {
        let wanted = self.input_names();
        let mut sources = BTreeMap::new();
        for (name, src) in inputs {
            let name = name.into();
            if !wanted.contains(&name) {
                return Err(Error::Inputs(format!(
                    "`{name}` is not an input piper (input pipers: {})",
                    wanted.join(", ")
                )));
            }
            if sources.insert(name.clone(), src.0).is_some() {
                return Err(Error::Inputs(format!("input `{name}` given twice")));
            }
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|n| !sources.contains_key(*n))
            .map(|n| format!("`{n}`"))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Inputs(format!(
                "no input for {}",
                missing.join(", ")
            )));
        }
        Ok(sources)
    }

    /// The names of the input pipers, in the order of [`Dagger::inputs`].
    fn input_names(&self) -> Vec<String> {
        let inputs = self.dagger.inputs();
        inputs.iter().map(|p| p.name().to_string()).collect()
    }

    /// Binds inputs positionally, in the order of [`Dagger::inputs`].
    ///
    /// # Errors
    /// As [`Plumber::start`], and a count mismatch.
    pub fn start_positional(&mut self, inputs: Vec<Source>) -> Result<()> {
        let names = self.input_names();
        if names.len() != inputs.len() {
            return Err(Error::Inputs(format!(
                "{} input(s) given for {} input piper(s) ({})",
                inputs.len(),
                names.len(),
                names.join(", ")
            )));
        }
        self.start(names.into_iter().zip(inputs))
    }

    fn spawn_drains(&mut self) -> Result<()> {
        match &mut self.run {
            Some(r) => r.spawn_drains(&self.sinks),
            None => Ok(()),
        }
    }

    /// Starts draining every output (or resumes after [`pause`](Self::pause)).
    ///
    /// # Errors
    /// [`Error::State`] unless started or paused.
    pub fn run(&mut self) -> Result<()> {
        match self.state() {
            PlumberState::Started => {
                self.spawn_drains()?;
                self.state = PlumberState::Running;
                Ok(())
            }
            PlumberState::Paused => self.resume(),
            s => Err(self.state_error("run", s)),
        }
    }

    /// Pauses draining; parallel nodes continue until their buffers are full.
    /// A finished run has nothing to pause: `pause` then does nothing (so
    /// PaPy's `start, run, wait, pause, stop` sequence works).
    ///
    /// # Errors
    /// [`Error::State`] unless running or finished.
    pub fn pause(&mut self) -> Result<()> {
        self.set_paused("pause", PlumberState::Running, PlumberState::Paused)
    }

    /// Resumes after a pause (does nothing on a finished run).
    ///
    /// # Errors
    /// [`Error::State`] unless paused or finished.
    pub fn resume(&mut self) -> Result<()> {
        self.set_paused("resume", PlumberState::Paused, PlumberState::Running)
    }

    /// `op` (pause or resume): from state `from` to `to`; nothing on a
    /// finished run.
    fn set_paused(&mut self, op: &'static str, from: PlumberState, to: PlumberState) -> Result<()> {
        match self.state() {
            PlumberState::Finished => Ok(()),
            s if s == from => {
                if let Some(r) = &self.run {
                    r.pause.set(to == PlumberState::Paused);
                }
                self.state = to;
                Ok(())
            }
            s => Err(self.state_error(op, s)),
        }
    }

    /// Waits until every output has ended, or `timeout`. Returns whether the
    /// run finished.
    ///
    /// # Errors
    /// [`Error::State`] unless running, paused or finished; the failure of a
    /// `debug` node.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let s = self.state();
        if !matches!(
            s,
            PlumberState::Running | PlumberState::Paused | PlumberState::Finished
        ) {
            return Err(self.state_error("wait for", s));
        }
        if s == PlumberState::Running {
            if let Some(r) = &self.run {
                r.wait_drains(timeout);
            }
        }
        let finished = self.state() == PlumberState::Finished;
        if let Some(e) = self.run.as_ref().and_then(|r| r.ctl.take_failure()) {
            return Err(e);
        }
        Ok(finished)
    }

    /// Stops: every input ends at its next stride boundary, everything
    /// already taken from the inputs flows to the outputs, and the drains and
    /// NuMap feeders finish. The pipeline can then be started again.
    ///
    /// # Errors
    /// [`Error::State`] when idle or already stopped; the failure of a `debug` node.
    pub fn stop(&mut self) -> Result<()> {
        let s = self.state();
        if matches!(s, PlumberState::Idle | PlumberState::Stopped) {
            return Err(self.state_error("stop", s));
        }
        self.stop_signal.raise();
        if let Some(r) = &self.run {
            r.ctl.stop.store(true, Ordering::Release);
        }
        if s == PlumberState::Started {
            self.spawn_drains()?;
        }
        if let Some(r) = &mut self.run {
            r.pause.set(false);
            r.join_drains();
        }
        self.state = PlumberState::Stopped;
        self.release_numaps();
        crate::hooks::run(crate::hooks::When::RunEnd);
        let failure = self.run.as_ref().and_then(|r| r.ctl.take_failure());
        failure.map_or(Ok(()), Err)
    }

    fn release_numaps(&mut self) {
        if let Some(r) = &self.run {
            r.release_numaps();
        }
    }

    /// Statistics of the current or last run.
    pub fn stats(&self) -> Stats {
        self.run.as_ref().map(Run::stats).unwrap_or_default()
    }
}

impl Drop for Plumber {
    fn drop(&mut self) {
        if matches!(
            self.state,
            PlumberState::Started
                | PlumberState::Running
                | PlumberState::Paused
                | PlumberState::Finished
        ) {
            let _ = self.stop();
        }
    }
}
