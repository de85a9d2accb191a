//! [`Dagger`]: the DAG of pipers.
//!
//! Pipers are identified by name. A *pipe* is a sequence of pipers
//! connected in order (`a -> b -> c`). A pipe that would close a cycle is
//! refused and the graph is left exactly as it was.
//!
//! Topological order is deterministic: upstream before downstream; among
//! nodes that are ready at the same time, lower `branch` first, then the
//! order in which the pipers were added. The inbox of a join holds one
//! element per upstream piper, in the order the pipes into it were added.
//!
//! ```
//! use papy_core::{Dagger, Piper, Worker};
//! let w = || Worker::new("papy.ipasser").unwrap();
//! let mut d = Dagger::new();
//! for name in ["src", "left", "right", "join"] {
//!     d.add_piper(Piper::new(name, w())).unwrap();
//! }
//! d.add_pipe(["src", "left", "join"]).unwrap();
//! d.add_pipe(["src", "right", "join"]).unwrap();
//! assert!(d.add_pipe(["join", "src"]).is_err()); // a cycle
//! let order: Vec<&str> = d.order().iter().map(|p| p.name()).collect();
//! assert_eq!(order, ["src", "left", "right", "join"]);
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;

use crate::error::{Error, Result};
use crate::piper::Piper;

#[derive(Clone)]
struct Node {
    piper: Piper,
    seq: u64,
}

/// A directed acyclic graph of pipers.
#[derive(Default)]
pub struct Dagger {
    graph: StableDiGraph<Node, u64>,
    names: BTreeMap<String, NodeIndex>,
    seq: u64,
}

impl std::fmt::Debug for Dagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let order: Vec<&str> = self.order().iter().map(|p| p.name()).collect();
        let pipes: Vec<String> = self
            .pipes()
            .iter()
            .map(|(a, b)| format!("{a}>>>{b}"))
            .collect();
        write!(f, "Dagger(pipers: {order:?}, pipes: {pipes:?})")
    }
}

impl Dagger {
    /// An empty DAG.
    pub fn new() -> Dagger {
        Dagger::default()
    }

    fn index(&self, name: &str) -> Result<NodeIndex> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| Error::Graph(format!("no piper named `{name}` in the dagger")))
    }

    /// Adds a piper.
    ///
    /// # Errors
    /// A name already used, or invalid piper options.
    pub fn add_piper(&mut self, piper: Piper) -> Result<()> {
        piper.validate()?;
        if self.names.contains_key(piper.name()) {
            return Err(Error::Graph(format!(
                "a piper named `{}` is already in the dagger",
                piper.name()
            )));
        }
        self.seq += 1;
        let name = piper.name().to_string();
        let ix = self.graph.add_node(Node {
            piper,
            seq: self.seq,
        });
        self.names.insert(name, ix);
        Ok(())
    }

    /// Adds several pipers.
    ///
    /// # Errors
    /// As [`Dagger::add_piper`]; pipers before the failing one stay added.
    pub fn add_pipers(&mut self, pipers: impl IntoIterator<Item = Piper>) -> Result<()> {
        pipers.into_iter().try_for_each(|p| self.add_piper(p))
    }

    /// Removes a piper; with downstream pipers only when `forced` (its pipes go too).
    ///
    /// # Errors
    /// Unknown name, or downstream pipers without `forced`.
    pub fn del_piper(&mut self, name: &str, forced: bool) -> Result<Piper> {
        let ix = self.index(name)?;
        let down = self.downstream(name)?;
        if !down.is_empty() && !forced {
            let names: Vec<&str> = down.iter().map(|p| p.name()).collect();
            return Err(Error::Graph(format!(
                "piper `{name}` feeds {}; remove those pipes first or force",
                names.join(", ")
            )));
        }
        self.names.remove(name);
        self.graph
            .remove_node(ix)
            .map(|n| n.piper)
            .ok_or_else(|| Error::Graph(format!("no piper named `{name}`")))
    }

    /// Connects the named pipers in sequence (`a -> b -> c`).
    ///
    /// # Errors
    /// Unknown names, a pipe of fewer than two pipers, an existing pipe, or a
    /// cycle (then nothing is changed).
    pub fn add_pipe<S: AsRef<str>>(&mut self, pipe: impl IntoIterator<Item = S>) -> Result<()> {
        let names: Vec<String> = pipe.into_iter().map(|s| s.as_ref().to_string()).collect();
        if names.len() < 2 {
            return Err(Error::Graph("a pipe needs at least two pipers".into()));
        }
        let ixs = names
            .iter()
            .map(|n| self.index(n))
            .collect::<Result<Vec<_>>>()?;
        let mut g = self.graph.clone();
        let mut seq = self.seq;
        for (w, pair) in ixs.windows(2).enumerate() {
            let (u, v) = (pair[0], pair[1]);
            if g.find_edge(u, v).is_some() {
                return Err(Error::Graph(format!(
                    "pipe {} -> {} already exists",
                    names[w],
                    names[w + 1]
                )));
            }
            let path: Option<Vec<NodeIndex>> = if u == v {
                Some(vec![u])
            } else {
                // A shortest path v -> u, if any: linear in the graph's size
                // (enumerating simple paths is exponential on layered graphs).
                petgraph::algo::astar(&g, v, |n| n == u, |_| 1u32, |_| 0).map(|(_, p)| p)
            };
            if let Some(path) = path {
                let mut cycle: Vec<String> = path
                    .iter()
                    .map(|i| g[*i].piper.name().to_string())
                    .collect();
                cycle.push(g[v].piper.name().to_string());
                return Err(Error::Cycle {
                    from: names[w].clone(),
                    to: names[w + 1].clone(),
                    cycle,
                });
            }
            seq += 1;
            g.add_edge(u, v, seq);
        }
        self.graph = g;
        self.seq = seq;
        Ok(())
    }

    /// Connects `from -> to`.
    ///
    /// # Errors
    /// As [`Dagger::add_pipe`].
    pub fn connect(&mut self, from: &str, to: &str) -> Result<()> {
        self.add_pipe([from, to])
    }

    /// Removes the pipe `from -> to`.
    ///
    /// # Errors
    /// Unknown names or no such pipe.
    pub fn disconnect(&mut self, from: &str, to: &str) -> Result<()> {
        let (u, v) = (self.index(from)?, self.index(to)?);
        let e = self
            .graph
            .find_edge(u, v)
            .ok_or_else(|| Error::Graph(format!("no pipe {from} -> {to}")))?;
        self.graph.remove_edge(e);
        Ok(())
    }

    /// Removes every pipe of a sequence (`a -> b -> c`); pipers stay.
    ///
    /// # Errors
    /// As [`Dagger::disconnect`]; nothing is removed if any pipe is missing.
    pub fn del_pipe<S: AsRef<str>>(&mut self, pipe: impl IntoIterator<Item = S>) -> Result<()> {
        let names: Vec<String> = pipe.into_iter().map(|s| s.as_ref().to_string()).collect();
        for pair in names.windows(2) {
            let (u, v) = (self.index(&pair[0])?, self.index(&pair[1])?);
            if self.graph.find_edge(u, v).is_none() {
                return Err(Error::Graph(format!("no pipe {} -> {}", pair[0], pair[1])));
            }
        }
        for pair in names.windows(2) {
            self.disconnect(&pair[0], &pair[1])?;
        }
        Ok(())
    }

    /// The piper named `name`.
    pub fn piper(&self, name: &str) -> Option<&Piper> {
        self.names.get(name).map(|ix| &self.graph[*ix].piper)
    }

    /// Number of pipers.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// `true` without pipers.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every pipe `(upstream, downstream)`, in the order added.
    pub fn pipes(&self) -> Vec<(String, String)> {
        let mut e: Vec<(u64, String, String)> = (&self.graph)
            .edge_references()
            .map(|e| {
                (
                    *e.weight(),
                    self.graph[e.source()].piper.name().to_string(),
                    self.graph[e.target()].piper.name().to_string(),
                )
            })
            .collect();
        e.sort();
        e.into_iter().map(|(_, a, b)| (a, b)).collect()
    }

    fn neighbours(&self, ix: NodeIndex, dir: Direction) -> Vec<NodeIndex> {
        let mut v: Vec<(u64, NodeIndex)> = self
            .graph
            .edges_directed(ix, dir)
            .map(|e| {
                (
                    *e.weight(),
                    if dir == Direction::Incoming {
                        e.source()
                    } else {
                        e.target()
                    },
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// The upstream pipers of `name`, in inbox order (the order their pipes were added).
    ///
    /// # Errors
    /// Unknown name.
    pub fn upstream(&self, name: &str) -> Result<Vec<&Piper>> {
        self.linked(name, Direction::Incoming)
    }

    /// The downstream pipers of `name`, in the order their pipes were added.
    ///
    /// # Errors
    /// Unknown name.
    pub fn downstream(&self, name: &str) -> Result<Vec<&Piper>> {
        self.linked(name, Direction::Outgoing)
    }

    /// The pipers piped into (`Incoming`) or out of `name`, in the order
    /// their pipes were added.
    fn linked(&self, name: &str, dir: Direction) -> Result<Vec<&Piper>> {
        let ixs = self.neighbours(self.index(name)?, dir);
        Ok(ixs.into_iter().map(|n| &self.graph[n].piper).collect())
    }

    /// Every piper in topological order (see the module docs).
    pub fn order(&self) -> Vec<&Piper> {
        let mut indeg: BTreeMap<NodeIndex, usize> = self
            .graph
            .node_indices()
            .map(|n| (n, self.graph.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let key = |n: NodeIndex| {
            let node = &self.graph[n];
            Reverse((node.piper.options().branch, node.seq, n))
        };
        let mut ready: BinaryHeap<_> = indeg
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| key(*n))
            .collect();
        let mut out = Vec::with_capacity(indeg.len());
        while let Some(Reverse((_, _, n))) = ready.pop() {
            out.push(&self.graph[n].piper);
            for m in self.neighbours(n, Direction::Outgoing) {
                if let Some(d) = indeg.get_mut(&m) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(key(m));
                    }
                }
            }
        }
        out
    }

    /// Pipers without upstream pipers, in topological order.
    pub fn inputs(&self) -> Vec<&Piper> {
        self.ends(Direction::Incoming)
    }

    /// Pipers without downstream pipers, in topological order.
    pub fn outputs(&self) -> Vec<&Piper> {
        self.ends(Direction::Outgoing)
    }

    /// Pipers without pipes in direction `dir`, in topological order.
    fn ends(&self, dir: Direction) -> Vec<&Piper> {
        let order = self.order().into_iter();
        order
            .filter(|p| self.linked(p.name(), dir).is_ok_and(|l| l.is_empty()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
