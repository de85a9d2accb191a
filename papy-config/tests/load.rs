//! Loading a pipeline file as a library does: `${VAR}` expansion, `--set`
//! overrides (their positions and paths), running a whole file in one call.

use std::path::Path;

use papy::config::load::{load_file, parse};
use papy::config::{LoadOptions, Origin, Pipeline};
use papy::Value;

const FILE: &str = r#"[resources.pool]
workers = 2

[inputs.numbers]
kind = "lines"
path = "${PAPY_LOAD_TEST_DIR:-.}/numbers.txt"

[[pipers]]
name = "a"
resource = "pool"
inputs = ["numbers"]
worker = ["papy.json_loads"]

[outputs.out]
piper = "a"
"#;

fn write(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("numbers.txt"), "1\n2\n3\n").expect("input");
    let file = dir.join("p.toml");
    std::fs::write(&file, FILE).expect("pipeline");
    file
}

#[test]
fn a_file_runs_in_one_call_with_its_inputs() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path());
    let out = Pipeline::open(&file, &LoadOptions::default())
        .expect("opens")
        .run()
        .expect("runs");
    let got: Vec<Value> = out["a"].iter().map(|i| i.clone().expect("ok")).collect();
    assert_eq!(got, [1, 2, 3].map(Value::Int));
}

#[test]
fn variables_expand_with_their_defaults() {
    let text = "[inputs.x]\nkind = \"lines\"\npath = \"${HOME}/${PAPY_SURELY_UNSET_VAR:-fallback}.txt\"\n\n[[pipers]]\nname = \"a\"\ninputs = [\"x\"]\nworker = [\"papy.ipasser\"]\n";
    let l = parse(text, "t", Path::new("."), &LoadOptions::default()).expect("parses");
    let home = std::env::var("HOME").unwrap_or_default();
    match &l.file.inputs["x"] {
        papy::config::InputSpec::Lines { path, .. } => {
            assert_eq!(path, &format!("{home}/fallback.txt"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn set_paths_are_relative_to_the_working_directory_and_keep_file_positions() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path());
    let cwd = std::env::current_dir().expect("cwd");
    let l = load_file(
        &file,
        &LoadOptions::with_overrides([
            "inputs.numbers.path=data/n.txt",
            "resources.pool.workers=3",
        ]),
    )
    .expect("loads");
    match &l.file.inputs["numbers"] {
        papy::config::InputSpec::Lines { path, .. } => {
            assert_eq!(Path::new(path), cwd.join("data/n.txt"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        l.file.resources["pool"].settings["workers"].as_integer(),
        Some(3)
    );
    // Keys the overrides did not touch keep their place in the user's file.
    let name = ["pipers".to_string(), "0".into(), "name".into()];
    assert_eq!(l.spans.origin(&name), Origin::File { line: 9, col: 8 });
    let workers = ["resources".to_string(), "pool".into(), "workers".into()];
    assert_eq!(
        l.spans.origin(&workers),
        Origin::Set("resources.pool.workers=3".into())
    );
}

#[test]
fn set_refuses_tables_the_file_does_not_have_unless_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path());
    let e = load_file(
        &file,
        &LoadOptions::with_overrides(["resources.pol.workers=3"]),
    )
    .expect_err("a typo");
    assert!(
        e.to_string().contains(
            "--set resources.pol.workers=3: `resources` has no `pol`; did you mean `pool`?"
        ),
        "{e}"
    );
    let options = LoadOptions {
        overrides: vec!["resources.extra.workers=3".into()],
        create: true,
    };
    let l = load_file(&file, &options).expect("--set-new adds the table");
    assert!(l.file.resources.contains_key("extra"));
}

#[test]
fn an_unknown_function_names_the_closest_one_its_resource_provides() {
    let text = "[resources.py]\nkind = \"remote\"\nremote = [{ command = \"true\", workers = 1 }]\nfunctions = [\"py.shout\"]\n\n[inputs.x]\nkind = \"lines\"\npath = \"x.txt\"\n\n[[pipers]]\nname = \"a\"\nresource = \"py\"\ninputs = [\"x\"]\nworker = [\"py.shoutt\"]\n";
    let l = parse(text, "t", Path::new("."), &LoadOptions::default()).expect("parses");
    let problems = papy::config::validate::validate(&l);
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|p| p.contains("no worker function named `py.shoutt`; did you mean `py.shout`?")),
        "{text:?}"
    );
}
