//! Every import points down: the modules of papy-core and the crates of
//! the workspace only name what is below them, in the order written in
//! shared/DESIGN.md ("Where the layout is"). A new upward import fails
//! here, naming the file, the line and both layers.

use std::path::{Path, PathBuf};

/// papy-core's layers, top first. A module may name its own layer and
/// those below. `func` (the built-in library) sits beside the engine: it
/// may name any layer, and none may name it (the engine reaches it only
/// through `hooks`).
const LAYERS: &[&[&str]] = &[
    &["plumber"],
    &["dagger"],
    &["piper"],
    &["numap"],
    &["pool"],
    &["job"],
    &["protocol"],
    &["permissions"],
    &["worker"],
    &["registry"],
    &[
        "sync",
        "os",
        "limits",
        "error",
        "run_key",
        "stats",
        "chaos",
        "hooks",
        "value",
        "catch",
        "worker_state",
        "quiet_caught_panics",
    ],
];

/// The workspace's crates, top first.
const CRATES: &[&str] = &[
    "papy_cli",
    "papy_broker",
    "papy_config",
    "papy_plugins",
    "papy_core",
    "papy_sdk",
    "papy_macros",
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line: without a trailing `//` comment and without the
/// text of its string literals, empty for a comment line.
fn code(line: &str) -> String {
    let t = line.trim_start();
    if t.starts_with("//") {
        return String::new();
    }
    let line = line.split(" //").next().unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in line.chars() {
        match (in_str, c) {
            (true, '\\') if !escaped => escaped = true,
            (true, '"') if !escaped => {
                in_str = false;
                out.push(c);
            }
            (true, _) => escaped = false,
            (false, '"') => {
                in_str = true;
                out.push(c);
            }
            (false, _) => out.push(c),
        }
    }
    out
}

/// The first path segments after each `prefix` on `line` (`crate::a::X`
/// gives `a`; `crate::{a::X, b}` gives `a` and `b`).
fn named_after(line: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut first = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        first = true;
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if first && depth == 0 {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                    } else if !item.is_empty() {
                        out.push(std::mem::take(&mut item));
                        first = false;
                    }
                }
            }
            if first && !item.is_empty() {
                out.push(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// The upward imports of papy-core's modules, as messages.
fn core_violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(src)
            .unwrap_or(&f)
            .to_string_lossy()
            .to_string();
        let top = rel.split('/').next().unwrap_or("").trim_end_matches(".rs");
        if top == "lib" || top == "func" {
            continue;
        }
        let Some(own) = layer(top) else {
            bad.push(format!("{rel}: module `{top}` has no layer in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            for name in named_after(&code(line), "crate::") {
                if name == top {
                    continue;
                }
                match (name.as_str(), layer(&name)) {
                    ("func", _) => bad.push(format!(
                        "{rel}:{}: `{top}` names the built-in library `func` (register a hook instead)",
                        n + 1
                    )),
                    (_, Some(l)) if l < own => bad.push(format!(
                        "{rel}:{}: `{top}` names `{name}`, a layer above it",
                        n + 1
                    )),
                    (_, Some(_)) => {}
                    (_, None) => bad.push(format!(
                        "{rel}:{}: `{top}` names `crate::{name}`, which has no layer (name the module it comes from)",
                        n + 1
                    )),
                }
            }
        }
    }
    bad
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_import_of_papy_core_points_down() {
    let bad = core_violations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        bad.is_empty(),
        "imports against the layer order:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_crate_names_only_crates_below_it() {
    let mut bad = Vec::new();
    for (i, krate) in CRATES.iter().enumerate() {
        let dir = workspace().join(krate.replace('_', "-")).join("src");
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                let line = code(line);
                let line = line.as_str();
                for (j, other) in CRATES.iter().enumerate() {
                    let named = line.contains(&format!("{other}::"))
                        || line.contains(&format!("use {other};"));
                    if j < i && named {
                        bad.push(format!("{}:{}: {krate} names {other}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "crates naming a crate above them:\n{}",
        bad.join("\n")
    );
}

#[test]
fn an_upward_import_is_caught() {
    // The check itself: a module of a lower layer naming a higher one, or
    // the engine naming `func`, is reported; a downward one is not.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("job")).unwrap();
    std::fs::write(
        dir.path().join("job/mod.rs"),
        "use crate::protocol::Frame;\nuse crate::{error::Item, numap::NuMap};\n// crate::plumber in a comment\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plumber.rs"),
        "fn f() { crate::func::write::finish_all_logged(); }\n",
    )
    .unwrap();
    let bad = core_violations(dir.path());
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(
        bad[0].contains("`job` names `numap`") || bad[1].contains("`job` names `numap`"),
        "{bad:#?}"
    );
    assert!(
        bad.iter()
            .any(|b| b.contains("names the built-in library `func`")),
        "{bad:#?}"
    );
}

/// The sibling files (and folders) each file of `dir` names through
/// `prefix` (`super::` in a module's folder, `crate::` at a crate's root).
fn sibling_imports(dir: &Path, prefix: &str) -> Vec<(String, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let names: Vec<String> = files.iter().map(|p| stem(p)).collect();
    files
        .iter()
        .filter(|p| !matches!(stem(p).as_str(), "mod" | "tests" | "lib" | "main"))
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let mut named: Vec<String> = text
                .lines()
                .flat_map(|l| named_after(&code(l), prefix))
                .filter(|n| names.contains(n) && *n != stem(p) && n != "tests")
                .collect();
            named.sort();
            named.dedup();
            (stem(p), named)
        })
        .collect()
}

/// A loop among `edges` (file -> files it names), if there is one.
fn a_loop(edges: &[(String, Vec<String>)]) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        edges: &[(String, Vec<String>)],
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if done.iter().any(|d| d == at) {
            return None;
        }
        path.push(at.to_string());
        let next = edges
            .iter()
            .find(|(f, _)| f == at)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        for n in next {
            if let Some(c) = visit(&n, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(at.to_string());
        None
    }
    let mut done = Vec::new();
    for (f, _) in edges {
        if let Some(c) = visit(f, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_two_files_of_a_module_import_each_other() {
    let mut loops = Vec::new();
    for krate in CRATES {
        let src = workspace().join(krate.replace('_', "-")).join("src");
        let mut dirs = vec![src.clone()];
        while let Some(d) = dirs.pop() {
            if let Ok(entries) = std::fs::read_dir(&d) {
                dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            let prefix = if d == src { "crate::" } else { "super::" };
            if let Some(c) = a_loop(&sibling_imports(&d, prefix)) {
                loops.push(format!("{}: {}", d.display(), c.join(" -> ")));
            }
        }
    }
    assert!(
        loops.is_empty(),
        "files importing each other:\n{}",
        loops.join("\n")
    );
}

#[test]
fn a_loop_between_files_is_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rs"), "use super::b::B;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use super::c::C;\n").unwrap();
    std::fs::write(dir.path().join("c.rs"), "fn f() { super::a::g() }\n").unwrap();
    let found = a_loop(&sibling_imports(dir.path(), "super::")).expect("a loop");
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4, "{found:?}");
    std::fs::write(dir.path().join("c.rs"), "// super::a in a comment\n").unwrap();
    assert_eq!(a_loop(&sibling_imports(dir.path(), "super::")), None);
}
