//! The worker side of the protocol: answer tasks read from a stream.

mod runner;
mod stdio;

use std::io::{BufReader, BufWriter, Read, Write};

use super::packed::unpack_indices;
use super::{
    read_frame_with, release_large, write_frame, write_frame_with, Call, Frame, FrameRef,
    FrameView, Hello, InboxesView, ProtocolError, ResultsRef, WireError, WireInboxes, MAX_FRAME,
};
use crate::error::{ErrorKind, Item, ItemError};
use crate::registry;
use crate::value::Value;

pub use runner::{build_chain, chain_of, TaskRunner, CHAIN_CACHE};
pub use stdio::serve_stdio;

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

/// Sends this worker's `Hello`, reads the host's and runs its init: the
/// runner the session's tasks go through.
fn handshake(
    input: &mut impl Read,
    output: &mut impl Write,
    plugins: Vec<(String, String)>,
) -> Result<TaskRunner, ProtocolError> {
    let functions = registry::functions()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    output.write_all(super::GREETING)?;
    let mut hello = Hello::here(functions, plugins);
    hello.signatures = super::Signature::of_registry();
    write_frame(output, &Frame::Hello(hello))?;
    let h = match super::read_frame(input, MAX_FRAME)? {
        Frame::Hello(h) => h,
        other => {
            let message = format!("expected a Hello frame first, got {other:?}");
            return Err(refuse(output, message));
        }
    };
    h.check().map_err(|message| refuse(output, message))?;
    // The host said what its pipeline sends: nothing else runs here, its
    // init included.
    let runner = TaskRunner::allowing(h.functions);
    if let Some(init) = &h.init {
        run_init(init, &runner, output)?;
    }
    Ok(runner)
}

/// The buffers of a session, reused from task to task: no allocation per
/// frame.
#[derive(Default)]
struct Buffers {
    out: Vec<u8>,
    values: Vec<u8>,
    errors: Vec<(u32, WireError)>,
}

/// Runs one `Task` frame's items and writes their `Result` frame.
fn answer(
    runner: &mut TaskRunner,
    output: &mut impl Write,
    bufs: &mut Buffers,
    (id, chain, node): (u64, Vec<Call>, &str),
    indices: &[u8],
    inboxes: InboxesView<'_>,
) -> Result<(), ProtocolError> {
    if indices.len() % 8 != 0 {
        let message = format!(
            "packed indices of {} bytes (not a multiple of 8)",
            indices.len()
        );
        return Err(refuse(output, message));
    }
    let items;
    let results = match inboxes {
        InboxesView::Single(packed) => {
            bufs.values.clear();
            bufs.errors.clear();
            runner.run_packed(
                chain,
                node,
                indices,
                packed,
                &mut bufs.values,
                &mut bufs.errors,
            );
            ResultsRef::Packed {
                values: &bufs.values,
                errors: &bufs.errors,
            }
        }
        InboxesView::Many(many) => {
            let indices = unpack_indices(indices);
            items = runner.run(chain, node, &indices, WireInboxes::Many(many));
            ResultsRef::Items(&items)
        }
    };
    write_frame_with(output, &mut bufs.out, &FrameRef::Result { id, results })
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
    let mut runner = handshake(&mut input, &mut output, plugins)?;
    let mut inbuf = Vec::new();
    let mut bufs = Buffers::default();
    let ended = loop {
        for buf in [&mut inbuf, &mut bufs.out, &mut bufs.values] {
            release_large(buf);
        }
        let frame = read_frame_with::<FrameView<'_>>(&mut input, &mut inbuf, MAX_FRAME);
        match frame {
            Ok(FrameView::Task {
                id,
                chain,
                node,
                indices,
                inboxes,
            }) => answer(
                &mut runner,
                &mut output,
                &mut bufs,
                (id, chain, &node),
                indices,
                inboxes,
            )?,
            Ok(FrameView::Shutdown) | Err(ProtocolError::Closed) => break Ok(()),
            Err(e) => break Err(e),
            Ok(other) => {
                let message = format!("unexpected frame from the host: {other:?}");
                return Err(refuse(&mut output, message));
            }
        }
    };
    // The host is done with this worker: complete compressed outputs, and
    // remove the named pipes of items no reader took (their serving
    // threads end with this process).
    crate::hooks::run(crate::hooks::When::SessionEnd);
    ended
}

#[cfg(test)]
mod tests;
