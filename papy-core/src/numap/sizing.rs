//! How large a feeder's visits and jobs are, and how much buffer room a
//! task gets: the fixed stride and its share per worker, or, with adaptive
//! batching, what each task's pace asks for within byte bounds.

use std::time::Duration;

use crate::job::{Pace, MAX_CHUNK};
use crate::pool::{Inbox, Pool};

/// Adaptive batching (no fixed stride): each task's job size follows its
/// pace (see `job/pace.rs`); a visit is one job per worker.
pub(crate) struct Adaptive {
    /// How long a job should take in this pool.
    pub(crate) target: Duration,
    pub(crate) workers: usize,
    /// The buffer the user fixed; `None`: [`room`] per task.
    pub(crate) buffer: Option<usize>,
}

/// Most bytes of input in one adaptive job (estimated, see [`approx_bytes`]):
/// large items get smaller jobs, whatever their pace.
const JOB_BYTES: usize = 8 << 20;

/// Most bytes of input a task's adaptive buffer room holds beyond the two
/// (four) visits it always has: cheap large items cannot fill memory.
const ROOM_BYTES: usize = 64 << 20;

/// Roughly how many bytes an inbox holds: its values' own sizes, with a
/// list or map estimated from its first entry (looked at 4 levels deep at
/// most), so the cost does not grow with the item.
pub(crate) fn approx_bytes(inbox: &Inbox) -> usize {
    fn value(v: &crate::value::Value, depth: u32) -> usize {
        use crate::value::Value;
        let own = std::mem::size_of::<Value>();
        let nested = |n: usize, first: Option<usize>| n.saturating_mul(first.unwrap_or(own));
        own.saturating_add(match v {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(l) if depth > 0 => nested(l.len(), l.first().map(|x| value(x, depth - 1))),
            Value::Map(m) if depth > 0 => nested(
                m.len(),
                m.iter()
                    .next()
                    .map(|(k, x)| value(k, depth - 1).saturating_add(value(x, depth - 1))),
            ),
            Value::List(l) => l.len().saturating_mul(own),
            Value::Map(m) => m.len().saturating_mul(2 * own),
            _ => 0,
        })
    }
    inbox
        .as_slice()
        .iter()
        .map(|item| match item {
            Ok(v) => value(v, 4),
            Err(_) => 64,
        })
        .fold(0usize, usize::saturating_add)
}

/// Visits of buffer room a task with small jobs may have (see [`room`]).
const DEEP_VISITS: usize = 8;

/// Buffer room of a task whose visits hold `visit` items, `workers` jobs, in
/// a pool of `base` [`Pool::room_visits`]: [`DEEP_VISITS`] visits, but never more items than `base` visits
/// of the largest jobs ([`MAX_CHUNK`] items each), nor fewer than `base`
/// visits. Small jobs (slow items) thus get a deeper buffer,
/// so that a worker finishing a job finds the next one queued even when
/// the reader or the feeder is late to run (a thread woken from sleep can
/// take tens of microseconds to run; with two visits of 500 us items, a
/// run of `cargo bench --bench defaults` took 1.48x the best fixed stride),
/// while the buffer never holds more items than the fastest items had.
fn room(base: usize, visit: usize, workers: usize) -> usize {
    let most = base * MAX_CHUNK * workers.max(1);
    (DEEP_VISITS * visit).min(most).max(base * visit)
}

/// Items per visit and per job with a fixed stride: jobs of a stride's
/// share per worker, so that one task with the default stride (= workers)
/// keeps every worker busy, as in PaPy (the share comes from the stride,
/// not from a batch, so batches freed a few items at a time do not shrink
/// the jobs further). For workers that pay a round trip per batch
/// (`whole_strides`), a buffer that holds a stride per worker keeps them
/// busy with whole strides, in fewer and larger jobs.
pub(crate) fn fixed(stride: usize, pool: &dyn Pool, buffer: usize) -> (usize, usize) {
    let workers = pool.size().max(1);
    let chunk = if pool.whole_strides() && buffer >= stride * workers {
        stride
    } else {
        stride.div_ceil(workers)
    };
    (stride, chunk.max(1))
}

/// Items per visit and per job with adaptive batching, from the task's
/// `pace`, and the buffer room the task asks for (`None` when the user
/// fixed the buffer, which must then hold two visits).
pub(crate) fn adaptive(
    a: &Adaptive,
    pace: &Pace,
    pool: &dyn Pool,
) -> (usize, usize, Option<usize>) {
    let most = a.buffer.map_or(MAX_CHUNK, |b| (b / (2 * a.workers)).max(1));
    let chunk = pace.chunk(a.target, most.min(pace.items_within(JOB_BYTES)));
    let visit = chunk * a.workers;
    let room = a.buffer.is_none().then(|| {
        let base = pool.room_visits().max(1);
        room(base, visit, a.workers)
            .min(pace.items_within(ROOM_BYTES))
            .max(base * visit)
    });
    (visit, chunk, room)
}

#[cfg(test)]
mod tests;
