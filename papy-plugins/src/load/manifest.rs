//! Checking a plugin's manifest: the header (magic, ABI major, size)
//! before anything else is read, what its ABI minor version adds, and its
//! strings and tables, each bounded, checked and copied.

use std::path::Path;

use crate::abi::{
    CallFn, Manifest, ManifestExt, ManifestExt2, ManifestHeader, StrRef, ABI_MAJOR, MAGIC,
    MAX_TABLE_LEN,
};
use crate::error::PluginError;

/// A manifest that passed its header checks, with what its ABI minor
/// version adds.
pub(super) struct Checked {
    /// The manifest (lives as long as its library: for ever).
    pub(super) manifest: &'static Manifest,
    /// ABI 1.1: the parameters' types, in table order.
    pub(super) types: Option<std::slice::Iter<'static, StrRef>>,
    /// ABI 1.2: the batch call shim.
    pub(super) call_batch: Option<CallFn>,
}

/// Checks the manifest at `ptr` (what the entry symbol returned).
pub(super) fn check(path: &Path, ptr: *const Manifest) -> Result<Checked, PluginError> {
    if ptr.is_null() {
        return Err(PluginError::InvalidManifest {
            path: path.to_path_buf(),
            message: "the entry symbol returned a null manifest".into(),
        });
    }
    if !ptr.is_aligned() || !ptr.cast::<ManifestExt2>().is_aligned() {
        return Err(PluginError::InvalidManifest {
            path: path.to_path_buf(),
            message: "the manifest pointer is not aligned".into(),
        });
    }
    // SAFETY: every manifest starts with a ManifestHeader (repr(C)); reading
    // only the header is valid for any ABI version, and nothing else is read
    // until magic, major and size are checked.
    let header: ManifestHeader = unsafe { std::ptr::read(ptr.cast::<ManifestHeader>()) };
    if header.magic != MAGIC {
        return Err(PluginError::BadMagic {
            path: path.to_path_buf(),
            found: header.magic,
        });
    }
    if header.abi_major != ABI_MAJOR {
        return Err(PluginError::AbiMismatch {
            path: path.to_path_buf(),
            found: (header.abi_major, header.abi_minor),
            expected: ABI_MAJOR,
        });
    }
    if header.size < std::mem::size_of::<Manifest>() {
        return Err(PluginError::ManifestTooSmall {
            path: path.to_path_buf(),
            found: header.size,
            expected: std::mem::size_of::<Manifest>(),
        });
    }
    // SAFETY: magic, major and size match this host's Manifest layout.
    let m: &Manifest = unsafe { &*ptr };
    // ABI 1.1: the parameters' types follow the manifest, when the plugin
    // says so in both its minor version and its size.
    let types: Option<std::slice::Iter<'_, StrRef>> =
        if header.abi_minor >= 1 && header.size >= std::mem::size_of::<ManifestExt>() {
            // SAFETY: the plugin declares a manifest of at least
            // `size_of::<ManifestExt>()` bytes at `ptr` (checked above), laid out
            // as a ManifestExt (repr(C), the 1.0 manifest first).
            let ext: &ManifestExt = unsafe { &*ptr.cast::<ManifestExt>() };
            let table = array(
                path,
                "the parameter type table",
                ext.param_types,
                ext.param_types_len,
            )?;
            Some(table.iter())
        } else {
            None
        };
    // ABI 1.2: a batch call shim follows, when the plugin says so.
    let call_batch: Option<CallFn> =
        if header.abi_minor >= 2 && header.size >= std::mem::size_of::<ManifestExt2>() {
            // SAFETY: the plugin declares a manifest of at least
            // `size_of::<ManifestExt2>()` bytes at `ptr` (checked just above),
            // laid out as a ManifestExt2 (repr(C), the older manifests first).
            let ext: &ManifestExt2 = unsafe { &*ptr.cast::<ManifestExt2>() };
            match ext.call_batch {
                Some(f) => Some(f),
                None => {
                    return Err(invalid(
                        path,
                        "the batch call shim is a null pointer".into(),
                    ))
                }
            }
        } else {
            None
        };
    Ok(Checked {
        manifest: m,
        types,
        call_batch,
    })
}

pub(super) fn invalid(path: &Path, message: String) -> PluginError {
    PluginError::InvalidManifest {
        path: path.to_path_buf(),
        message,
    }
}

/// A manifest string of at most `max` bytes, checked before it is read.
pub(super) fn read_str(
    path: &Path,
    what: &str,
    s: StrRef,
    max: usize,
) -> Result<String, PluginError> {
    if s.len == 0 {
        return Ok(String::new());
    }
    if s.len > max {
        return Err(invalid(
            path,
            format!("{what} is {} bytes long (at most {max})", s.len),
        ));
    }
    if s.ptr.is_null() {
        return Err(invalid(path, format!("{what} is a null pointer")));
    }
    // SAFETY: the manifest passed its magic/ABI/size checks, so `s` is a StrRef
    // written by export.rs: `len` bytes at `ptr` (bounded just above),
    // leaked for the life of the library.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr.cast::<u8>(), s.len) };
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid(path, format!("{what} is not UTF-8")))
}

/// A manifest table of at most [`MAX_TABLE_LEN`] entries, its pointer
/// checked for null and alignment before a slice is made of it.
pub(super) fn array<'a, T>(
    path: &Path,
    what: &str,
    ptr: *const T,
    len: usize,
) -> Result<&'a [T], PluginError> {
    if len == 0 {
        return Ok(&[]);
    }
    if len > MAX_TABLE_LEN {
        return Err(invalid(
            path,
            format!("{what} has {len} entries (at most {MAX_TABLE_LEN})"),
        ));
    }
    if ptr.is_null() {
        return Err(invalid(
            path,
            format!("{what} is a null pointer with {len} entries"),
        ));
    }
    if !ptr.is_aligned() {
        return Err(invalid(path, format!("{what} is not aligned")));
    }
    // SAFETY: as in `read_str`: a table of `len` entries leaked by the
    // plugin; `len` is bounded (so `len * size_of::<T>()` cannot overflow)
    // and the pointer is non-null and aligned.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}
