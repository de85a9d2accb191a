//! `file` items: a new file (mode 0600), removed when loaded unless told
//! otherwise; loadable through a memory map.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use super::payload::{decode, Payload};
use super::trust::{is_ours, trust_path};
use super::{
    capacity, check_len, int_field, io_err, new_path, path_value, str_field, DumpOptions, Dumped,
    ItemsError, LoadOptions,
};
use crate::value::Value;

/// Writes `payload` to a new file.
pub(super) fn dump(
    payload: &Payload,
    opts: &DumpOptions,
    locator: impl Fn(&str, Vec<(&str, Value)>) -> Value,
) -> Result<Dumped, ItemsError> {
    let mut f = new_path(opts, "file")?;
    f.write_all(payload.bytes())
        .and_then(|()| f.flush())
        .map_err(io_err(format!("writing {}", f.path().display())))?;
    let (_, path) = f
        .keep()
        .map_err(|e| io_err("keeping the item file")(e.error))?;
    Ok(Dumped {
        locator: locator("file", vec![("path", path_value(&path))]),
        server: None,
    })
}

/// Reads a file item (through a map when asked), removing it when this run
/// made it.
pub(super) fn load(
    locator: &Value,
    opts: &LoadOptions,
    codec: &str,
    len: u64,
) -> Result<Value, ItemsError> {
    let path = str_field(locator, "path")?;
    let ours = trust_path(locator, path, opts)?;
    let v = if opts.mmap {
        map(locator).and_then(|m| decode(codec, &m))
    } else {
        open_regular(path)
            .and_then(|f| read_bounded(f, len, path))
            .and_then(|bytes| {
                check_len(&bytes, len, path)?;
                decode(codec, &bytes)
            })
    };
    // Removed whether or not it could be read, when this run made
    // it: a broken item file is not left behind either.
    if ours && opts.remove && Path::new(path).exists() {
        remove(locator)?;
    }
    v
}

/// Opens a file item: a regular file (not a device, a pipe or a
/// directory), checked on the open file itself.
fn open_regular(path: &str) -> Result<std::fs::File, ItemsError> {
    // Non-blocking and without following a last symlink: opening a named
    // pipe or a device must not wait or act before the check below (a
    // regular file reads the same with O_NONBLOCK).
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NONBLOCK | libc::O_NOFOLLOW);
    let f = o.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return ItemsError::Untrusted(format!(
                "{path} is a symbolic link; a file item is a regular file"
            ));
        }
        io_err(format!("opening {path}"))(e)
    })?;
    let meta = f.metadata().map_err(io_err(format!("reading {path}")))?;
    if !meta.is_file() {
        return Err(ItemsError::Untrusted(format!(
            "{path} is not a regular file; a file item is one"
        )));
    }
    Ok(f)
}

/// Reads at most `len` bytes (one more tells a longer source).
pub(super) fn read_bounded(r: impl Read, len: u64, what: &str) -> Result<Vec<u8>, ItemsError> {
    let mut bytes = Vec::with_capacity(capacity(len));
    r.take(len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err(format!("reading {what}")))?;
    Ok(bytes)
}

/// Maps a file item into memory, read-only, without copying it: the
/// zero-copy way for a function to read a large payload (the file stays in
/// place; remove it with [`remove`] when done).
///
/// # Errors
/// The locator is not a file item, or the file cannot be mapped.
pub fn map(locator: &Value) -> Result<memmap2::Mmap, ItemsError> {
    let kind = str_field(locator, "kind")?;
    if kind != "file" {
        return Err(ItemsError::Locator(format!(
            "only file items can be memory-mapped, this is a {kind} item"
        )));
    }
    let path = str_field(locator, "path")?;
    // Only files this run made: a map of a file another program can
    // truncate faults (SIGBUS) when read past the new end.
    if !is_ours(locator) {
        return Err(ItemsError::Untrusted(format!(
            "`{}` was not dumped by this run; only such files are memory-mapped",
            crate::error::quote_peer(path)
        )));
    }
    let f = open_regular(path)?;
    // SAFETY: the map is read-only and this run made the file for this
    // item alone (its locator's MAC says so: mode 0600, unique name); if
    // another program truncates it anyway, reading the map may fault, as
    // docs/security.md says.
    let m = unsafe { memmap2::Mmap::map(&f) }.map_err(io_err(format!("mapping {path}")))?;
    check_len(&m, int_field(locator, "len")?, path)?;
    Ok(m)
}

/// Removes a file item's file (what [`load`](super::load) does unless told otherwise).
///
/// # Errors
/// The locator is not an authentic file item (this run's MAC), or the file
/// cannot be removed.
pub fn remove(locator: &Value) -> Result<(), ItemsError> {
    let path = str_field(locator, "path")?;
    if !is_ours(locator) {
        return Err(ItemsError::Untrusted(format!(
            "`{}` was not dumped into this run's item folder; it is not removed",
            crate::error::quote_peer(path)
        )));
    }
    std::fs::remove_file(path).map_err(io_err(format!("removing {path}")))
}
