//! Built-in worker functions and stream helpers (PaPy's `util.func` and
//! `util.script`), registered under `papy.` so pipeline files can name them.
//!
//! | module | what it holds |
//! |---|---|
//! | [`codec`] | opening files by extension: plain, gzip (`.gz`), zstd (`.zst`) |
//! | [`effects`] | what a chain's built-ins reach outside their items (programs, directories, sockets): the permissions a worker needs |
//! | [`read`] | stream readers used as pipeline inputs: lines (optionally followed like `tail -f`), JSON Lines, delimited records, MessagePack |
//! | [`write`](mod@write) | the matching writers: `papy.dump_lines`, `papy.dump_jsonl`, `papy.dump_stream`, `papy.dump_msgpack` |
//! | `items` (feature `items`) | items passed by reference: `papy.dump_item` / `papy.load_item` over a file, a named pipe or a socket, and memory maps |
//! | `script` (feature `scripts`) | `papy.script`: an external program per item, with a JSON config |
//! | (registered only) | `papy.json_dumps`, `papy.json_loads`, `papy.msgpack_dumps`, `papy.msgpack_loads`, `papy.print`, the passers `papy.ipasser`... |
//!
//! Features of `papy-core` (all on in the `papy` binary, all off by
//! default so that a library needing none of them builds none of their
//! dependencies): `compress` (gzip and zstd streams), `items` (`dump_item` /
//! `load_item`: files, named pipes, sockets, memory maps) and `scripts`
//! (`papy.script`, which runs external programs).

pub mod codec;
mod compress;
pub mod effects;
#[cfg(feature = "items")]
pub mod items;
mod passers;
pub mod read;
#[cfg(feature = "scripts")]
pub mod script;
mod serial;
pub mod write;

use crate::value::Value;

/// `inbox[0]`, or an error for an empty inbox: the value most built-ins work on.
fn first(inbox: &[Value]) -> Result<&Value, String> {
    inbox.first().ok_or_else(|| "empty inbox".to_string())
}
