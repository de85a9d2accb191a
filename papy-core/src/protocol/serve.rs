//! The worker side of the protocol: answer tasks read from a stream.

use std::io::{BufReader, BufWriter, Read, Write};

use super::packed::{encode_value, unpack_index, unpack_indices, Unpacker};
use super::{
    read_frame_view, release_large, write_frame, write_frame_with, Call, Frame, FrameRef,
    FrameView, Hello, InboxesView, ProtocolError, ResultsRef, WireError, WireInboxes, MAX_FRAME,
};
use crate::error::{ErrorKind, Item, ItemError};
use crate::registry;
use crate::value::Value;
use crate::worker::{Args, Worker};

/// What a worker does when its host is done with it: complete compressed
/// outputs, and remove the named pipes of items no reader took (their
/// serving threads end with this process).
fn session_end() {
    crate::hooks::run(crate::hooks::When::SessionEnd);
}

/// Runs the host's init call once (on a null input), keeps its result as
/// this process's [`worker_state`](crate::worker_state) and answers with a
/// `Result` of id [`INIT_ID`](super::INIT_ID); a failure is answered the
/// same way and ends the session.
fn run_init(
    init: &Call,
    runner: &TaskRunner,
    output: &mut impl Write,
) -> Result<(), ProtocolError> {
    let outcome = runner
        .undeclared(std::slice::from_ref(init))
        .map_or_else(|| build_chain(std::slice::from_ref(init)), Err)
        .map_err(|m| ItemError::new(ErrorKind::Function, m))
        .and_then(|w| w.call(&[Value::Null]));
    let failed = outcome.is_err();
    if let Ok(v) = &outcome {
        let _ = papy_sdk::set_process_state(v.clone());
    }
    let item: Item = outcome.map(|_| Value::Null);
    let results = super::WireResults::from_items(std::slice::from_ref(&item));
    write_frame(
        output,
        &Frame::Result {
            id: super::INIT_ID,
            results,
        },
    )?;
    output.flush()?;
    if failed {
        return Err(ProtocolError::Malformed(format!(
            "init `{}` failed",
            crate::error::quote_peer(&init.function)
        )));
    }
    Ok(())
}

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
#[derive(Default)]
pub struct TaskRunner {
    cache: Vec<(Vec<Call>, Result<Worker, String>)>,
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
            Err(message) => {
                out.extend(indices.iter().take(n).map(|index| {
                    Err(
                        ItemError::new(ErrorKind::Function, format!("cannot run here: {message}"))
                            .at(node.to_string(), *index),
                    )
                }));
            }
        }
        // What the batch wrote to compressed streams is on disk before its
        // items are reported done.
        crate::hooks::run(crate::hooks::When::BatchDone);
        out
    }

    /// Why `chain` may not run here: a function the host did not declare
    /// (`None`: every one was, or the host declared none).
    fn undeclared(&self, chain: &[Call]) -> Option<String> {
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
        let mut output = |i: usize, r: Item| match r {
            Ok(v) => encode_value(&v, values),
            Err(e) => {
                encode_value(&Value::Null, values);
                errors.push((i as u32, WireError::from_item(&e)));
            }
        };
        match self.worker(chain) {
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
            Err(message) => {
                for i in 0..n {
                    let e =
                        ItemError::new(ErrorKind::Function, format!("cannot run here: {message}"))
                            .at(node.to_string(), index(i));
                    output(i, Err(e));
                }
            }
        }
        crate::hooks::run(crate::hooks::When::BatchDone);
    }
}

/// Tells the host why this worker stops (a `Fatal` frame), as an error.
fn refuse(output: &mut impl Write, message: String) -> ProtocolError {
    let _ = write_frame(
        output,
        &Frame::Fatal {
            message: message.clone(),
        },
    );
    ProtocolError::Malformed(message)
}

/// Serves tasks until the host sends `Shutdown` or closes the stream.
/// `plugins` (name, sha256) are announced in the handshake.
///
/// # Errors
/// A refused handshake or a broken stream.
pub fn serve(
    input: impl Read,
    output: impl Write,
    plugins: Vec<(String, String)>,
) -> Result<(), ProtocolError> {
    let mut input = BufReader::new(input);
    let mut output = BufWriter::new(output);
    let functions = registry::functions()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    output.write_all(super::GREETING)?;
    let mut hello = Hello::here(functions, plugins);
    hello.signatures = super::Signature::of_registry();
    write_frame(&mut output, &Frame::Hello(hello))?;
    let mut runner = match super::read_frame(&mut input, MAX_FRAME)? {
        Frame::Hello(h) => {
            if let Err(message) = h.check() {
                return Err(refuse(&mut output, message));
            }
            // The host said what its pipeline sends: nothing else runs
            // here, its init included.
            let runner = TaskRunner::allowing(h.functions);
            if let Some(init) = &h.init {
                run_init(init, &runner, &mut output)?;
            }
            runner
        }
        other => {
            let message = format!("expected a Hello frame first, got {other:?}");
            return Err(refuse(&mut output, message));
        }
    };
    // Buffers for the whole session: no allocation per frame.
    let (mut inbuf, mut outbuf) = (Vec::new(), Vec::new());
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    loop {
        for buf in [&mut inbuf, &mut outbuf, &mut values] {
            release_large(buf);
        }
        let frame = match read_frame_view(&mut input, &mut inbuf, MAX_FRAME) {
            Ok(f) => f,
            Err(ProtocolError::Closed) => {
                session_end();
                return Ok(());
            }
            Err(e) => {
                session_end();
                return Err(e);
            }
        };
        match frame {
            FrameView::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            } => {
                if indices.len() % 8 != 0 {
                    let message = format!(
                        "packed indices of {} bytes (not a multiple of 8)",
                        indices.len()
                    );
                    return Err(refuse(&mut output, message));
                }
                let frame = match inboxes {
                    InboxesView::Single(packed) => {
                        values.clear();
                        errors.clear();
                        runner.run_packed(chain, &node, indices, packed, &mut values, &mut errors);
                        FrameRef::Result {
                            id,
                            results: ResultsRef::Packed {
                                values: &values,
                                errors: &errors,
                            },
                        }
                    }
                    InboxesView::Many(many) => {
                        let indices = unpack_indices(indices);
                        let results = runner.run(chain, &node, &indices, WireInboxes::Many(many));
                        write_frame_with(
                            &mut output,
                            &mut outbuf,
                            &FrameRef::Result {
                                id,
                                results: ResultsRef::Items(&results),
                            },
                        )?;
                        continue;
                    }
                };
                write_frame_with(&mut output, &mut outbuf, &frame)?;
            }
            FrameView::Shutdown => {
                session_end();
                return Ok(());
            }
            other => {
                let message = format!("unexpected frame from the host: {other:?}");
                return Err(refuse(&mut output, message));
            }
        }
    }
}

/// Serves on this process's stdin/stdout. Frames go to the original stdout;
/// file descriptor 1 is pointed at stderr first (on Unix), so a worker
/// function that prints cannot corrupt the protocol stream.
///
/// # Errors
/// As [`serve`], or the descriptors cannot be set up.
pub fn serve_stdio(plugins: Vec<(String, String)>) -> Result<(), ProtocolError> {
    watch_parent();
    let out = protocol_stdout()?;
    let stdin = std::io::stdin();
    serve(stdin.lock(), out, plugins)
}

#[cfg(unix)]
fn protocol_stdout() -> Result<std::fs::File, ProtocolError> {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let _flushed = stdout.lock().flush();
    let frames = stdout.as_fd().try_clone_to_owned()?;
    // SAFETY: dup2 on two descriptors this process owns (2 = stderr, 1 = stdout);
    // it only re-points fd 1, which the `frames` duplicate no longer depends on.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(ProtocolError::Io(std::io::Error::last_os_error()));
    }
    Ok(std::fs::File::from(frames))
}

#[cfg(not(unix))]
fn protocol_stdout() -> Result<std::io::Stdout, ProtocolError> {
    Ok(std::io::stdout())
}

/// A worker on stdio belongs to its host: when the host dies (even by
/// SIGKILL, which no handler sees), the worker is reparented and ends at
/// once, with the commands it started when it leads its process group (as
/// pool workers do), instead of finishing its batch for nobody. Checked
/// every 100 ms from a thread, so it works while a batch runs.
#[cfg(unix)]
fn watch_parent() {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() };
    if parent <= 1 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("papy-parent-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: as above.
            if unsafe { libc::getppid() } != parent {
                // SAFETY: getpgrp and getpid have no preconditions; kill(0, ..)
                // signals our own process group, which we lead (the pool
                // spawned us with process_group(0)), so only this worker and
                // what it started are ended. Otherwise only this process ends.
                // _exit ends the process without running exit handlers
                // while the other threads still run.
                unsafe {
                    if libc::getpgrp() == libc::getpid() {
                        libc::kill(0, libc::SIGKILL);
                    }
                    libc::_exit(1);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the host process: {e}");
    }
}

#[cfg(not(unix))]
fn watch_parent() {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::packed::{decode_values, encode_values};

    fn packed(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_values(values.iter(), &mut out);
        out
    }

    fn le(indices: &[u64]) -> Vec<u8> {
        indices.iter().flat_map(|i| i.to_le_bytes()).collect()
    }

    fn passer() -> Vec<Call> {
        vec![Call {
            function: "papy.ipasser".into(),
            args: vec![],
        }]
    }

    #[test]
    fn ever_new_chains_keep_a_bounded_cache_and_the_hot_one_first() {
        let mut runner = TaskRunner::default();
        let add = |n: i64| {
            vec![Call {
                function: "papy.nzipper".into(),
                args: vec![Value::Int(n)],
            }]
        };
        for n in 0..1000 {
            let _ = runner.run(
                add(n),
                "node",
                &[0],
                WireInboxes::Single(vec![Value::Int(1)]),
            );
            let _ = runner.run(
                passer(),
                "node",
                &[0],
                WireInboxes::Single(vec![Value::Int(1)]),
            );
        }
        assert_eq!(runner.cache.len(), CHAIN_CACHE);
        // The chain used all along stayed; the first of the new ones went.
        assert!(runner.cache.iter().any(|(c, _)| *c == passer()));
        assert!(!runner.cache.iter().any(|(c, _)| *c == add(0)));
        assert!(runner.cache.iter().any(|(c, _)| *c == add(999)));
    }

    #[test]
    fn packed_tasks_run_in_one_pass_and_match_the_batch_path() {
        let inputs = [Value::Int(5), Value::from("x"), Value::Int(70_000)];
        let mut runner = TaskRunner::default();
        let (mut values, mut errors) = (Vec::new(), Vec::new());
        let p = packed(&inputs);
        runner.run_packed(passer(), "n", &le(&[7, 8, 9]), &p, &mut values, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(decode_values(&values).unwrap(), inputs);
        let batch = runner.run(
            passer(),
            "n",
            &[7, 8, 9],
            WireInboxes::Single(inputs.to_vec()),
        );
        assert_eq!(batch, inputs.iter().cloned().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn a_malformed_value_or_a_short_batch_fails_only_its_items() {
        let mut p = packed(&[Value::Int(1)]);
        p.push(0xc1); // never used in MessagePack
        let mut runner = TaskRunner::default();
        let (mut values, mut errors) = (Vec::new(), Vec::new());
        runner.run_packed(passer(), "n", &le(&[0, 1, 2]), &p, &mut values, &mut errors);
        assert_eq!(
            decode_values(&values).unwrap(),
            [Value::Int(1), Value::Null, Value::Null]
        );
        let positions: Vec<u32> = errors.iter().map(|e| e.0).collect();
        assert_eq!(positions, [1, 2]);
        assert!(
            errors[0].1.message.contains("malformed value"),
            "{errors:?}"
        );
        assert!(errors[1].1.message.contains("fewer values"), "{errors:?}");
        assert_eq!((errors[0].1.index, errors[1].1.index), (Some(1), Some(2)));
    }

    /// What a worker answers to a host `Hello` declaring `functions` and
    /// asking for `init`: its init `Result`'s errors, and how `serve` ended.
    fn init_answer(functions: &[&str], init: &str) -> (Vec<WireError>, bool) {
        let mut hello = Hello::here(functions.iter().map(|f| f.to_string()).collect(), vec![]);
        hello.init = Some(Call {
            function: init.into(),
            args: vec![],
        });
        let mut input = Vec::new();
        write_frame(&mut input, &Frame::Hello(hello)).unwrap();
        write_frame(&mut input, &Frame::Shutdown).unwrap();
        let mut output = Vec::new();
        let served = serve(&input[..], &mut output, vec![]);
        let mut read = &output[crate::protocol::GREETING.len()..];
        assert!(matches!(
            crate::protocol::read_frame(&mut read, MAX_FRAME),
            Ok(Frame::Hello(_))
        ));
        match crate::protocol::read_frame(&mut read, MAX_FRAME) {
            Ok(Frame::Result { id, results }) => {
                assert_eq!(id, crate::protocol::INIT_ID);
                let errors = results.errors.into_iter().map(|(_, e)| e).collect();
                (errors, served.is_ok())
            }
            other => panic!("no init result: {other:?}"),
        }
    }

    #[test]
    fn an_init_must_be_among_the_functions_its_host_declared() {
        let (errors, ok) = init_answer(&["papy.njoiner"], "papy.ipasser");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .message
                .contains("`papy.ipasser` is not among the functions this worker's host declared"),
            "{errors:?}"
        );
        assert!(!ok, "the worker ends after a refused init");
        // Declared, or no list at all: it runs.
        for declared in [&["papy.njoiner", "papy.ipasser"][..], &[]] {
            let (errors, ok) = init_answer(declared, "papy.ipasser");
            assert!(errors.is_empty() && ok, "{declared:?}: {errors:?}");
        }
    }

    #[test]
    fn an_unknown_chain_fails_every_packed_item_with_the_reason() {
        let chain = vec![Call {
            function: "no.such.function".into(),
            args: vec![],
        }];
        let mut runner = TaskRunner::default();
        let (mut values, mut errors) = (Vec::new(), Vec::new());
        let p = packed(&[Value::Int(1), Value::Int(2)]);
        runner.run_packed(chain, "n", &le(&[3, 4]), &p, &mut values, &mut errors);
        assert_eq!(errors.len(), 2);
        assert!(errors[1].1.message.contains("cannot run here"));
        assert_eq!(errors[1].1.index, Some(4));
    }
}
