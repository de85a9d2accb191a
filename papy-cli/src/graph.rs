//! `papy graph FILE`: the DAG as DOT or Mermaid.

use std::path::PathBuf;
use std::process::ExitCode;

use papy_config::model::{PipelineFile, PiperSpec};

use crate::pipeline;

/// Output syntax.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Arguments of `papy graph`.
#[derive(clap::Args)]
pub(crate) struct GraphArgs {
    /// The pipeline file (TOML).
    file: PathBuf,
    /// dot or mermaid.
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Prints the graph.
pub(crate) fn run(args: &GraphArgs) -> ExitCode {
    let l = match pipeline::load(&args.file) {
        Ok(l) => l,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(1);
        }
    };
    print!("{}", render(&l.file, args.format));
    ExitCode::SUCCESS
}

/// The graph of `f` in `format`: its inputs, pipers and outputs.
fn render(f: &PipelineFile, format: GraphFormat) -> String {
    let pipers: Vec<&str> = f.pipers.iter().map(|p| p.name.as_str()).collect();
    let mut out = String::new();
    match format {
        GraphFormat::Dot => out.push_str("digraph papy {\n  rankdir=LR;\n"),
        GraphFormat::Mermaid => out.push_str("flowchart LR\n"),
    }
    for name in f.inputs.keys() {
        match format {
            GraphFormat::Dot => out.push_str(&format!(
                "  \"in:{}\" [shape=cds, label=\"{}\"];\n",
                esc(name),
                esc(name)
            )),
            GraphFormat::Mermaid => out.push_str(&format!("  in_{name}>\"{name}\"]\n")),
        }
    }
    for p in &f.pipers {
        piper(&mut out, format, p, &pipers);
    }
    // Outputs: a node per output, fed by its piper.
    for (name, o) in &f.outputs {
        let target = if o.path == "-" {
            "stdout".to_string()
        } else {
            o.path.clone()
        };
        match format {
            GraphFormat::Dot => out.push_str(&format!(
                "  \"out:{n}\" [shape=note, label=\"{n}\\n{t}\"];\n  \"{p}\" -> \"out:{n}\";\n",
                n = esc(name),
                t = esc(&target),
                p = esc(&o.piper)
            )),
            GraphFormat::Mermaid => out.push_str(&format!(
                "  out_{name}[/\"{name}<br/>{target}\"/]\n  {} --> out_{name}\n",
                o.piper
            )),
        }
    }
    if let GraphFormat::Dot = format {
        out.push_str("}\n");
    }
    out
}

/// A piper's node (its chain and resource) and the edges into it.
fn piper(out: &mut String, format: GraphFormat, s: &PiperSpec, pipers: &[&str]) {
    let chain: Vec<String> = s.worker.iter().map(|c| c.function.clone()).collect();
    let res = s.resource.clone().unwrap_or_else(|| "linear".to_string());
    let name = &s.name;
    match format {
        GraphFormat::Dot => out.push_str(&format!(
            "  \"{}\" [shape=box, label=\"{}\\n{}\\n[{}]\"];\n",
            esc(name),
            esc(name),
            esc(&chain.join(" > ")),
            esc(&res)
        )),
        GraphFormat::Mermaid => out.push_str(&format!(
            "  {name}[\"{name}<br/>{}<br/>[{res}]\"]\n",
            chain.join(" &gt; ")
        )),
    }
    for from in &s.inputs {
        let piped = pipers.contains(&from.as_str());
        match format {
            GraphFormat::Dot => {
                let src = if piped {
                    from.clone()
                } else {
                    format!("in:{from}")
                };
                out.push_str(&format!("  \"{}\" -> \"{}\";\n", esc(&src), esc(name)));
            }
            GraphFormat::Mermaid => {
                let src = if piped {
                    from.clone()
                } else {
                    format!("in_{from}")
                };
                out.push_str(&format!("  {src} --> {name}\n"));
            }
        }
    }
}
