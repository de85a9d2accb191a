//! Builds the example and fixture plugins once per test binary (a plain
//! `cargo test` does not produce cdylib files) and says where they are.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub(crate) const PACKAGES: [&str; 9] = [
    "papy-plugin-text",
    "papy-plugin-math",
    "papy-plugin-textstats",
    "papy-fixture-bad-abi",
    "papy-fixture-not-plugin",
    "papy-fixture-abi-v1-0",
    "papy-fixture-bad-types",
    "papy-fixture-bad-batch",
    "papy-fixture-hostile",
];

/// The directory holding the built plugins (`target/debug`).
pub(crate) fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent")
            .to_path_buf();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&workspace).arg("build").arg("--quiet");
        for p in PACKAGES {
            cmd.args(["-p", p]);
        }
        cmd.arg("--target-dir").arg(&target);
        let status = cmd.status().expect("run cargo build for the plugins");
        assert!(status.success(), "building the test plugins failed");
        target.join("debug")
    })
}

/// The file of plugin library `lib` (e.g. `text`).
pub(crate) fn plugin_file(lib: &str) -> PathBuf {
    plugin_dir().join(papy_plugins::SearchPath::file_name(lib))
}
