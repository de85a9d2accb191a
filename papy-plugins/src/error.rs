//! Errors of loading plugins: each says what was wrong with which file.

use std::path::PathBuf;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin `{}`: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The dynamic loader refused the file.
    #[error("cannot load `{}` as a shared library (wrong architecture, corrupt or truncated file?): {message}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The library has no papy entry symbol.
    #[error("`{}` is not a papy plugin: it has no `papy_plugin_manifest` symbol (did it call papy_plugins::export_plugin!?)", .path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The manifest does not start with papy's magic number.
    #[error("`{}` is not a papy plugin: its manifest has the wrong magic number {found:#x}", .path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic found.
        found: u64,
    },
    /// The plugin was built for another major version of the ABI.
    #[error("plugin `{}` uses plugin ABI {}.{}, this host needs ABI {}.x: rebuild the plugin against this papy", .path.display(), .found.0, .found.1, .expected)]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// (major, minor) found.
        found: (u32, u32),
        /// The host's major.
        expected: u32,
    },
    /// The manifest is smaller than this host's (an older minor version).
    #[error("plugin `{}` has a manifest of {found} bytes, this host needs {expected}: rebuild the plugin", .path.display())]
    ManifestTooSmall {
        /// The file.
        path: PathBuf,
        /// Size found.
        found: usize,
        /// Size expected.
        expected: usize,
    },
    /// The manifest is malformed (null pointers, invalid UTF-8...).
    #[error("plugin `{}` has an invalid manifest: {message}", .path.display())]
    InvalidManifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The installed [`Inspector`](crate::Inspector) refused the file
    /// before it was opened here (the `papy` binary's: opening it in a
    /// child process crashed, or did not finish).
    #[error("plugin `{}` {message}", .path.display())]
    Inspect {
        /// The file.
        path: PathBuf,
        /// What the inspector found.
        message: String,
    },
    /// This file, or a file with the same contents, is already loaded
    /// (callers that load a plugin "if needed" take this as success).
    #[error("plugin `{}` is already loaded (from `{}`)", .path.display(), .existing.display())]
    AlreadyLoaded {
        /// The file asked for (canonical).
        path: PathBuf,
        /// The file loaded first (the same path, or a copy of its contents).
        existing: PathBuf,
    },
    /// Another file already provided a plugin of this name.
    #[error("a plugin named `{name}` is already loaded from `{}`; refusing `{}`", .existing.display(), .path.display())]
    DuplicateName {
        /// The plugin name.
        name: String,
        /// The file loaded first.
        existing: PathBuf,
        /// The refused file.
        path: PathBuf,
    },
    /// A plugin function could not be registered.
    #[error("plugin `{name}`: {source}")]
    Register {
        /// The plugin name.
        name: String,
        /// The registry's error.
        source: papy_core::Error,
    },
    /// No file for a plugin name on the search path.
    #[error("no plugin named `{name}` ({file}) in the search path: {}", searched_list(.searched))]
    NotFound {
        /// The plugin name.
        name: String,
        /// The file name looked for.
        file: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
}

fn searched_list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        "(empty: give a plugin directory or set PAPY_PLUGIN_PATH)".to_string()
    } else {
        let dirs: Vec<String> = dirs.iter().map(|p| p.display().to_string()).collect();
        // A build with CARGO_TARGET_DIR set puts the plugin elsewhere.
        format!(
            "{} (add the folder that has it to PAPY_PLUGIN_PATH)",
            dirs.join(", ")
        )
    }
}
