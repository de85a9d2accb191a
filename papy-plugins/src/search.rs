//! Where plugins are looked for: explicit directories, then `PAPY_PLUGIN_PATH`.

use std::path::{Path, PathBuf};

/// The environment variable listing plugin directories (`:`-separated on Unix).
pub const ENV_VAR: &str = "PAPY_PLUGIN_PATH";

/// An ordered list of directories to look for plugins in.
///
/// ```
/// use papy_plugins::SearchPath;
/// let p = SearchPath::new(["/opt/papy/plugins"]);
/// assert_eq!(SearchPath::file_name("text"), format!("{}text{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
/// assert_eq!(p.dirs().len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The given directories, in order.
    pub fn new<P: Into<PathBuf>>(dirs: impl IntoIterator<Item = P>) -> SearchPath {
        SearchPath {
            dirs: dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// The given directories followed by those of `PAPY_PLUGIN_PATH`.
    pub fn with_env<P: Into<PathBuf>>(dirs: impl IntoIterator<Item = P>) -> SearchPath {
        let mut p = SearchPath::new(dirs);
        if let Some(v) = std::env::var_os(ENV_VAR) {
            p.dirs
                .extend(std::env::split_paths(&v).filter(|d| !d.as_os_str().is_empty()));
        }
        p
    }

    /// Adds a directory at the end.
    pub fn push(&mut self, dir: impl Into<PathBuf>) {
        self.dirs.push(dir.into());
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The platform file name of plugin `name` (`libname.so`, `libname.dylib`, `name.dll`).
    pub fn file_name(name: &str) -> String {
        format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    }

    /// The first existing file for plugin `name`.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let file = SearchPath::file_name(name);
        self.dirs
            .iter()
            .map(|d| d.join(&file))
            .find(|p| Path::is_file(p))
    }
}
