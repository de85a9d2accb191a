//! Loading the plugins a file names (`[plugins]`).

use std::path::PathBuf;

use crate::load::Loaded;
use crate::problem::Problem;

/// The plugin search path: the file's `[plugins] paths`, then `PAPY_PLUGIN_PATH`.
pub fn search_path(l: &Loaded) -> papy_plugins::SearchPath {
    papy_plugins::SearchPath::with_env(l.file.plugins.paths.iter().map(|p| l.resolve(p)))
}

/// Loads the file's plugins (and installs the import resolver): one
/// problem per plugin that cannot be loaded, at its entry in the file.
pub fn load_plugins(l: &Loaded) -> Vec<Problem> {
    let search = search_path(l);
    let mut problems = Vec::new();
    for (i, p) in l.file.plugins.load.iter().enumerate() {
        let path: PathBuf = l.resolve(p);
        let r = if p.contains('/') || path.is_file() {
            papy_plugins::load(&path).map(|_| ())
        } else {
            papy_plugins::load_by_name(p, &search).map(|_| ())
        };
        match r {
            Ok(()) | Err(papy_plugins::PluginError::AlreadyLoaded { .. }) => {}
            Err(e) => problems.push(l.spans.at(
                &["plugins".into(), "load".into(), i.to_string()],
                e.to_string(),
            )),
        }
    }
    papy_plugins::install_resolver(search);
    problems
}
