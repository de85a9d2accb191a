//! `papy list`: the registered worker functions.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use papy_core::registry;

/// Arguments of `papy list`.
#[derive(clap::Args, Default)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Load a plugin first: a file path, or a name looked up on the plugin path.
    #[arg(long = "plugin", value_name = "PLUGIN")]
    plugins: Vec<String>,
    /// A directory to look for plugins in (before PAPY_PLUGIN_PATH).
    #[arg(long = "plugin-path", value_name = "DIR")]
    plugin_path: Vec<PathBuf>,
}

/// Writes the list to `out`.
pub fn run(args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    crate::worker::load_plugins(&args.plugins, &args.plugin_path)?;
    let functions = registry::functions();
    if args.json {
        let rows: Vec<serde_json::Value> = functions
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "params": f.params.as_ref().map(|ps| ps.iter().map(|p| serde_json::json!({"name": p.name, "optional": p.optional})).collect::<Vec<_>>()),
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
                        if p.optional {
                            format!("{}?", p.name)
                        } else {
                            p.name.to_string()
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
        let doc = f.doc.lines().next().unwrap_or("");
        writeln!(out, "{}{params}{imports}\n    {doc}", f.name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_builtins_as_text_and_json() {
        let mut buf = Vec::new();
        run(&ListArgs::default(), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("papy.ipasser(inbox, i?)"), "{text}");
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
