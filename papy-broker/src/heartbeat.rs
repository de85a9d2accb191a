//! Worker heartbeats: while a worker runs a batch, a thread of its own
//! resets the batch's idle time in the consumer group (`XCLAIM ... JUSTID`,
//! which does not count a delivery, and only while the worker still owns the
//! entry), so a long batch of a live worker is never reclaimed; a dead worker
//! stops beating and its batches go idle.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::queue::{Connect, Queue};

struct State {
    held: Vec<String>,
    every: Duration,
    stop: bool,
}

/// A heartbeat thread for one consumer.
pub(crate) struct Heartbeat {
    state: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating for `consumer` every `every` (with its own connection).
    pub(crate) fn start(connect: Arc<dyn Connect>, consumer: &str, every: Duration) -> Heartbeat {
        let state = Arc::new((
            Mutex::new(State {
                held: Vec::new(),
                every,
                stop: false,
            }),
            Condvar::new(),
        ));
        let (st, consumer) = (state.clone(), consumer.to_string());
        let thread = std::thread::Builder::new()
            .name("papy-heartbeat".into())
            .spawn(move || beat(&st, &*connect, &consumer))
            .ok();
        Heartbeat { state, thread }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (m, _) = &*self.state;
        f(&mut m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Beats for `id` from now on.
    pub(crate) fn hold(&self, id: &str) {
        self.with(|s| s.held.push(id.to_string()));
    }

    /// Stops beating for `id`.
    pub(crate) fn release(&self, id: &str) {
        self.with(|s| s.held.retain(|h| h != id));
    }

    /// Changes the period.
    pub(crate) fn every(&self, every: Duration) {
        self.with(|s| s.every = every);
        self.state.1.notify_all();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.with(|s| s.stop = true);
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn beat(state: &(Mutex<State>, Condvar), connect: &dyn Connect, consumer: &str) {
    let (m, cv) = state;
    let mut queue: Option<Box<dyn Queue>> = None;
    let mut guard = m.lock().unwrap_or_else(PoisonError::into_inner);
    let mut last = Instant::now();
    loop {
        let wait = (last + guard.every).saturating_duration_since(Instant::now());
        guard = cv
            .wait_timeout(guard, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if guard.stop {
            return;
        }
        if Instant::now() < last + guard.every {
            continue;
        }
        last = Instant::now();
        if guard.held.is_empty() {
            continue;
        }
        let held = guard.held.clone();
        drop(guard);
        if queue.is_none() {
            match connect.connect() {
                Ok(q) => queue = Some(q),
                Err(e) => tracing::warn!("heartbeat to {}: {e}", connect.describe()),
            }
        }
        if let Some(q) = queue.as_mut() {
            if let Err(e) = q.touch(consumer, &held) {
                tracing::warn!("heartbeat: {e}");
                queue = None;
            }
        }
        guard = m.lock().unwrap_or_else(PoisonError::into_inner);
    }
}
