//! What the functions this process runs may reach outside their items:
//! programs, files, the network.
//!
//! A task names its functions and their arguments, so whoever can send a
//! worker a task (its host, a Redis stream's writer, an ssh key restricted
//! to `papy worker --stdio`) chooses what runs and on which paths. The
//! built-ins with outside effects (`papy.script`, the `papy.dump_*`
//! writers, `papy.dump_item`, `papy.load_item` with a `dir`) ask this
//! module at the point of the effect, with the path they are about to
//! touch, so no argument can route around the check.
//!
//! A process allows everything until it says otherwise: a program using
//! the library is its own host and trusts its own pipelines. `papy worker`
//! sets [`Permissions::none`] plus what its flags grant (`--allow-scripts`,
//! `--allow-files DIR`, `--allow-network`).
//!
//! ```
//! use papy_core::permissions::{self, Permissions};
//! let dir = std::env::temp_dir();
//! let p = Permissions::none().allow_files_in(&dir).unwrap();
//! assert!(p.check_file(&dir.join("out.txt")).is_ok());
//! assert!(p.check_file(std::path::Path::new("/etc/passwd")).is_err());
//! assert!(p.check_programs("papy.script").is_err());
//! ```

use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

/// A refused effect: what was asked and the flag that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// A function that starts programs, in a process without `--allow-scripts`.
    #[error("`{0}` runs external programs, and this worker was not started with --allow-scripts")]
    Programs(String),
    /// A path outside every directory this process may touch.
    #[error("{path} is outside the directories this worker may touch ({allowed}); start it with --allow-files DIR")]
    File {
        /// The path asked for, as given.
        path: String,
        /// The allowed directories, or `none`.
        allowed: String,
    },
    /// A path that cannot be resolved (its folder does not exist).
    #[error("{path} cannot be checked against this worker's --allow-files: {reason}")]
    Unresolved {
        /// The path asked for, as given.
        path: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// A socket, in a process without `--allow-network`.
    #[error("{0} opens a network socket, and this worker was not started with --allow-network")]
    Network(String),
}

/// Where files may be read and written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Files {
    Anywhere,
    /// Inside these directories (resolved when granted).
    Within(Vec<PathBuf>),
}

/// The effects a process allows the functions it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    programs: bool,
    files: Files,
    network: bool,
}

impl Permissions {
    /// Everything: a program using the library, by default.
    pub fn all() -> Permissions {
        Permissions {
            programs: true,
            files: Files::Anywhere,
            network: true,
        }
    }

    /// Nothing outside the items: `papy worker` before its flags.
    pub fn none() -> Permissions {
        Permissions {
            programs: false,
            files: Files::Within(Vec::new()),
            network: false,
        }
    }

    setters! {
        /// Also (or no longer) functions that start programs (`papy.script`).
        #[must_use]
        allow_programs(yes: bool) => programs = yes;
        /// Also sockets (`papy.dump_item` with `kind = "socket"`).
        #[must_use]
        allow_network(yes: bool) => network = yes;
    }

    /// Also files inside `dir` (resolved now, symbolic links followed).
    ///
    /// # Errors
    /// `dir` does not exist or is not a directory.
    pub fn allow_files_in(mut self, dir: impl AsRef<Path>) -> std::io::Result<Permissions> {
        let dir = dir.as_ref();
        let resolved = dir.canonicalize()?;
        if !resolved.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        if let Files::Within(dirs) = &mut self.files {
            if !dirs.contains(&resolved) {
                dirs.push(resolved);
            }
        }
        Ok(self)
    }

    /// Whether `function` may run here, as far as programs go.
    ///
    /// # Errors
    /// It starts programs and this process may not.
    pub fn check_programs(&self, function: &str) -> Result<(), Denied> {
        if !self.programs && runs_programs(function) {
            return Err(Denied::Programs(
                crate::error::quote_peer(function).into_owned(),
            ));
        }
        Ok(())
    }

    /// Whether `path` (a file to write or read, or a directory to make
    /// files in; relative to the working directory) lies inside a directory
    /// this process may touch, once resolved: `..` and symbolic links
    /// cannot lead out.
    ///
    /// # Errors
    /// It lies outside, or its folder does not exist.
    pub fn check_file(&self, path: &Path) -> Result<(), Denied> {
        let Files::Within(dirs) = &self.files else {
            return Ok(());
        };
        let shown = || crate::error::quote_peer(&path.display().to_string()).into_owned();
        let denied = || Denied::File {
            path: shown(),
            allowed: if dirs.is_empty() {
                "none".into()
            } else {
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        };
        if dirs.is_empty() {
            return Err(denied());
        }
        let resolved = resolve(path).map_err(|reason| Denied::Unresolved {
            path: shown(),
            reason,
        })?;
        if dirs.iter().any(|d| resolved.starts_with(d)) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// Whether a socket may be opened.
    ///
    /// # Errors
    /// This process may not open sockets.
    pub fn check_network(&self, what: &str) -> Result<(), Denied> {
        if self.network {
            Ok(())
        } else {
            Err(Denied::Network(what.to_string()))
        }
    }
}

/// `path` made absolute with symbolic links resolved: the path itself when
/// it exists, else its folder (which must exist) joined with its name.
fn resolve(path: &Path) -> Result<PathBuf, String> {
    if let Ok(p) = path.canonicalize() {
        return Ok(p);
    }
    // A file about to be made: its folder must exist; its name cannot climb.
    let name = match path.components().next_back() {
        Some(Component::Normal(n)) => n.to_owned(),
        _ => return Err("it does not name a file".into()),
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let folder = parent
        .canonicalize()
        .map_err(|e| format!("its folder: {e}"))?;
    Ok(folder.join(name))
}

/// `true` for the registered functions that start external programs
/// (`papy.script`).
pub fn runs_programs(function: &str) -> bool {
    crate::registry::normalise(function) == "papy.script"
}

/// This process's permissions; `None` = [`Permissions::all`].
static CURRENT: RwLock<Option<Permissions>> = RwLock::new(None);

/// Sets what the functions this process runs may reach (for the rest of
/// its life, unless set again).
pub fn set(p: Permissions) {
    let mut current = CURRENT.write().unwrap_or_else(|e| e.into_inner());
    *current = Some(p);
}

/// This process's permissions.
pub fn current() -> Permissions {
    CURRENT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(Permissions::all)
}

/// [`Permissions::check_programs`] against this process's permissions.
///
/// # Errors
/// As there.
pub fn check_programs(function: &str) -> Result<(), Denied> {
    with(|p| p.check_programs(function))
}

/// [`Permissions::check_file`] against this process's permissions.
///
/// # Errors
/// As there.
pub fn check_file(path: &Path) -> Result<(), Denied> {
    with(|p| p.check_file(path))
}

/// [`Permissions::check_network`] against this process's permissions.
///
/// # Errors
/// As there.
pub fn check_network(what: &str) -> Result<(), Denied> {
    with(|p| p.check_network(what))
}

fn with<T>(f: impl FnOnce(&Permissions) -> T) -> T {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    match current.as_ref() {
        Some(p) => f(p),
        None => f(&Permissions::all()),
    }
}

#[cfg(test)]
mod tests;
