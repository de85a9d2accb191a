//! The wire protocol between a host and its process or remote workers.
//!
//! Frames are a 4-byte big-endian length followed by a MessagePack map (see
//! `docs/protocol.md`). Maps are encoded with field names, so a newer minor
//! version may add fields that an older peer ignores; a different major
//! version is refused in the handshake by both sides.

mod error;
mod frame;
mod framing;
mod hello;
pub mod serve;
mod wire;

pub use error::ProtocolError;
pub use frame::{Frame, FrameRef, FrameView, InboxesRef, InboxesView, ResultsRef};
pub use framing::{
    decode_payload, read_frame, read_frame_bytes, read_frame_with, release_large, write_frame,
    write_frame_tail, write_frame_with, MAX_FRAME,
};
pub use hello::{
    skip_to_greeting, Hello, Signature, SignatureParam, GREETING, INIT_ID, MAJOR, MINOR,
};
pub use papy_sdk::packed;
pub use wire::{Call, WireError, WireInboxes, WireResults, MAX_PEER_MESSAGE, MAX_PEER_PATH};

/// Set in the environment of worker children (`stdio` for process and
/// remote pools, `redis` for a broker pool's local workers): the worker
/// side of the protocol reads it; a process that has it refuses to start
/// pools of its own (no fork bombs).
pub const WORKER_ENV: &str = "PAPY_WORKER";

/// The worker hook: when this process was started as a papy worker
/// (`PAPY_WORKER=stdio` in its environment, set by process pools), serve
/// tasks on stdin/stdout and exit; otherwise return at once.
///
/// Call it first in `main`, like PaPy's `if __name__ == '__main__':` guard:
/// the pool re-executes the current binary, and without the hook the child
/// would run the whole program again (papy refuses to let such a child start
/// pools of its own, so a forgotten hook is an error, never a fork bomb).
pub fn worker_main() {
    if std::env::var_os(WORKER_ENV).is_some_and(|v| v == "stdio") {
        if let Err(e) = serve::serve_stdio(Vec::new()) {
            eprintln!("papy worker: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests;
