//! Opening a plugin file: the checks made before the dynamic loader sees
//! it (already loaded, same contents, a library for this host, the
//! inspector), then `dlopen` and the entry symbol.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::loaded;
use crate::abi::{EntryFn, Manifest, ENTRY_SYMBOL};
use crate::error::PluginError;

/// An opened plugin library, never unloaded, and its manifest pointer
/// (not checked yet).
pub(super) struct Opened {
    /// The file (canonical path).
    pub(super) path: PathBuf,
    /// SHA-256 of the file, hex.
    pub(super) sha256: String,
    /// The library, leaked.
    pub(super) library: &'static libloading::Library,
    /// What the entry symbol returned.
    pub(super) manifest: *const Manifest,
}

/// Opens the plugin file at `given` and calls its entry symbol.
pub(super) fn open(given: &Path) -> Result<Opened, PluginError> {
    let path = given.canonicalize().map_err(|source| PluginError::Io {
        path: given.to_path_buf(),
        source,
    })?;
    if let Some(existing) = loaded().iter().find(|p| p.path == path) {
        return Err(PluginError::AlreadyLoaded {
            existing: existing.path.clone(),
            path,
        });
    }
    let content = std::fs::read(&path).map_err(|source| PluginError::Io {
        path: path.clone(),
        source,
    })?;
    let sha256 = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    // The same contents under another name (a copy, a hard link) are the
    // same plugin: found before the copy is opened, so its initialisers
    // never run a second time.
    if let Some(existing) = loaded().iter().find(|p| p.sha256 == sha256) {
        return Err(PluginError::AlreadyLoaded {
            existing: existing.path.clone(),
            path,
        });
    }
    precheck(&path, &content)?;
    drop(content);
    crate::inspect::inspect(&path).map_err(|message| PluginError::Inspect {
        path: path.clone(),
        message,
    })?;

    // SAFETY: loading a library runs its initialisers; papy only loads files the
    // user named as plugins (documented in docs/plugins.md).
    let library = unsafe { libloading::Library::new(&path) }.map_err(|e| PluginError::Open {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // Never unloaded, whatever happens next: even a refused plugin may have
    // run initialisers or handed out pointers.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol, if present, is the `extern "C" fn() -> *const Manifest`
    // that export_plugin! defines; its type is checked through the header below.
    let entry: EntryFn = match unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) } {
        Ok(sym) => *sym,
        Err(_) => return Err(PluginError::NotAPlugin { path }),
    };
    // SAFETY: calling the plugin's entry function; it takes no arguments and
    // returns a pointer to a manifest that lives as long as the library.
    let manifest = unsafe { entry() };
    Ok(Opened {
        path,
        sha256,
        library,
        manifest,
    })
}

fn host_architecture() -> Option<object::Architecture> {
    use object::Architecture as A;
    Some(match std::env::consts::ARCH {
        "x86_64" => A::X86_64,
        "x86" => A::I386,
        "aarch64" => A::Aarch64,
        "arm" => A::Arm,
        "riscv64" => A::Riscv64,
        "powerpc64" => A::PowerPc64,
        "s390x" => A::S390x,
        _ => return None,
    })
}

/// Checks the file before the dynamic loader sees it: a truncated or
/// foreign library can crash `dlopen` itself (SIGBUS on unmapped pages).
fn precheck(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    use object::{Object, ObjectSegment};
    let bad = |message: String| PluginError::Open {
        path: path.to_path_buf(),
        message,
    };
    let file = object::File::parse(bytes).map_err(|e| bad(format!("not a shared library: {e}")))?;
    if let Some(host) = host_architecture() {
        if file.architecture() != host {
            return Err(bad(format!(
                "built for {:?}, this host is {:?}",
                file.architecture(),
                host
            )));
        }
    }
    for seg in file.segments() {
        let (offset, size) = seg.file_range();
        if offset.saturating_add(size) > bytes.len() as u64 {
            return Err(bad(format!(
                "truncated: a segment needs bytes {offset}..{} but the file has {}",
                offset.saturating_add(size),
                bytes.len()
            )));
        }
    }
    Ok(())
}
