//! [`Source`]: an external input of a pipeline.

use std::fmt;

use crate::error::Item;
use crate::piper::adapters::Stream;
use crate::value::Value;

/// An external input of a pipeline.
pub struct Source(pub(crate) Stream);

impl Source {
    /// A source of plain values.
    pub fn values<T, I>(iter: I) -> Source
    where
        T: Into<Value>,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Source(Box::new(iter.into_iter().map(|x| Ok(x.into()))))
    }

    /// A source of items (values or errors).
    pub fn items<I>(iter: I) -> Source
    where
        I: IntoIterator<Item = Item>,
        I::IntoIter: Send + 'static,
    {
        Source(Box::new(iter.into_iter()))
    }

    /// The items of this source, in order (to filter or count them before
    /// a run).
    pub fn into_items(self) -> impl Iterator<Item = Item> + Send {
        self.0
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Source(..)")
    }
}
