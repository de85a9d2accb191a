//! The run key: a secret this process makes, or inherits from the host
//! that started it, and hands on to every worker process it starts.
//!
//! What one process of a run makes and another must trust (an item
//! locator: "read this file, then delete it") carries a MAC under this key,
//! so data that merely *looks* like a locator (an input line, a worker's
//! reply) cannot name a file to read or delete. Workers on other machines
//! (commands run through ssh) do not receive it: their locators are
//! honoured only inside an item directory the pipeline declares
//! (docs/security.md). A locator is authentic only for files inside the
//! run's item folder ([`item_root`]), since every process of the run holds
//! the key.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::sync::lock;

/// The environment variable that carries the key (64 hex digits) to a
/// worker process.
pub const RUN_KEY_ENV: &str = "PAPY_RUN_KEY";

/// This run's key: the one in [`RUN_KEY_ENV`] when this process was
/// started with one, else a fresh random one.
pub fn run_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        std::env::var(RUN_KEY_ENV)
            .ok()
            .and_then(|hex| unhex(hex.trim()))
            .unwrap_or_else(random)
    })
}

/// The key as [`RUN_KEY_ENV`] carries it.
pub fn run_key_hex() -> String {
    hex(run_key())
}

/// `bytes` as lower-case hexadecimal digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `N` bytes written as exactly `2 * N` hexadecimal digits in `s`.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

/// `N` random bytes from the operating system's generator, for keys and
/// tokens that must not be guessed.
///
/// ```
/// let a: [u8; 16] = papy_core::run_key::random();
/// let b: [u8; 16] = papy_core::run_key::random();
/// assert_ne!(a, b);
/// ```
///
/// # Panics
/// When the operating system gives no random bytes: no key made then
/// would be safe.
pub fn random<const N: usize>() -> [u8; N] {
    let mut key = [0u8; N];
    if let Err(e) = getrandom::fill(&mut key) {
        panic!("the operating system gave no random bytes: {e}");
    }
    key
}

/// The environment variable that carries the run's item folder
/// ([`item_root`]) to a worker process.
pub const ITEM_ROOT_ENV: &str = "PAPY_ITEM_ROOT";

/// The run's item folder: where `papy.dump_item` makes its files and
/// pipes unless told otherwise, and the only folder whose files an
/// authentic locator may name. A worker holds the run key (it must sign
/// what it dumps), so a MAC alone would let it sign a locator for any file
/// (`~/.ssh/id_rsa`) that another process of the run would then read and
/// remove; bound to this folder, what a locator names is always something
/// a process of this run made. Inherited from [`ITEM_ROOT_ENV`], else
/// `papy-items-PID-RANDOM` in the temporary directory; made (mode 0700)
/// by [`ensure_item_root`].
pub fn item_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| match std::env::var_os(ITEM_ROOT_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let tag = hex(&random::<6>());
            std::env::temp_dir().join(format!("papy-items-{}-{tag}", std::process::id()))
        }
    })
}

/// [`item_root`], made if it does not exist yet (readable by this user only).
///
/// # Errors
/// It cannot be made, or something other than a folder is in its place.
pub fn ensure_item_root() -> std::io::Result<&'static Path> {
    let root = item_root();
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    match b.create(root) {
        Ok(()) => Ok(root),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(root)?;
            if m.is_dir() {
                Ok(root)
            } else {
                Err(std::io::Error::other(format!(
                    "{} is not a folder",
                    root.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// The environment variable that carries the other item folders
/// ([`add_item_dir`]) to a worker process, as a JSON list.
pub const ITEM_DIRS_ENV: &str = "PAPY_ITEM_DIRS";

fn extra_dirs() -> &'static std::sync::Mutex<Vec<PathBuf>> {
    static DIRS: OnceLock<std::sync::Mutex<Vec<PathBuf>>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let inherited = std::env::var(ITEM_DIRS_ENV)
            .ok()
            .and_then(|j| serde_json::from_str::<Vec<PathBuf>>(&j).ok())
            .unwrap_or_default();
        std::sync::Mutex::new(inherited)
    })
}

/// Adds `dir` to the folders an authentic locator may name, besides
/// [`item_root`]: a `dir` the pipeline's author gave `papy.dump_item`
/// (`papy run` adds them; `dump_item` adds its own `dir` in the process
/// that dumps). Passed on to the worker processes started after.
pub fn add_item_dir(dir: &Path) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut dirs = lock(extra_dirs());
    if !dirs.contains(&dir) {
        dirs.push(dir);
    }
}

/// The folders an authentic locator may name: [`item_root`] and those of
/// [`add_item_dir`].
pub fn item_dirs() -> Vec<PathBuf> {
    let mut out = vec![item_root().to_path_buf()];
    out.extend(lock(extra_dirs()).iter().cloned());
    out
}

/// The other item folders as [`ITEM_DIRS_ENV`] carries them.
pub fn item_dirs_env() -> String {
    let dirs = lock(extra_dirs()).clone();
    serde_json::to_string(&dirs).unwrap_or_else(|_| "[]".into())
}

/// Removes this run's item folder when it is empty and this process made
/// it (a worker leaves its host's alone): for the end of a run.
pub fn remove_item_root_if_empty() {
    if std::env::var_os(ITEM_ROOT_ENV).is_none() {
        let _ = std::fs::remove_dir(item_root());
    }
}

#[cfg(test)]
mod tests;
