//! `papy new plugin NAME`: scaffolds a plugin crate that builds and loads out of the box.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// What to create.
#[derive(clap::Subcommand)]
pub(crate) enum NewArgs {
    /// A plugin crate depending on `papy-sdk` alone: Cargo.toml (cdylib),
    /// one example worker, export_plugin!.
    Plugin {
        /// The plugin name (letters, digits, `_`; functions register as `NAME.function`).
        name: String,
        /// The directory to create the crate in (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The `papy-sdk` directory to depend on (default: the SDK this papy
        /// carries, written once under $XDG_DATA_HOME/papy, else
        /// ~/.local/share/papy).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// A script for `papy.script` (bash or Python) that reads its JSON config.
    Script {
        /// The file to write.
        path: PathBuf,
        /// bash or python.
        #[arg(long, default_value = "bash")]
        lang: String,
    },
}

/// The `papy-sdk` a new plugin depends on: `--sdk`, else the one this
/// binary carries, written once under the user's data folder
/// ([`crate::sdk`]): nothing refers to the checkout papy was built from.
/// `papy-sdk` is not published, so a plugin cannot name it by version.
fn sdk_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(dir) = given else {
        return crate::sdk::installed();
    };
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "no papy-sdk crate at {} (--sdk); pass --sdk with the papy-sdk directory of a papy checkout, or leave it out to use the SDK this papy carries",
            dir.display()
        );
    }
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

fn valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Writes what was asked for.
pub(crate) fn run(args: &NewArgs) -> anyhow::Result<()> {
    match args {
        NewArgs::Plugin { name, dir, sdk } => plugin(name, dir.as_deref(), sdk.as_deref()),
        NewArgs::Script { path, lang } => script(path, lang),
    }
}

fn script(path: &Path, lang: &str) -> anyhow::Result<()> {
    let Some(text) = papy_core::func::script::template(lang) else {
        bail!("no script template for `{lang}` (bash or python)");
    };
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {}; run it with `papy.script` and cfg.executable = \"{}\"",
        path.display(),
        if lang.starts_with('p') {
            "python3"
        } else {
            "bash"
        }
    );
    Ok(())
}

fn plugin(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> anyhow::Result<()> {
    if !valid(name) {
        bail!(
            "plugin name `{name}`: use lower-case letters, digits and `_`, starting with a letter"
        );
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = sdk_dir(sdk)?;
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let deps = format!("papy-sdk = {{ path = {:?} }}\n", sdk.display().to_string());
    let cargo = format!(
        "[package]\nname = \"papy-plugin-{pkg}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\nname = \"{name}\"\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n{deps}\n\
         # A crate of its own, even inside another workspace.\n[workspace]\n",
        pkg = name.replace('_', "-"),
    );
    let lib = format!(
        r#"//! The `{name}` papy plugin. Build it with `cargo build --release`, then
//! load it with `papy list --plugin target/release/lib{name}.so` or list it
//! under `[plugins]` in a pipeline file.

use papy_sdk::worker;

/// Greets `who`; `greeting` defaults to "Hello".
#[worker]
fn greet(who: String, greeting: Option<String>) -> String {{
    format!("{{}}, {{who}}!", greeting.as_deref().unwrap_or("Hello"))
}}

papy_sdk::export_plugin!(name = "{name}", version = "0.1.0");
"#
    );
    std::fs::write(dir.join("Cargo.toml"), cargo).context("writing Cargo.toml")?;
    std::fs::write(dir.join("src/lib.rs"), lib).context("writing src/lib.rs")?;
    println!(
        "created plugin `{name}` in {}\n  cd {} && cargo build --release\n  papy list --plugin {}/target/release/{}",
        dir.display(),
        dir.display(),
        dir.display(),
        papy_plugins::SearchPath::file_name(name)
    );
    Ok(())
}
