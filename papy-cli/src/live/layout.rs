//! Where the graph draws each node: layers by the longest path from an
//! input (inputs on the left, outputs on the right), rows in the
//! pipeline's order within a layer. The page only scales these to pixels.

use std::collections::BTreeMap;

use papy_core::Dagger;
use serde::Serialize;

/// A node's cell in the drawing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Place {
    /// The column: the longest path from an input piper (0 for inputs).
    pub layer: usize,
    /// The row within the column.
    pub row: usize,
}

/// The place of every piper of `dagger`.
pub(crate) fn layout(dagger: &Dagger) -> BTreeMap<String, Place> {
    let mut layer: BTreeMap<String, usize> = BTreeMap::new();
    // Topological order: every upstream piper has its layer already.
    for p in dagger.order() {
        let up = dagger
            .upstream(p.name())
            .map(|ups| {
                ups.iter()
                    .filter_map(|u| layer.get(u.name()).map(|l| l + 1))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        layer.insert(p.name().to_string(), up);
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for p in dagger.order() {
        let l = layer.get(p.name()).copied().unwrap_or(0);
        let row = rows.entry(l).or_insert(0);
        out.insert(
            p.name().to_string(),
            Place {
                layer: l,
                row: *row,
            },
        );
        *row += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use papy_core::{Piper, Worker};

    #[test]
    fn a_join_sits_right_of_its_longest_branch() {
        let mut d = Dagger::new();
        for n in ["a", "b", "c", "j"] {
            d.add_piper(Piper::new(n, Worker::new("papy.ipasser").unwrap()))
                .unwrap();
        }
        d.add_pipe(["a", "b", "j"]).unwrap();
        d.add_pipe(["c", "j"]).unwrap();
        let places = layout(&d);
        assert_eq!(places["a"].layer, 0);
        assert_eq!(places["c"].layer, 0);
        assert_ne!(places["a"].row, places["c"].row);
        assert_eq!(places["b"].layer, 1);
        assert_eq!(places["j"].layer, 2);
    }
}
