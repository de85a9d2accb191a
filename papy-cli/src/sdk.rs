//! The plugin SDK carried by the `papy` binary: the sources of `papy-sdk`
//! and `papy-macros`, written once under the user's data folder
//! (`$XDG_DATA_HOME/papy/sdk-VERSION-HASH`, else
//! `~/.local/share/papy/...`), so that a plugin made by `papy new plugin`
//! builds with no reference to the checkout papy was built from (an
//! installed papy keeps working after the clone is deleted).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The version of the SDK (the workspace's).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `(path, contents)` of each file at `path` (from the workspace's root).
macro_rules! carried {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../", $path)))),*]
    };
}

/// `(path in the SDK folder, contents)` of every file written.
const SOURCES: &[(&str, &str)] = carried![
    "papy-sdk/build.rs",
    "papy-sdk/src/abi.rs",
    "papy-sdk/src/error.rs",
    "papy-sdk/src/export.rs",
    "papy-sdk/src/lib.rs",
    "papy-sdk/src/packed.rs",
    "papy-sdk/src/packed/skip.rs",
    "papy-sdk/src/registry.rs",
    "papy-sdk/src/state.rs",
    "papy-sdk/src/unwind.rs",
    "papy-sdk/src/value.rs",
    "papy-macros/src/lib.rs",
];

/// The manifests: the workspace's, with its inherited values written out
/// (the dependencies' versions are the workspace's).
fn manifests() -> [(&'static str, String); 2] {
    [
        (
            "papy-sdk/Cargo.toml",
            format!(
                "[package]\nname = \"papy-sdk\"\nversion = \"{VERSION}\"\nedition = \"2021\"\npublish = false\nbuild = \"build.rs\"\n\n\
                 [dependencies]\npapy-macros = {{ path = \"../papy-macros\", version = \"{VERSION}\" }}\n\
                 serde = {{ version = \"1\", features = [\"rc\"] }}\nserde-value = \"0.7\"\ninventory = \"0.3\"\nthiserror = \"2\"\n"
            ),
        ),
        (
            "papy-macros/Cargo.toml",
            format!(
                "[package]\nname = \"papy-macros\"\nversion = \"{VERSION}\"\nedition = \"2021\"\npublish = false\n\n\
                 [lib]\nproc-macro = true\n\n\
                 [dependencies]\nsyn = {{ version = \"2\", features = [\"full\"] }}\nquote = \"1\"\nproc-macro2 = \"1\"\n"
            ),
        ),
    ]
}

/// FNV-1a of every file, so a binary with other sources never reuses a
/// folder written by another.
fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let manifests = manifests();
    let files = SOURCES
        .iter()
        .map(|(p, t)| (*p, *t))
        .chain(manifests.iter().map(|(p, t)| (*p, t.as_str())));
    for (path, text) in files {
        for b in path.bytes().chain([0]).chain(text.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The user's data folder for papy: `$XDG_DATA_HOME/papy`, else
/// `$HOME/.local/share/papy`.
fn data_dir() -> Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = nonempty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d).join("papy"));
    }
    let home = nonempty("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set: pass --sdk with a papy-sdk directory")?;
    Ok(PathBuf::from(home).join(".local/share/papy"))
}

/// The `papy-sdk` directory of the SDK this binary carries, written first
/// if it is not there yet (into a fresh folder, then renamed, so a folder
/// that exists is complete).
///
/// # Errors
/// The data folder cannot be found or written.
pub(crate) fn installed() -> Result<PathBuf> {
    let root = data_dir()?;
    let dir = root.join(format!("sdk-{VERSION}-{:016x}", fingerprint()));
    if !dir.join("papy-sdk/Cargo.toml").is_file() {
        write(&root, &dir)?;
    }
    Ok(dir.join("papy-sdk"))
}

fn write(root: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!(".sdk-{}-{}", std::process::id(), fingerprint()));
    let _ = std::fs::remove_dir_all(&tmp);
    let manifests = manifests();
    let files = SOURCES
        .iter()
        .map(|(p, t)| (*p, *t))
        .chain(manifests.iter().map(|(p, t)| (*p, t.as_str())));
    for (path, text) in files {
        let file = tmp.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another papy wrote it meanwhile: theirs is as good.
        Err(_) if dir.join("papy-sdk/Cargo.toml").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e).with_context(|| format!("writing the papy SDK to {}", dir.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of papy-sdk and papy-macros is carried: a file
    /// added there must be added to `SOURCES`. Their unit tests (`tests.rs`
    /// beside a module) are not: a `#[cfg(test)]` module's file is only read
    /// when the SDK itself is tested.
    #[test]
    fn every_sdk_source_is_carried() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut dirs = vec!["papy-sdk/src".to_string(), "papy-macros/src".to_string()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(root.join(&dir)).unwrap() {
                let e = e.unwrap();
                let name = format!("{dir}/{}", e.file_name().to_string_lossy());
                if e.file_type().unwrap().is_dir() {
                    dirs.push(name);
                } else if !name.ends_with("/tests.rs") {
                    assert!(
                        SOURCES.iter().any(|(p, _)| *p == name),
                        "{name} is not in sdk::SOURCES"
                    );
                }
            }
        }
    }
}
