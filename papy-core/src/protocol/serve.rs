//! The worker side of the protocol: answer tasks read from a stream.

use std::io::{BufReader, BufWriter, Read, Write};

use super::{
    read_frame_with, write_frame, write_frame_with, Call, Frame, FrameRef, Hello, ProtocolError,
    ResultsRef, WireInboxes, MAX_FRAME,
};
use crate::error::{ErrorKind, Item, ItemError};
use crate::registry;
use crate::worker::{Args, Worker};

/// Builds the Worker of a chain of calls (by name, with bound arguments).
///
/// # Errors
/// Unknown function, bad arguments or a missing import, as text.
pub fn build_chain(chain: &[Call]) -> Result<Worker, String> {
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

/// Runs the items of `Task` frames, keeping the Worker of each chain it has
/// built (a chain is built once, on its first task). Process workers and
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
}

impl TaskRunner {
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
        let pos = match self.cache.iter().position(|(c, _)| *c == chain) {
            Some(p) => p,
            None => {
                let built = build_chain(&chain);
                self.cache.push((chain, built));
                self.cache.len() - 1
            }
        };
        let n = indices.len().min(inboxes.len());
        let mut out = Vec::with_capacity(n);
        match &self.cache[pos].1 {
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
        crate::func::write::finish_all_logged();
        out
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
    write_frame(&mut output, &Frame::Hello(Hello::here(functions, plugins)))?;
    match super::read_frame(&mut input, MAX_FRAME)? {
        Frame::Hello(h) => {
            if let Err(message) = h.check() {
                return Err(refuse(&mut output, message));
            }
        }
        other => {
            let message = format!("expected a Hello frame first, got {other:?}");
            return Err(refuse(&mut output, message));
        }
    }
    let mut runner = TaskRunner::default();
    // One buffer each way for the whole session: no allocation per frame.
    let (mut inbuf, mut outbuf) = (Vec::new(), Vec::new());
    loop {
        let frame = match read_frame_with(&mut input, &mut inbuf, MAX_FRAME) {
            Ok(f) => f,
            Err(ProtocolError::Closed) => {
                crate::func::write::finish_all_logged();
                return Ok(());
            }
            Err(e) => {
                crate::func::write::finish_all_logged();
                return Err(e);
            }
        };
        match frame {
            Frame::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            } => {
                let results = runner.run(chain, &node, &indices, inboxes);
                let frame = FrameRef::Result {
                    id,
                    results: ResultsRef(&results),
                };
                write_frame_with(&mut output, &mut outbuf, &frame)?;
            }
            Frame::Shutdown => {
                crate::func::write::finish_all_logged();
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
