//! Worker heartbeats: while a worker holds entries (the one it runs and
//! those it read ahead), a thread of its own resets their idle time in the
//! consumer group (`XCLAIM ... JUSTID`, which does not count a delivery,
//! and only while the worker still owns the entry), so a long batch of a
//! live worker is never reclaimed; a dead worker stops beating and its
//! batches go idle.
//!
//! A worker that was stalled (stopped, swapped out, cut off) past
//! `claim_after` may have lost entries it read ahead to another worker.
//! Before it runs one, it asks [`Heartbeat::owned`]: an entry touched (or
//! read) less than half of `claim_after` ago cannot have been taken over;
//! for any other, a beat is made at once, and the entries it reports lost
//! are not run.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use papy_core::sync::Monitor;

use crate::queue::{Connect, Queue};

/// An entry held.
struct Held {
    id: String,
    /// When its idle time was last reset at the latest: its read, or a
    /// beat that found it still held (the time the beat was sent).
    fresh: Instant,
    /// A beat found it held by another (or acknowledged).
    lost: bool,
}

#[derive(Default)]
struct State {
    held: Vec<Held>,
    /// `claim_after / 4`.
    every: Duration,
    stop: bool,
    /// A beat is wanted now.
    now: bool,
    /// Beats made (tried).
    beats: u64,
}

/// A heartbeat thread for one consumer.
pub(crate) struct Heartbeat {
    state: Arc<Monitor<State>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating for `consumer` every `every` (with its own connection).
    pub(crate) fn start(connect: Arc<dyn Connect>, consumer: &str, every: Duration) -> Heartbeat {
        let state = Arc::new(Monitor::<State>::default());
        state.lock().every = every;
        let (st, consumer) = (state.clone(), consumer.to_string());
        let thread = std::thread::Builder::new()
            .name("papy-heartbeat".into())
            .spawn(move || beat(&st, &*connect, &consumer))
            .ok();
        Heartbeat { state, thread }
    }

    /// Beats for `id` from now on; `read`: when it was asked for (its idle
    /// time was reset then or later).
    pub(crate) fn hold(&self, id: &str, read: Instant) {
        self.state.lock().held.push(Held {
            id: id.to_string(),
            fresh: read,
            lost: false,
        });
    }

    /// Stops beating for `id`.
    pub(crate) fn release(&self, id: &str) {
        self.state.lock().held.retain(|h| h.id != id);
    }

    /// Changes the period.
    pub(crate) fn every(&self, every: Duration) {
        self.state.lock().every = every;
        self.state.notify_all();
    }

    /// Whether this worker still holds `id` (held with
    /// [`hold`](Self::hold)): not when a beat found it taken over. An
    /// entry not reset for half of `claim_after` is beaten for first (a
    /// beat under way may have been sent before a stall: two at most,
    /// each waited for up to `claim_after`; without an answer the entry
    /// is taken as held: at least once).
    pub(crate) fn owned(&self, id: &str) -> bool {
        let mut s = self.state.lock();
        for _ in 0..2 {
            let Some(h) = s.held.iter().find(|h| h.id == id) else {
                return true;
            };
            if h.lost || h.fresh.elapsed() < 2 * s.every || self.thread.is_none() {
                return !h.lost;
            }
            let (beats, wait) = (s.beats, 4 * s.every);
            s.now = true;
            self.state.notify_all();
            s = self
                .state
                .wait_timeout_while(s, wait, |s| s.beats == beats && !s.stop);
            // Timed out, or stopping.
            if s.beats == beats || s.stop {
                break;
            }
        }
        !s.held.iter().any(|h| h.id == id && h.lost)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.state.lock().stop = true;
        self.state.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn beat(state: &Monitor<State>, connect: &dyn Connect, consumer: &str) {
    let mut queue: Option<Box<dyn Queue>> = None;
    let mut guard = state.lock();
    let mut last = Instant::now();
    loop {
        let wait = (last + guard.every).saturating_duration_since(Instant::now());
        guard = state.wait_timeout(guard, wait);
        if guard.stop {
            return;
        }
        if Instant::now() < last + guard.every && !guard.now {
            continue;
        }
        guard.now = false;
        last = Instant::now();
        let held: Vec<String> = guard.held.iter().map(|h| h.id.clone()).collect();
        drop(guard);
        let lost = touch(&mut queue, connect, consumer, &held);
        guard = state.lock();
        if let Some(lost) = lost {
            for h in guard.held.iter_mut().filter(|h| held.contains(&h.id)) {
                h.lost |= lost.contains(&h.id);
                h.fresh = h.fresh.max(last);
            }
        }
        guard.beats += 1;
        state.notify_all();
    }
}

/// One beat for `held`: those lost, or `None` when it failed (the
/// connection is opened again at the next).
fn touch(
    queue: &mut Option<Box<dyn Queue>>,
    connect: &dyn Connect,
    consumer: &str,
    held: &[String],
) -> Option<Vec<String>> {
    if held.is_empty() {
        return Some(Vec::new());
    }
    if queue.is_none() {
        let warn = |e| tracing::warn!("heartbeat to {}: {e}", connect.describe());
        *queue = connect.connect().map_err(warn).ok();
    }
    let r = queue.as_mut()?.touch(consumer, held);
    r.map_err(|e| {
        tracing::warn!("heartbeat: {e}");
        *queue = None;
    })
    .ok()
}
