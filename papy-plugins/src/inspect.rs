//! A check run on a plugin file before this process opens it.
//!
//! Opening a library runs its initialisers, and reading its manifest runs
//! its entry function: a plugin that panics or aborts there would take the
//! loading process down, whatever the loader checks afterwards. A host that
//! must survive such files (the `papy` binary does) installs an
//! [`Inspector`] that opens the file somewhere else first, in a child
//! process, and [`load`](crate::load) asks it before every file it opens.

use std::path::Path;
use std::sync::{Arc, RwLock};

/// Decides whether a plugin file is safe to open in this process: `Err`
/// carries the reason, which [`load`](crate::load) reports as
/// [`PluginError::Inspect`](crate::PluginError::Inspect).
pub type Inspector = dyn Fn(&Path) -> Result<(), String> + Send + Sync;

static INSPECTOR: RwLock<Option<Arc<Inspector>>> = RwLock::new(None);

/// Installs the check run before every plugin file this process opens
/// (replacing any earlier one).
///
/// ```
/// use std::sync::Arc;
/// papy_plugins::set_inspector(Some(Arc::new(|path: &std::path::Path| {
///     if path.to_string_lossy().contains("untrusted") {
///         Err("not from an untrusted directory".to_string())
///     } else {
///         Ok(())
///     }
/// })));
/// let err = papy_plugins::load("/srv/untrusted/libx.so").unwrap_err();
/// # // The file does not exist: the inspector only runs for files that do.
/// # assert!(matches!(err, papy_plugins::PluginError::Io { .. }));
/// papy_plugins::set_inspector(None);
/// ```
pub fn set_inspector(inspector: Option<Arc<Inspector>>) {
    *INSPECTOR
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = inspector;
}

/// Runs the installed inspector, if any, on `path`.
pub(crate) fn inspect(path: &Path) -> Result<(), String> {
    let inspector = INSPECTOR
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match inspector {
        Some(f) => f(path),
        None => Ok(()),
    }
}
