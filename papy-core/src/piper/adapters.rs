//! The iterator adapters a node is built from: input gate, join (zip),
//! consume batches, linear evaluation, spawn distribution and merge,
//! produce, fan-out (tee) and output observation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Item, ItemError};
use crate::numap::TaskResults;
use crate::pool::Inbox;
use crate::stats::NodeCounters;
use crate::value::Value;
use crate::worker::Worker;

/// A stream of items.
pub(crate) type Stream = Box<dyn Iterator<Item = Item> + Send>;
/// A stream of inboxes.
pub(crate) type InboxStream = Box<dyn Iterator<Item = Inbox> + Send>;

use crate::sync::lock;

/// Ends an external input at a stride boundary once `stop` is set.
pub(crate) struct Gate {
    pub(crate) src: Stream,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stride: u64,
    pub(crate) count: u64,
}

impl Iterator for Gate {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if self.count % self.stride == 0 && self.stop.load(Ordering::Acquire) {
            return None;
        }
        let x = self.src.next()?;
        self.count += 1;
        Some(x)
    }
}

/// Joins the inputs of a node: one inbox per step, one entry per input.
/// When inputs have unequal lengths, every unmatched item becomes an
/// `Unmatched` error item (nothing is dropped silently).
pub(crate) struct Zip {
    pub(crate) inputs: Vec<Stream>,
    pub(crate) ended: Vec<bool>,
    pub(crate) node: String,
    pub(crate) index: u64,
    pub(crate) counters: Arc<NodeCounters>,
}

impl Zip {
    pub(crate) fn new(inputs: Vec<Stream>, node: String, counters: Arc<NodeCounters>) -> Zip {
        let n = inputs.len();
        Zip {
            inputs,
            ended: vec![false; n],
            node,
            index: 0,
            counters,
        }
    }
}

impl Iterator for Zip {
    type Item = Inbox;
    fn next(&mut self) -> Option<Inbox> {
        let inbox = if let [only] = self.inputs.as_mut_slice() {
            Inbox::One(only.next()?)
        } else {
            let mut items = Vec::with_capacity(self.inputs.len());
            let mut missing = Vec::new();
            for (k, s) in self.inputs.iter_mut().enumerate() {
                let next = if self.ended[k] { None } else { s.next() };
                match next {
                    Some(x) => items.push(x),
                    None => {
                        self.ended[k] = true;
                        missing.push(k);
                    }
                }
            }
            if items.is_empty() {
                return None;
            }
            if missing.is_empty() {
                Inbox::Many(items.into())
            } else {
                let msg = format!(
                    "join inputs have unequal lengths: input(s) {missing:?} ended before item #{} of the others",
                    self.index
                );
                Inbox::One(Err(
                    ItemError::new(ErrorKind::Unmatched, msg).at(self.node.clone(), self.index)
                ))
            }
        };
        self.index += 1;
        self.counters.add_in(1);
        Some(inbox)
    }

    /// At least the items every input has in hand (see `weave::Pull`).
    fn size_hint(&self) -> (usize, Option<usize>) {
        let ready = self
            .inputs
            .iter()
            .zip(&self.ended)
            .map(|(s, &ended)| if ended { 0 } else { s.size_hint().0 })
            .min()
            .unwrap_or(0);
        (ready, None)
    }
}

/// Batches `n` consecutive inboxes: each input pipe becomes a list of up
/// to `n` values. An error anywhere in the batch replaces the batch.
pub(crate) struct Consume {
    pub(crate) src: InboxStream,
    pub(crate) n: usize,
}

impl Iterator for Consume {
    type Item = Inbox;
    fn next(&mut self) -> Option<Inbox> {
        let mut cols: Vec<Vec<Value>> = Vec::new();
        let mut error: Option<ItemError> = None;
        let mut got = 0;
        while got < self.n {
            let Some(inbox) = self.src.next() else { break };
            got += 1;
            let items = inbox.as_slice();
            if cols.is_empty() {
                cols = vec![Vec::with_capacity(self.n.min(4096)); items.len()];
            }
            for (k, it) in items.iter().enumerate() {
                match it {
                    Ok(v) if k < cols.len() => cols[k].push(v.clone()),
                    Err(e) if error.is_none() => error = Some(e.clone()),
                    _ => {}
                }
            }
        }
        if got == 0 {
            return None;
        }
        if let Some(e) = error {
            return Some(Inbox::One(Err(e)));
        }
        let mut cols: Vec<Item> = cols
            .into_iter()
            .map(|c| Ok(Value::List(Arc::new(c))))
            .collect();
        Some(if cols.len() == 1 {
            Inbox::One(cols.remove(0))
        } else {
            Inbox::Many(cols.into())
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.src.size_hint().0 / self.n.max(1), None)
    }
}

/// Lazy evaluation in the pulling thread.
pub(crate) struct Linear {
    pub(crate) src: InboxStream,
    pub(crate) worker: Worker,
    pub(crate) node: String,
    pub(crate) index: u64,
    pub(crate) counters: Arc<NodeCounters>,
}

impl Iterator for Linear {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        let inbox = self.src.next()?;
        let t = Instant::now();
        let r = self.worker.eval(inbox.as_slice(), &self.node, self.index);
        self.counters.add_busy(t.elapsed());
        self.index += 1;
        Some(r)
    }
}

struct DistState {
    src: InboxStream,
    queues: Vec<VecDeque<Inbox>>,
    next_chunk: u64,
    done: bool,
}

/// Splits one inbox stream into `k` streams taking `chunk`-sized chunks in
/// turn (chunk m goes to stream m mod k).
pub(crate) fn distribute(src: InboxStream, k: usize, chunk: usize) -> Vec<InboxStream> {
    let state = Arc::new(Mutex::new(DistState {
        src,
        queues: (0..k).map(|_| VecDeque::new()).collect(),
        next_chunk: 0,
        done: false,
    }));
    (0..k)
        .map(|j| {
            let st = state.clone();
            Box::new(std::iter::from_fn(move || {
                let mut s = lock(&st);
                loop {
                    if let Some(x) = s.queues[j].pop_front() {
                        return Some(x);
                    }
                    if s.done {
                        return None;
                    }
                    let owner = (s.next_chunk % k as u64) as usize;
                    s.next_chunk += 1;
                    for _ in 0..chunk {
                        match s.src.next() {
                            Some(x) => s.queues[owner].push_back(x),
                            None => {
                                s.done = true;
                                break;
                            }
                        }
                    }
                }
            })) as InboxStream
        })
        .collect()
}

/// Merges the results of `k` spawned tasks back: `chunk` items from each in turn.
pub(crate) struct Merge {
    pub(crate) readers: Vec<TaskResults>,
    pub(crate) chunk: usize,
    pub(crate) current: usize,
    pub(crate) taken: usize,
}

impl Iterator for Merge {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if self.taken == self.chunk {
            self.current = (self.current + 1) % self.readers.len();
            self.taken = 0;
        }
        let x = self.readers[self.current].next()?;
        self.taken += 1;
        Some(x)
    }
}

/// Splits each result into `m` items.
pub(crate) struct Produce {
    pub(crate) src: Stream,
    pub(crate) m: usize,
    /// Emit each whole result `m` times instead of splitting it.
    pub(crate) repeat: bool,
    pub(crate) pending: VecDeque<Item>,
    pub(crate) node: String,
    pub(crate) index: u64,
}

impl Iterator for Produce {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if let Some(x) = self.pending.pop_front() {
            return Some(x);
        }
        let item = self.src.next()?;
        match item {
            Ok(v) if self.repeat => self.pending.extend((0..self.m).map(|_| Ok(v.clone()))),
            Ok(Value::List(l)) if l.len() == self.m => {
                self.pending.extend(l.iter().cloned().map(Ok))
            }
            Ok(other) => {
                let what = match &other {
                    Value::List(l) => format!("a list of {} values", l.len()),
                    v => format!("a {}", v.kind()),
                };
                let e = ItemError::new(
                    ErrorKind::Produce,
                    format!(
                        "produce = {} needs a list of {} values per result, got {what}",
                        self.m, self.m
                    ),
                )
                .at(self.node.clone(), self.index);
                self.pending.extend((0..self.m).map(|_| Err(e.clone())));
            }
            Err(e) => self.pending.extend((0..self.m).map(|_| Err(e.clone()))),
        }
        self.index += 1;
        self.pending.pop_front()
    }
}

struct TeeState {
    src: Stream,
    queues: Vec<VecDeque<Item>>,
    alive: Vec<bool>,
    done: bool,
}

/// Fans one stream out to `k` readers; each reader buffers what the
/// others pulled ahead of it, so readers never wait for each other's turn.
pub(crate) fn tee(src: Stream, k: usize) -> Vec<Stream> {
    if k == 1 {
        return vec![src];
    }
    let state = Arc::new(Mutex::new(TeeState {
        src,
        queues: (0..k).map(|_| VecDeque::new()).collect(),
        alive: vec![true; k],
        done: false,
    }));
    (0..k)
        .map(|id| {
            Box::new(TeeReader {
                state: state.clone(),
                id,
            }) as Stream
        })
        .collect()
}

struct TeeReader {
    state: Arc<Mutex<TeeState>>,
    id: usize,
}

impl Iterator for TeeReader {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        let mut s = lock(&self.state);
        if let Some(x) = s.queues[self.id].pop_front() {
            return Some(x);
        }
        if s.done {
            return None;
        }
        let Some(x) = s.src.next() else {
            s.done = true;
            return None;
        };
        let TeeState { queues, alive, .. } = &mut *s;
        for (k, q) in queues.iter_mut().enumerate() {
            if k != self.id && alive[k] {
                q.push_back(x.clone());
            }
        }
        Some(x)
    }

    /// What the other readers pulled ahead of this one (see `weave::Pull`).
    fn size_hint(&self) -> (usize, Option<usize>) {
        (lock(&self.state).queues[self.id].len(), None)
    }
}

impl Drop for TeeReader {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        s.alive[self.id] = false;
        s.queues[self.id].clear();
    }
}

/// What a run shares with its nodes: the stop flag and the first failure.
#[derive(Default)]
pub(crate) struct RunCtl {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) failure: Mutex<Option<Error>>,
    /// Where the nodes' jobs are recorded, when the Plumber keeps a timeline.
    pub(crate) timeline: Option<Arc<crate::stats::Timeline>>,
}

impl RunCtl {
    pub(crate) fn fail(&self, e: Error) {
        lock(&self.failure).get_or_insert(e);
        self.stop.store(true, Ordering::Release);
    }

    pub(crate) fn take_failure(&self) -> Option<Error> {
        lock(&self.failure).take()
    }
}

/// Counts a node's output, tracks it, and enforces `debug`.
pub(crate) struct Observe {
    pub(crate) src: Stream,
    pub(crate) node: String,
    pub(crate) index: u64,
    pub(crate) counters: Arc<NodeCounters>,
    pub(crate) debug: bool,
    pub(crate) run: Arc<RunCtl>,
}

impl Iterator for Observe {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        let item = self.src.next()?;
        let here = matches!(&item, Err(e) if e.path().first().is_some_and(|n| *n == self.node));
        self.counters.add_out(self.index, &item, here);
        self.index += 1;
        if let (true, Err(e)) = (self.debug, &item) {
            self.run.fail(Error::Debug {
                node: self.node.clone(),
                error: e.clone(),
            });
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.src.size_hint().0, None)
    }
}

#[cfg(test)]
mod tests;
