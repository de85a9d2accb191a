//! [`TaskRunner`]: runs the items of `Task` frames, with the Worker of
//! each chain built once.

use crate::error::{ErrorKind, Item, ItemError};
use crate::protocol::packed::{encode_value, unpack_index, Unpacker};
use crate::protocol::{Call, WireError, WireInboxes};
use crate::registry;
use crate::value::Value;
use crate::worker::{Args, Worker};

/// Builds the Worker of a chain of calls (by name, with bound arguments).
///
/// # Errors
/// Unknown function, bad arguments or a missing import, as text; a
/// function that runs programs when this process does not allow it
/// ([`crate::permissions`]).
pub fn build_chain(chain: &[Call]) -> Result<Worker, String> {
    for c in chain {
        crate::permissions::check_programs(&c.function).map_err(|e| e.to_string())?;
    }
    let workers = chain
        .iter()
        .map(|c| {
            Worker::build(&c.function, Args::Positional(c.args.clone())).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Worker::chain(workers).map_err(|e| e.to_string())
}

/// The calls of a portable Worker, for a Task frame.
pub fn chain_of(worker: &Worker) -> Vec<Call> {
    worker
        .steps()
        .iter()
        .map(|s| Call {
            function: s.function().name.clone(),
            args: s.args().to_vec(),
        })
        .collect()
}

/// How many built chains a [`TaskRunner`] keeps (the most recently used).
pub const CHAIN_CACHE: usize = 64;

/// Runs the items of `Task` frames, keeping the Worker of each chain it has
/// built (a chain is built once, on its first task; the last [`CHAIN_CACHE`]
/// are kept). Process workers and
/// broker workers both answer tasks through it, so they run exactly the same
/// thing.
///
/// ```
/// use papy_core::protocol::{serve::TaskRunner, Call, WireInboxes};
/// use papy_core::Value;
/// let mut runner = TaskRunner::default();
/// let chain = vec![Call { function: "no.such.function".into(), args: vec![] }];
/// let results = runner.run(chain, "node", &[0], WireInboxes::Single(vec![Value::Int(1)]));
/// assert_eq!(results.len(), 1);
/// assert!(results[0].as_ref().unwrap_err().message().contains("cannot run here"));
/// ```
#[derive(Debug, Default)]
pub struct TaskRunner {
    pub(super) cache: Vec<(Vec<Call>, Result<Worker, String>)>,
    /// The functions the host declared (its `Hello`); empty: any.
    allowed: std::collections::BTreeSet<String>,
}

impl TaskRunner {
    /// A runner that refuses chains naming a function outside `functions`
    /// (the host's declared list; an empty list allows any).
    pub fn allowing(functions: impl IntoIterator<Item = String>) -> TaskRunner {
        TaskRunner {
            cache: Vec::new(),
            allowed: functions
                .into_iter()
                .map(|f| registry::normalise(&f))
                .collect(),
        }
    }

    /// Evaluates one task's items (`indices` name them in error paths) and
    /// returns one result per item; a chain that cannot be built here fails
    /// every item with the reason. The inboxes are consumed: their values
    /// move into the calls without a copy.
    pub fn run(
        &mut self,
        chain: Vec<Call>,
        node: &str,
        indices: &[u64],
        inboxes: WireInboxes,
    ) -> Vec<Item> {
        let n = indices.len().min(inboxes.len());
        let mut out = Vec::with_capacity(n);
        match self.worker(chain) {
            Ok(worker) => match inboxes {
                WireInboxes::Single(values) => {
                    let items: Vec<Item> = values.into_iter().map(Ok).collect();
                    worker.eval_batch(
                        n,
                        |i| std::slice::from_ref(&items[i]),
                        |i| indices[i],
                        node,
                        &mut out,
                    );
                }
                WireInboxes::Many(many) => {
                    let items: Vec<Vec<Item>> = many
                        .into_iter()
                        .map(|values| values.into_iter().map(Ok).collect())
                        .collect();
                    worker.eval_batch(n, |i| &items[i], |i| indices[i], node, &mut out);
                }
            },
            Err(m) => out.extend(indices.iter().take(n).map(|&i| cannot_run(m, node, i))),
        }
        // What the batch wrote to compressed streams is on disk before its
        // items are reported done.
        crate::hooks::run(crate::hooks::When::BatchDone);
        out
    }

    /// Why `chain` may not run here: a function the host did not declare
    /// (`None`: every one was, or the host declared none).
    pub(super) fn undeclared(&self, chain: &[Call]) -> Option<String> {
        let c = chain.iter().find(|c| {
            !self.allowed.is_empty() && !self.allowed.contains(&registry::normalise(&c.function))
        })?;
        Some(format!(
            "`{}` is not among the functions this worker's host declared",
            crate::error::quote_peer(&c.function)
        ))
    }

    /// The Worker of a chain, built on its first use.
    fn worker(&mut self, chain: Vec<Call>) -> &Result<Worker, String> {
        match self.cache.iter().position(|(c, _)| *c == chain) {
            // The most recently used first: a hot chain is found at once.
            Some(p) => self.cache[..=p].rotate_right(1),
            None => {
                let built = match self.undeclared(&chain) {
                    Some(why) => Err(why),
                    None => build_chain(&chain),
                };
                self.cache.insert(0, (chain, built));
                // Bounded: a sender of ever new chains (arguments differ per
                // task) costs a rebuild, not memory and a longer search.
                self.cache.truncate(CHAIN_CACHE);
            }
        }
        &self.cache[0].1
    }

    /// Evaluates a task whose inboxes are single packed values, in one pass:
    /// each value is decoded, called and its result encoded (appended to
    /// `values`, nil where the item failed) before the next is read; the
    /// failures go to `errors` by position. `indices` are the packed
    /// little-endian indices, one per item.
    pub fn run_packed(
        &mut self,
        chain: Vec<Call>,
        node: &str,
        indices: &[u8],
        packed: &[u8],
        values: &mut Vec<u8>,
        errors: &mut Vec<(u32, WireError)>,
    ) {
        let n = indices.len() / 8;
        // `i < n`: every index is there.
        let index = |i: usize| unpack_index(indices, i).unwrap_or_default();
        values.reserve(packed.len());
        let worker = self.worker(chain);
        if let Ok(w) = worker {
            if run_whole(w, node, (packed, n), &index, values, errors) {
                crate::hooks::run(crate::hooks::When::BatchDone);
                return;
            }
        }
        let mut output = |i: usize, r: Item| match r {
            Ok(v) => encode_value(&v, values),
            Err(e) => {
                encode_value(&Value::Null, values);
                errors.push((i as u32, WireError::from_item(&e)));
            }
        };
        match worker {
            Ok(worker) => {
                let mut unpacker = Unpacker::new(packed);
                // A value that cannot be read fails its own item (the rest
                // of the batch still runs), named like any other error.
                let input = |i: usize| {
                    let message = match unpacker.next_value() {
                        Some(Ok(v)) => return Ok(v),
                        Some(Err(e)) => format!("malformed value from the host: {e}"),
                        None => format!("the host sent fewer values than the {n} indices"),
                    };
                    Err(ItemError::new(ErrorKind::Conversion, message).at(node, index(i)))
                };
                worker.eval_each(n, input, index, node, &mut output);
            }
            Err(m) => (0..n).for_each(|i| output(i, cannot_run(m, node, index(i)))),
        }
        crate::hooks::run(crate::hooks::When::BatchDone);
    }
}

/// The error of item `index` at `node` when its chain cannot be built here.
fn cannot_run(message: &str, node: &str, index: u64) -> Item {
    let e = ItemError::new(ErrorKind::Function, format!("cannot run here: {message}"));
    Err(e.at(node.to_string(), index))
}

/// Runs a whole frame of packed values in one call, when `worker` is one
/// function with a packed batch entry point (a plugin's, ABI 1.2): the
/// frame's bytes go to it as they came and its packed results come back
/// into `values`, no value decoded here. `false` (nothing written) when the
/// worker has no such entry point, or the batch as a whole failed there
/// (a panic on this side, a batch the plugin could not read or answer):
/// the items then run one by one, each failing on its own.
fn run_whole(
    worker: &Worker,
    node: &str,
    (packed, n): (&[u8], usize),
    index: &impl Fn(usize) -> u64,
    values: &mut Vec<u8>,
    errors: &mut Vec<(u32, WireError)>,
) -> bool {
    let [step] = worker.steps() else {
        return false;
    };
    let Some(whole) = &step.function().packed else {
        return false;
    };
    let _node = tracing::info_span!("node", name = node).entered();
    let start = values.len();
    match crate::catch(|| whole(packed, n, step.args(), values)) {
        Ok(Ok(failed)) => {
            for (i, e) in failed {
                let e = e
                    .with_function(step.function().name.clone())
                    .at(node, index(i));
                errors.push((i as u32, WireError::from_item(&e)));
            }
            true
        }
        Ok(Err(_)) | Err(_) => {
            values.truncate(start);
            false
        }
    }
}
