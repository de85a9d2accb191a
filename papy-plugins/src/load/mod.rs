//! The host side: loading plugin files, checking their manifest, and
//! registering their workers as `plugin_name.worker`.
//!
//! Rules: the header (magic, ABI major, size) is checked before anything
//! else is read; every string is copied; every buffer the plugin returns is
//! freed with the plugin's own `free`; a library is never unloaded (Rust
//! code cannot be unloaded safely: thread-locals, leaked statics and
//! registered function pointers would dangle); the same file is not loaded
//! twice, nor two plugins of the same name.

mod call;
mod manifest;
mod open;
mod table;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use papy_core::registry::{self, Function, ImportResolver};

use crate::abi::MAX_NAME_LEN;
use crate::error::PluginError;
use crate::search::SearchPath;
use manifest::{invalid, read_str};

/// A loaded plugin (kept for the life of the process).
#[derive(Debug)]
pub struct Plugin {
    name: String,
    version: String,
    papy_version: String,
    rustc_version: String,
    path: PathBuf,
    sha256: String,
    functions: Vec<String>,
    _library: &'static libloading::Library,
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The plugin's version.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The papy version it was built with.
    pub fn papy_version(&self) -> &str {
        &self.papy_version
    }
    /// The rustc that built it.
    pub fn rustc_version(&self) -> &str {
        &self.rustc_version
    }
    /// The file (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// SHA-256 of the file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The registered names of its workers (`plugin.worker`).
    pub fn functions(&self) -> &[String] {
        &self.functions
    }
}

fn loaded() -> MutexGuard<'static, Vec<Arc<Plugin>>> {
    static LOADED: Mutex<Vec<Arc<Plugin>>> = Mutex::new(Vec::new());
    LOADED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every plugin loaded in this process.
pub fn plugins() -> Vec<Arc<Plugin>> {
    loaded().clone()
}

/// The loaded plugin named `name`.
pub fn plugin(name: &str) -> Option<Arc<Plugin>> {
    loaded().iter().find(|p| p.name == name).cloned()
}

/// Registers a plugin's functions, all or nothing: every name is checked
/// before any is registered. Returns their names.
fn register(name: &str, functions: Vec<Function>) -> Result<Vec<String>, PluginError> {
    // All or nothing: refuse before registering anything.
    if let Some(taken) = functions.iter().find(|f| registry::contains(&f.name)) {
        return Err(PluginError::Register {
            name: name.to_string(),
            source: papy_core::Error::Config(format!(
                "a worker function named `{}` is already registered",
                taken.name
            )),
        });
    }
    let mut names = Vec::with_capacity(functions.len());
    for f in functions {
        let n = f.name.clone();
        registry::register(f).map_err(|source| PluginError::Register {
            name: name.to_string(),
            source,
        })?;
        names.push(n);
    }
    Ok(names)
}

/// Loads a plugin file and registers its workers as `plugin_name.worker`:
/// open it, check its manifest, copy its worker table, register.
///
/// # Errors
/// A [`PluginError`] saying what is wrong with the file.
pub fn load(path: impl AsRef<Path>) -> Result<Arc<Plugin>, PluginError> {
    let open::Opened {
        path,
        sha256,
        library,
        manifest,
    } = open::open(path.as_ref())?;
    let checked = manifest::check(&path, manifest)?;
    let m = checked.manifest;
    let name = read_str(&path, "the plugin name", m.name, MAX_NAME_LEN)?;
    if name.is_empty() || name.contains(['.', ':']) || name.contains(char::is_control) {
        return Err(PluginError::InvalidManifest {
            path,
            message: format!("invalid plugin name `{name}`"),
        });
    }
    if let Some(existing) = plugin(&name) {
        return Err(PluginError::DuplicateName {
            name,
            existing: existing.path.clone(),
            path,
        });
    }
    let version = read_str(&path, "the version", m.version, MAX_NAME_LEN)?;
    let papy_version = read_str(&path, "the papy version", m.papy_version, MAX_NAME_LEN)?;
    let rustc_version = read_str(&path, "the rustc version", m.rustc_version, MAX_NAME_LEN)?;
    let Some(free) = m.free else {
        return Err(invalid(&path, "the free function is a null pointer".into()));
    };
    let functions = table::functions(&path, &name, checked, free)?;
    let names = register(&name, functions)?;
    registry::register_module(&name);
    registry::record_module_hash(&name, &sha256);
    let plugin = Arc::new(Plugin {
        name,
        version,
        papy_version,
        rustc_version,
        path,
        sha256,
        functions: names,
        _library: library,
    });
    tracing::info!(
        "loaded plugin `{}` {} from {} ({} workers)",
        plugin.name,
        plugin.version,
        plugin.path.display(),
        plugin.functions.len()
    );
    loaded().push(plugin.clone());
    Ok(plugin)
}

/// Loads plugin `name` from the search path (or returns it if already loaded).
///
/// # Errors
/// [`PluginError::NotFound`] with the directories searched, or a load error.
pub fn load_by_name(name: &str, path: &SearchPath) -> Result<Arc<Plugin>, PluginError> {
    if let Some(p) = plugin(name) {
        return Ok(p);
    }
    match path.find(name) {
        Some(file) => load(file),
        None => Err(PluginError::NotFound {
            name: name.to_string(),
            file: SearchPath::file_name(name),
            searched: path.dirs().to_vec(),
        }),
    }
}

/// Resolves `imports` by loading plugins of that name from a search path.
#[derive(Debug, Clone)]
pub struct PluginResolver {
    path: SearchPath,
}

impl PluginResolver {
    /// A resolver over `path`.
    pub fn new(path: SearchPath) -> PluginResolver {
        PluginResolver { path }
    }
}

impl ImportResolver for PluginResolver {
    fn resolve(&self, module: &str) -> Result<bool, String> {
        if plugin(module).is_some() {
            return Ok(true);
        }
        match self.path.find(module) {
            None => Ok(false),
            Some(file) => load(file).map(|_| true).map_err(|e| e.to_string()),
        }
    }

    fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .path
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!(
            "plugin search path [{}]",
            if dirs.is_empty() {
                "empty".to_string()
            } else {
                dirs.join(", ")
            }
        )
    }
}

/// Makes `imports` load plugins from `path` on demand in this process.
pub fn install_resolver(path: SearchPath) {
    registry::add_import_resolver(Arc::new(PluginResolver::new(path)));
}
