//! `papy graph FILE`: the DAG as DOT or Mermaid.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::pipeline;

/// Output syntax.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Arguments of `papy graph`.
#[derive(clap::Args)]
pub struct GraphArgs {
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
pub fn run(args: &GraphArgs) -> ExitCode {
    let l = match pipeline::load(&args.file) {
        Ok(l) => l,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(1);
        }
    };
    let f = &l.file;
    let pipers: Vec<&str> = f.pipers.iter().map(|p| p.name.as_str()).collect();
    let mut out = String::new();
    match args.format {
        GraphFormat::Dot => out.push_str("digraph papy {\n  rankdir=LR;\n"),
        GraphFormat::Mermaid => out.push_str("flowchart LR\n"),
    }
    for name in f.inputs.keys() {
        match args.format {
            GraphFormat::Dot => out.push_str(&format!(
                "  \"in:{}\" [shape=cds, label=\"{}\"];\n",
                esc(name),
                esc(name)
            )),
            GraphFormat::Mermaid => out.push_str(&format!("  in_{name}>\"{name}\"]\n")),
        }
    }
    for p in &f.pipers {
        let s = p;
        let chain: Vec<String> = s.worker.iter().map(|c| c.function.clone()).collect();
        let res = s.resource.clone().unwrap_or_else(|| "linear".to_string());
        let name = &s.name;
        match args.format {
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
        for i in &s.inputs {
            let from = i;
            let src = if pipers.contains(&from.as_str()) {
                from.clone()
            } else {
                format!("in:{from}")
            };
            match args.format {
                GraphFormat::Dot => {
                    out.push_str(&format!("  \"{}\" -> \"{}\";\n", esc(&src), esc(name)))
                }
                GraphFormat::Mermaid => {
                    let src = if pipers.contains(&from.as_str()) {
                        from.clone()
                    } else {
                        format!("in_{from}")
                    };
                    out.push_str(&format!("  {src} --> {name}\n"));
                }
            }
        }
    }
    // Outputs: a node per output, fed by its piper.
    for (name, o) in &f.outputs {
        let target = if o.path == "-" {
            "stdout".to_string()
        } else {
            o.path.clone()
        };
        match args.format {
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
    if let GraphFormat::Dot = args.format {
        out.push_str("}\n");
    }
    print!("{out}");
    ExitCode::SUCCESS
}
