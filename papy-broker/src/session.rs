//! One connection's worth of serving, in three threads so that a worker far
//! from its broker does not wait a round trip between entries:
//!
//! - the *reader* (its own connection) reads entries ahead, as many held
//!   at a time as cover the round trips an entry costs (`window.rs`, at
//!   most [`ServeOptions::read_ahead`]), claims their jobs together in one
//!   round trip, and every check interval looks at the run's settings and
//!   takes over one entry a dead worker left (`XAUTOCLAIM`);
//! - the *runner* (the calling thread, which owns the [`Runner`]) runs
//!   the admitted entries one at a time, in the order they were read;
//! - the *writer* (its own connection) appends the results and
//!   acknowledges the entries, all those finished meanwhile in one
//!   transaction.
//!
//! An entry is held from the moment it is read until its result is
//! acknowledged: the heartbeat keeps it from being reclaimed meanwhile, and
//! if the worker dies it stays pending, to be taken over after
//! `claim_after`, as an entry being run always was (at least once).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use papy_core::protocol::{Frame, WireResults, MAX_FRAME};
use papy_core::{ErrorKind, Item, ItemError};

use crate::admit::{admit_all, give_up, Admitted};
use crate::codec::encode;
use crate::error::Result;
use crate::heartbeat::Heartbeat;
use crate::options::{check_every, check_key, default_settings, host_gone, ServeOptions};
use crate::queue::{Connect, Done, Entry, Queue, RunSettings};
use crate::relay::Runner;
use crate::seal::{Role, Sealer};
use crate::window::Window;

/// How long one read waits for new entries.
const BLOCK: Duration = Duration::from_millis(200);

/// The checks (settings, take-over: two round trips) come at most once
/// every this many times their own duration: far from Redis they would
/// otherwise take a large share of the reader's time (at 50 ms of round
/// trip, 100 ms of every 250).
const CHECK_SHARE: u32 = 8;

/// What the threads of a session share.
struct Shared<'a> {
    opts: &'a ServeOptions,
    sealer: &'a Sealer,
    consumer: &'a str,
    heartbeat: Heartbeat,
    window: Window,
    /// Set by whichever thread ends the session.
    stop: AtomicBool,
    /// Counts the changes of the run's settings the reader has seen.
    settings_changed: AtomicU64,
}

/// An entry run: its sealed result, or why it is given up on.
struct Ran {
    entry: Entry,
    job: u64,
    outcome: std::result::Result<Vec<u8>, String>,
    busy: Duration,
    /// When it was read.
    read: Instant,
}

/// Serves on connections from `connect` until the run is done (with
/// `until_done`) or the host is gone (`Ok`), or a call fails (`Err`: the
/// caller reconnects).
pub(crate) fn session(
    connect: &Arc<dyn Connect>,
    opts: &ServeOptions,
    sealer: &Sealer,
    consumer: &str,
    runner: &mut Runner,
) -> Result<()> {
    let (reads, writes) = (connect.connect()?, connect.connect()?);
    let sh = Shared {
        opts,
        sealer,
        consumer,
        heartbeat: Heartbeat::start(connect.clone(), consumer, crate::DEFAULT_CLAIM_AFTER / 4),
        window: Window::new(opts.read_ahead),
        stop: AtomicBool::new(false),
        settings_changed: AtomicU64::new(0),
    };
    let (to_run, admitted) = crossbeam_channel::unbounded::<(Entry, Admitted, Instant)>();
    let (to_write, ran) = crossbeam_channel::unbounded::<Ran>();
    let sh = &sh;
    std::thread::scope(|s| {
        let reader = s.spawn(move || finish(sh, read(sh, reads, &to_run)));
        let writer = s.spawn(move || finish(sh, write(sh, writes, &ran)));
        // Until either thread stops: what is admitted and not run yet
        // stays pending, reclaimed after `claim_after` (as when the worker
        // dies).
        for (entry, task, read) in &admitted {
            if sh.stop.load(Ordering::Acquire) {
                break;
            }
            // Read ahead, then stalled past `claim_after`: maybe another
            // worker's now, run there.
            if !sh.heartbeat.owned(&entry.id) {
                tracing::debug!("entry {}: taken over meanwhile; not run", entry.id);
                sh.heartbeat.release(&entry.id);
                sh.window.release(1, entry.payload.len(), &[]);
                continue;
            }
            if to_write.send(run(sh, runner, entry, task, read)).is_err() {
                break;
            }
        }
        // Ends the writer once it has written what was run.
        drop(to_write);
        let read = reader.join().unwrap_or(Ok(()));
        let wrote = writer.join().unwrap_or(Ok(()));
        drop(admitted);
        read.and(wrote)
    })
}

/// A thread's end: the others stop too.
fn finish(sh: &Shared<'_>, r: Result<()>) -> Result<()> {
    sh.stop.store(true, Ordering::Release);
    sh.window.wake();
    r
}

/// The reader thread: reads and admits entries while there is room, and
/// looks at the run every check interval; `Ok` when the session is over.
fn read(
    sh: &Shared<'_>,
    mut q: Box<dyn Queue>,
    to_run: &Sender<(Entry, Admitted, Instant)>,
) -> Result<()> {
    let q = &mut *q;
    let mut settings = default_settings();
    let (mut last_check, mut check_took): (Option<Instant>, Duration) = (None, Duration::ZERO);
    while !sh.stop.load(Ordering::Acquire) {
        let every = check_every(&settings).max(CHECK_SHARE * check_took);
        let due = last_check.is_none_or(|t| t.elapsed() >= every);
        let mut taken = Vec::new();
        let asked = Instant::now();
        if due {
            last_check = Some(Instant::now());
            if host_gone(sh.opts) {
                return Ok(());
            }
            if let Some(s) = q.settings()? {
                check_key(&s, sh.sealer)?;
                if s.done && sh.opts.until_done {
                    return Ok(());
                }
                if s.claim_after != settings.claim_after {
                    sh.heartbeat.every(s.claim_after / 4);
                }
                if s != settings {
                    // The writer reads them again (the lease its writes keep).
                    sh.settings_changed.fetch_add(1, Ordering::AcqRel);
                }
                sh.window.read_ahead(s.max_attempts > 1);
                settings = s;
            }
            // One at a time: an entry taken over is held (and heartbeaten)
            // from the moment it is claimed until it is acknowledged.
            if sh.window.room(Duration::ZERO) > 0 {
                taken = q.reclaim(sh.consumer, settings.claim_after, 1)?;
            }
            check_took = asked.elapsed();
        }
        if taken.is_empty() {
            let room = sh.window.room(check_every(&settings));
            if room == 0 {
                continue;
            }
            taken = q.read_tasks(sh.consumer, room, BLOCK)?;
        }
        if !admit(sh, q, &settings, taken, asked, to_run)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Holds `taken` (asked for at `asked`), admits it and passes what is to
/// run to the runner; `false` when the runner is gone.
fn admit(
    sh: &Shared<'_>,
    q: &mut dyn Queue,
    settings: &RunSettings,
    taken: Vec<Entry>,
    asked: Instant,
    to_run: &Sender<(Entry, Admitted, Instant)>,
) -> Result<bool> {
    let read = Instant::now();
    let (n, size) = (taken.len(), taken.iter().map(|e| e.payload.len()).sum());
    sh.window.take(n, size);
    let admitted = admit_all(q, sh.sealer, taken, settings.max_attempts)?;
    // Those not to run were settled or left pending: no longer held.
    let kept: usize = admitted.iter().map(|(e, _)| e.payload.len()).sum();
    sh.window.release(n - admitted.len(), size - kept, &[]);
    for (e, task) in admitted {
        sh.heartbeat.hold(&e.id, asked);
        if to_run.send((e, task, read)).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs one admitted entry: its sealed result, or why it is given up on.
fn run(sh: &Shared<'_>, runner: &mut Runner, entry: Entry, task: Admitted, read: Instant) -> Ran {
    // The time spent on the entry here, reported with its result: the
    // host's adaptive batching measures items by it, not by the round trip.
    let started = Instant::now();
    let n = task.indices.len();
    let items = runner.run(task.chain, &task.node, &task.indices, task.inboxes);
    let busy = started.elapsed();
    // A result the host could not read (too big, or not encodable) becomes
    // one error per item; it is never mistaken for a lost connection.
    let outcome = encode_result(task.id, &items).or_else(|why| {
        tracing::warn!("entry {}: {why}", entry.id);
        let items: Vec<Item> = vec![Err(ItemError::new(ErrorKind::Conversion, why)); n];
        encode_result(task.id, &items)
    });
    let outcome = outcome.map(|b| sh.sealer.seal(Role::Result, &entry.session, b));
    Ran {
        entry,
        job: task.id,
        outcome,
        busy,
        read,
    }
}

/// A `Result` frame's bytes, if the host can read them (at most `MAX_FRAME`).
fn encode_result(id: u64, items: &[Item]) -> std::result::Result<Vec<u8>, String> {
    let results = WireResults::from_items(items);
    let bytes = encode(&Frame::Result { id, results }).map_err(|e| e.to_string())?;
    if bytes.len() > MAX_FRAME {
        return Err(format!(
            "the batch's result is {} bytes, more than a frame may hold ({MAX_FRAME})",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The writer thread: completes what was run, everything finished since
/// the last write in one transaction; `Ok` once the runner is done.
fn write(sh: &Shared<'_>, mut q: Box<dyn Queue>, ran: &Receiver<Ran>) -> Result<()> {
    let q = &mut *q;
    let mut seen = 0;
    while let Ok(first) = ran.recv() {
        // The run's settings hold the lease every write keeps.
        let changed = sh.settings_changed.load(Ordering::Acquire);
        if changed != seen {
            seen = changed;
            q.settings()?;
        }
        let batch: Vec<Ran> = std::iter::once(first).chain(ran.try_iter()).collect();
        let done: Vec<Done<'_>> = batch
            .iter()
            .filter_map(|r| {
                let result = r.outcome.as_deref().ok()?;
                Some(Done {
                    entry: &r.entry,
                    result,
                    busy: r.busy,
                })
            })
            .collect();
        q.complete_all(&done)?;
        for r in &batch {
            if let Err(why) = &r.outcome {
                give_up(q, sh.sealer, &r.entry, Some(r.job), why)?;
            }
            sh.heartbeat.release(&r.entry.id);
        }
        let bytes = batch.iter().map(|r| r.entry.payload.len()).sum();
        let measured: Vec<(Duration, Duration)> =
            batch.iter().map(|r| (r.read.elapsed(), r.busy)).collect();
        sh.window.release(batch.len(), bytes, &measured);
    }
    Ok(())
}
