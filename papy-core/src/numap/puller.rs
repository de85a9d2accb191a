//! Task inputs as the feeder pulls them ([`Pull`]), and the *puller* of a
//! chained task: a thread of its own that pulls the task's input ahead of
//! the feeder and hands items over as they arrive, so that the feeder
//! never blocks on a result that itself needs the feeder.

use std::collections::VecDeque;

use super::buffer::Doorbell;
use crate::error::{ErrorKind, ItemError};
use crate::job::TaskCtx;
use crate::pool::Inbox;
use crate::sync::Monitor;

/// A task's input as the feeder pulls it: a job at a time, so there is
/// one dynamic call per job (per item for a task with a timeout, whose
/// jobs hold one item) and the loop over the items is compiled for the
/// input's own iterator type (a range of integers is a tight loop).
pub(crate) trait Pull: Send {
    /// Appends up to `n` inboxes to `out`; returns `true` when the input ended.
    fn fill(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool;

    /// Appends one inbox (waiting for it if need be), then those of the
    /// next ones that are already in hand, up to `n` in all; returns `true`
    /// when the input ended. "In hand" is the lower bound of the iterator's
    /// `size_hint`: the result readers and node adapters report the results
    /// they hold, so a chained task forwards what has arrived at once and
    /// never waits for more than one item.
    fn fill_ready(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool;
}

impl<I: Iterator<Item = Inbox> + Send> Pull for I {
    fn fill(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool {
        let before = out.len();
        out.extend(self.by_ref().take(n));
        out.len() - before < n
    }

    fn fill_ready(&mut self, out: &mut Vec<Inbox>, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        match self.next() {
            None => return true,
            Some(first) => out.push(first),
        }
        let ready = self.size_hint().0.min(n - 1);
        // Taking only what is in hand never waits; an iterator whose hint
        // was wrong ends the input early, which `fill` would too.
        self.fill(out, ready)
    }
}

/// A task's input stream.
pub(crate) type Input = Box<dyn Pull>;

#[derive(Default)]
pub(crate) struct HandoffState {
    /// Items pulled and not yet submitted, in input order.
    pub(crate) items: VecDeque<Inbox>,
    /// Most items held (`LOOKAHEAD` visits; the feeder keeps it current).
    pub(crate) cap: usize,
    pub(crate) ended: bool,
    pub(crate) closed: bool,
}

/// Items pulled by a puller thread, waiting for the feeder (the monitor
/// is notified when the feeder makes space or closes it).
pub(crate) type Handoff = Monitor<HandoffState>;

/// Strides of items a puller may hold ahead of the feeder.
pub(crate) const LOOKAHEAD: usize = 2;

/// A puller thread: pulls a chained task's input ahead of the feeder and
/// forwards each item as it arrives (at most `cap` items held). Returns the
/// input for a restart.
pub(crate) fn puller(
    mut input: Input,
    handoff: &Handoff,
    bell: &Doorbell,
    ctx: &TaskCtx,
    mut next_index: u64,
) -> Option<Input> {
    let mut one = Vec::new();
    loop {
        let room = {
            let mut st = handoff.lock();
            while st.items.len() >= st.cap && !st.closed {
                st = handoff.wait(st);
            }
            if st.closed {
                return Some(input);
            }
            st.cap - st.items.len()
        };
        // What has arrived, and never more than one item that has not: the
        // first downstream item never waits for the slowest upstream item
        // of its stride.
        let exhausted = pull_with(&mut one, ctx, next_index, |b| input.fill_ready(b, room));
        next_index += one.len() as u64;
        crate::chaos::point("puller.handoff");
        let mut st = handoff.lock();
        let was_empty = st.items.is_empty();
        st.items.extend(one.drain(..));
        if exhausted {
            st.ended = true;
        }
        let wake = was_empty || exhausted;
        drop(st);
        // The feeder needs a ring only when it may have seen nothing to do;
        // items added behind others are taken with them.
        if wake {
            bell.ring();
        }
        if exhausted {
            // Kept: a chained input ends when its upstream stops, and goes on
            // with the upstream's new results after a restart.
            return Some(input);
        }
    }
}

/// Runs a pull into `batch` (whose first inbox is item `first`); `true`
/// when the input ended. A panicking input becomes one error item and ends it.
pub(crate) fn pull_with(
    batch: &mut Vec<Inbox>,
    ctx: &TaskCtx,
    first: u64,
    f: impl FnOnce(&mut Vec<Inbox>) -> bool,
) -> bool {
    let r = crate::catch(|| f(&mut *batch));
    match r {
        Ok(exhausted) => exhausted,
        Err(msg) => {
            let index = first + batch.len() as u64;
            let err = ItemError::new(ErrorKind::Input, format!("input iterator panicked: {msg}"))
                .at(ctx.func.name(), index);
            batch.push(Inbox::One(Err(err)));
            true
        }
    }
}
