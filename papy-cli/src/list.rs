//! `papy list`: the registered worker functions (with `--plugin`, only
//! those of the plugins named, unless `--all`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use papy_core::registry;

/// Arguments of `papy list`.
#[derive(clap::Args, Default)]
pub(crate) struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Load a plugin first: a file path, a directory (every plugin in it), or
    /// a name looked up on the plugin path.
    #[arg(long = "plugin", value_name = "PLUGIN")]
    plugins: Vec<String>,
    /// A directory to look for plugins in (before PAPY_PLUGIN_PATH).
    #[arg(long = "plugin-path", value_name = "DIR")]
    plugin_path: Vec<PathBuf>,
    /// With `--plugin`: list every function, the built-ins included, not
    /// only those of the plugins named.
    #[arg(long)]
    all: bool,
}

/// Writes the list to `out`.
pub(crate) fn run(args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let named = crate::worker::load_plugins(&args.plugins, &args.plugin_path)?;
    let mut functions = registry::functions();
    if !args.plugins.is_empty() && !args.all {
        functions.retain(|f| named.iter().any(|p| p.functions().contains(&f.name)));
    }
    if args.json {
        let rows: Vec<serde_json::Value> = functions
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "params": f.params.as_ref().map(|ps| ps.iter().map(|p| serde_json::json!({"name": p.name, "optional": p.optional, "type": (!p.ty.is_empty()).then_some(p.ty)})).collect::<Vec<_>>()),
                    "inputs": f.inputs,
                    "imports": f.imports,
                    "forgive": f.forgive,
                    "doc": f.doc,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &rows).context("writing JSON")?;
        writeln!(out)?;
        return Ok(());
    }
    for f in &functions {
        let params = match &f.params {
            None => "(inbox, *args)".to_string(),
            Some(ps) if ps.is_empty() => "(inbox)".to_string(),
            Some(ps) => {
                let names: Vec<String> = ps
                    .iter()
                    .map(|p| {
                        let q = if p.optional { "?" } else { "" };
                        match p.ty {
                            "" => format!("{}{q}", p.name),
                            ty => format!("{}{q}: {ty}", p.name),
                        }
                    })
                    .collect();
                format!("(inbox, {})", names.join(", "))
            }
        };
        let imports = if f.imports.is_empty() {
            String::new()
        } else {
            format!(
                "  imports: {}{}",
                f.imports.join("; "),
                if f.forgive { " (forgive)" } else { "" }
            )
        };
        let doc = first_paragraph(&f.doc);
        writeln!(out, "{}{params}{imports}\n    {doc}", f.name)?;
    }
    Ok(())
}

/// The first paragraph of a doc comment on one line, rustdoc links
/// (`[`x`](path)`, `[`x`]`) shown as their text.
fn first_paragraph(doc: &str) -> String {
    let para: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let text = para.join(" ");
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '[' if !in_code => match rest.find(']') {
                Some(close) => {
                    out.push_str(&rest[..close]);
                    rest = &rest[close + 1..];
                    // Drop a `(target)` right after the link text.
                    if rest.starts_with('(') {
                        if let Some(end) = rest.find(')') {
                            rest = &rest[end + 1..];
                        }
                    }
                }
                None => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_builtins_as_text_and_json() {
        let mut buf = Vec::new();
        run(&ListArgs::default(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("papy.ipasser(inbox, i?: Option<usize>)"),
            "{text}"
        );
        let mut buf = Vec::new();
        run(
            &ListArgs {
                json: true,
                ..ListArgs::default()
            },
            &mut buf,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "papy.sjoiner"));
    }

    #[test]
    fn docs_show_their_first_paragraph_without_link_syntax() {
        let doc = "Loads the item whose locator is `inbox[0]`\n(see [`dump_item`](crate::func::items::dump_item) and [`Value`]).\n\nMore.";
        assert_eq!(
            first_paragraph(doc),
            "Loads the item whose locator is `inbox[0]` (see `dump_item` and `Value`)."
        );
    }

    #[test]
    fn a_missing_plugin_file_is_named_as_a_file() {
        let args = ListArgs {
            plugins: vec!["./nothere.so".into()],
            ..ListArgs::default()
        };
        let err = format!("{:#}", run(&args, &mut Vec::new()).unwrap_err());
        assert!(err.contains("loading plugin file `./nothere.so`"), "{err}");
        assert!(!err.contains("lib./nothere"), "{err}");
    }

    #[test]
    fn a_missing_plugin_is_a_clear_error() {
        let args = ListArgs {
            plugins: vec!["no_such_plugin_anywhere".into()],
            plugin_path: vec!["/nonexistent".into()],
            ..ListArgs::default()
        };
        let err = format!("{:#}", run(&args, &mut Vec::new()).unwrap_err());
        assert!(
            err.contains("no_such_plugin_anywhere") && err.contains("/nonexistent"),
            "{err}"
        );
    }
}
