//! docs/pipeline-format.md's field table names exactly the keys the model
//! accepts, table by table, so the documentation cannot drift from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use papy_config::model::{InputSpec, NuMapSettings, OutputSpec, PiperSpec, Plugins};
use papy_core::piper::PiperOptions;

fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/pipeline-format.md");
    let text = std::fs::read_to_string(path).expect("docs/pipeline-format.md");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table = String::new();
    for line in text
        .lines()
        .skip_while(|l| !l.starts_with("## Field reference"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1] == "table" || cells[1].starts_with("---") {
            continue;
        }
        if !cells[1].is_empty() {
            table = cells[1].trim_matches('`').to_string();
        }
        for field in cells[2].split(',') {
            let f = field.trim().trim_matches('`');
            if !f.is_empty() {
                out.entry(table.clone()).or_default().insert(f.to_string());
            }
        }
    }
    out
}

fn set<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    keys.into_iter().map(str::to_string).collect()
}

#[test]
fn the_field_table_matches_the_model() {
    papy_broker::install();
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    want.insert("plugins".into(), set(Plugins::KEYS.iter().copied()));
    let mut resource = set(NuMapSettings::KEYS.iter().copied());
    for kind in papy_config::kinds::names() {
        resource.extend(set(papy_config::kinds::keys(kind)
            .unwrap_or_default()
            .iter()
            .copied()));
    }
    want.insert("resources.NAME".into(), resource);
    let mut input = set(["kind"]);
    for (_, keys) in InputSpec::KINDS {
        input.extend(set(keys.iter().copied()));
    }
    want.insert("inputs.NAME".into(), input);
    want.insert(
        "[[pipers]]".into(),
        set(PiperSpec::FRAME_KEYS
            .iter()
            .chain(PiperOptions::KEYS)
            .copied()),
    );
    want.insert("outputs.NAME".into(), set(OutputSpec::KEYS.iter().copied()));
    assert_eq!(documented(), want);
}

/// docs/protocol.md lists each error kind with its wire code, as the engine
/// numbers them.
#[test]
fn the_protocol_doc_lists_every_error_kind_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    let text = std::fs::read_to_string(path).expect("docs/protocol.md");
    let line: String = text
        .lines()
        .skip_while(|l| !l.contains("**Error kind codes:**"))
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut code = 0u8;
    while let Some(kind) = papy_core::ErrorKind::from_code(code) {
        assert!(
            line.contains(&format!("{code} {kind}")),
            "no `{code} {kind}` in: {line}"
        );
        code += 1;
    }
    assert_eq!(code, 8, "every kind was checked");
}
