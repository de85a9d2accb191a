//! Where output items go: a [`Collector`], or a callback.

use std::sync::{Arc, Mutex};

use crate::error::Item;
use crate::sync::lock;

/// Collects the items of an output node. Clones share the same buffer.
#[derive(Debug, Clone, Default)]
pub struct Collector(pub(super) Arc<Mutex<Vec<Item>>>);

impl Collector {
    /// Takes every item collected so far.
    pub fn take(&self) -> Vec<Item> {
        std::mem::take(&mut *lock(&self.0))
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// `true` when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A function called with each output item.
type Callback = Arc<Mutex<dyn FnMut(Item) + Send>>;

/// Where a drain puts the items of an output node.
#[derive(Clone)]
pub(super) enum Sink {
    Collect(Collector),
    Call(Callback),
}
