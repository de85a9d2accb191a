//! Loading plugins: listing, calling, pipelines mixing built-in and plugin
//! functions, panics, and every ABI failure path.

mod support;

use papy_core::{registry, Dagger, ErrorKind, NuMap, Piper, Plumber, Source, Value, Worker};
use papy_plugins::{load, PluginError};
use std::sync::{Arc, OnceLock};
use support::plugin_file;

fn text_and_math() -> (Arc<papy_plugins::Plugin>, Arc<papy_plugins::Plugin>) {
    static P: OnceLock<(Arc<papy_plugins::Plugin>, Arc<papy_plugins::Plugin>)> = OnceLock::new();
    P.get_or_init(|| {
        (
            load(plugin_file("text")).expect("load text"),
            load(plugin_file("math")).expect("load math"),
        )
    })
    .clone()
}

#[test]
fn functions_are_listed_with_metadata() {
    let (text, math) = text_and_math();
    assert_eq!(text.name(), "text");
    assert_eq!(text.version(), "0.1.0");
    assert_eq!(math.version(), env!("CARGO_PKG_VERSION"));
    assert!(
        text.rustc_version().starts_with("rustc "),
        "{}",
        text.rustc_version()
    );
    assert_eq!(text.sha256().len(), 64);
    for f in [
        "text.tokenize",
        "text.lowercase",
        "text.word_counts",
        "text.l33t",
    ] {
        assert!(
            text.functions().iter().any(|n| n == f),
            "{f} in {:?}",
            text.functions()
        );
    }
    let scale = registry::lookup("math.scale").unwrap();
    assert_eq!(scale.doc, "Multiplies by `factor`.");
    assert_eq!(scale.params.as_ref().map(|p| p[0].name), Some("factor"));
    assert!(
        registry::lookup("math.papy.ipasser").is_err(),
        "built-ins are not re-exported"
    );
}

#[test]
fn calls_convert_arguments_and_results() {
    text_and_math();
    let w = Worker::with_named("math.scale", [("factor", 2.5)]).unwrap();
    assert_eq!(w.call(&[Value::Float(2.0)]).unwrap(), Value::Float(5.0));
    let w = Worker::new("text.tokenize")
        .unwrap()
        .then(Worker::new("text.word_counts").unwrap());
    let counts = w.call(&[Value::from("a b a")]).unwrap();
    assert_eq!(counts.get("a"), Some(&Value::Int(2)));
    let e = Worker::new("text.lowercase")
        .unwrap()
        .call(&[Value::Int(3)])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Function);
    assert!(e.message().contains("got int"), "{e}");
    let e = Worker::new("math.square")
        .unwrap()
        .call(&[Value::from("x")])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conversion);
}

#[test]
fn plugin_panic_becomes_an_error_item_and_the_host_goes_on() {
    text_and_math();
    let w = Worker::new("math.fragile").unwrap();
    let e = w.call(&[Value::Int(-3)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic);
    assert!(e.message().contains("negative number: -3"), "{e}");
    assert_eq!(w.call(&[Value::Int(4)]).unwrap(), Value::Int(4));
}

#[test]
fn pipeline_mixing_builtin_and_plugin_functions_on_threads() {
    text_and_math();
    for workers in [1, 2] {
        let m = NuMap::builder().workers(workers).stride(3).build().unwrap();
        let mut d = Dagger::new();
        let sq = Worker::new("math.square").unwrap();
        d.add_piper(Piper::new("square", sq).parallel(&m)).unwrap();
        d.add_piper(Piper::new("fragile", Worker::new("math.fragile").unwrap()).parallel(&m))
            .unwrap();
        let show = Worker::with_args("papy.njoiner", [Value::Null, Value::from("")]).unwrap();
        d.add_piper(Piper::new("show", show)).unwrap();
        d.add_pipe(["square", "fragile", "show"]).unwrap();
        let mut p = Plumber::new(d);
        let out = p.collect("show").unwrap();
        p.start([("square", Source::values(0..20i64))]).unwrap();
        p.run().unwrap();
        assert!(p.wait(None).unwrap());
        let got: Vec<Value> = out.take().into_iter().map(|r| r.unwrap()).collect();
        let want: Vec<Value> = (0..20i64)
            .map(|x| Value::from((x * x).to_string()))
            .collect();
        assert_eq!(got, want);
    }
}

#[test]
fn loading_the_same_file_twice_or_a_copy_of_it_is_already_loaded() {
    let (text, _) = text_and_math();
    match load(text.path()) {
        Err(PluginError::AlreadyLoaded { path, existing }) => {
            assert_eq!(path, text.path());
            assert_eq!(existing, text.path());
        }
        other => panic!("{other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(papy_plugins::SearchPath::file_name("text"));
    std::fs::copy(plugin_file("text"), &copy).unwrap();
    match load(&copy) {
        Err(PluginError::AlreadyLoaded { path, existing }) => {
            assert_eq!(path, copy.canonicalize().unwrap());
            assert_eq!(existing, text.path());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_plugin_with_the_same_name_is_refused() {
    text_and_math();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join(papy_plugins::SearchPath::file_name("text"));
    // Other contents (bytes after the last segment), the same plugin name.
    let mut bytes = std::fs::read(plugin_file("text")).unwrap();
    bytes.extend_from_slice(b"another build");
    std::fs::write(&other, bytes).unwrap();
    let err = load(&other).unwrap_err();
    assert!(
        matches!(err, PluginError::DuplicateName { ref name, .. } if name == "text"),
        "{err}"
    );
}

#[test]
fn a_library_without_the_entry_symbol_is_not_a_plugin() {
    let err = load(plugin_file("papy_fixture_not_plugin")).unwrap_err();
    assert!(matches!(err, PluginError::NotAPlugin { .. }), "{err}");
    assert!(err.to_string().contains("is not a papy plugin"));
}

#[test]
fn batch_calls_give_what_single_calls_give_errors_and_panics_included() {
    let (_, _math) = text_and_math();
    let f = registry::lookup("math.fragile").expect("fragile");
    assert!(
        f.batch.is_some(),
        "an ABI 1.2 plugin has a batch entry point"
    );
    let fragile = Worker::new("math.fragile").expect("fragile");
    let scale = Worker::with_args("math.scale", [Value::Float(2.5)]).expect("scale");
    let inputs: Vec<[papy_core::Item; 1]> = vec![
        [Ok(Value::Int(3))],
        [Ok(Value::Int(-1))],
        [Err(papy_core::ItemError::new(ErrorKind::Input, "upstream"))],
        [Ok(Value::Int(7))],
        [Ok(Value::Str("x".into()))],
    ];
    for w in [&fragile, &scale] {
        let mut batch = Vec::new();
        w.eval_batch(
            inputs.len(),
            |i| &inputs[i][..],
            |i| 10 + i as u64,
            "n",
            &mut batch,
        );
        let single: Vec<papy_core::Item> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| w.eval(&x[..], "n", 10 + i as u64))
            .collect();
        assert_eq!(batch.len(), single.len());
        for (b, s) in batch.iter().zip(&single) {
            match (b, s) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(x), Err(y)) => {
                    assert_eq!(x.kind(), y.kind(), "{x} vs {y}");
                    assert_eq!(x.message(), y.message());
                    assert_eq!(x.index(), y.index());
                    assert_eq!(x.function(), y.function());
                }
                other => panic!("batch and single calls differ: {other:?}"),
            }
        }
    }
    let mut out = Vec::new();
    fragile.eval_batch(
        inputs.len(),
        |i| &inputs[i][..],
        |i| i as u64,
        "n",
        &mut out,
    );
    assert_eq!(out[0], Ok(Value::Int(3)));
    assert_eq!(out[1].as_ref().map_err(|e| e.kind()), Err(ErrorKind::Panic));
    assert_eq!(out[2].as_ref().map_err(|e| e.kind()), Err(ErrorKind::Input));
}

#[test]
fn a_batch_answered_short_fails_its_items_and_nothing_else() {
    load(plugin_file("papy_fixture_bad_batch")).expect("a 1.2 plugin loads");
    let w = Worker::new("bad_batch.f").expect("f");
    let inputs: Vec<[papy_core::Item; 1]> = (0..3).map(|i| [Ok(Value::Int(i))]).collect();
    let mut out = Vec::new();
    w.eval_batch(3, |i| &inputs[i][..], |i| i as u64, "n", &mut out);
    assert_eq!(out.len(), 3);
    for (i, r) in out.iter().enumerate() {
        let e = r.as_ref().expect_err("no result from a short batch");
        assert_eq!(e.kind(), ErrorKind::Conversion);
        assert!(
            e.message().contains("answered a batch of 3 with 1 bytes"),
            "{e}"
        );
        assert_eq!(e.index(), Some(i as u64));
    }
}

#[test]
fn a_plugin_built_for_abi_1_0_loads_with_parameters_of_unknown_type() {
    let p = load(plugin_file("papy_fixture_abi_v1_0")).expect("a 1.0 plugin loads");
    assert_eq!(p.functions(), ["abi_v1_0.f".to_string()]);
    let f = registry::lookup("abi_v1_0.f").expect("registered");
    let params = f.params.as_ref().expect("typed parameters");
    assert_eq!(params[0].name, "factor");
    assert_eq!(params[0].ty, "", "1.0 manifests carry no types");
}

#[test]
fn a_parameter_type_table_of_the_wrong_length_is_refused() {
    let err = load(plugin_file("papy_fixture_bad_types")).unwrap_err();
    assert!(matches!(err, PluginError::InvalidManifest { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("the parameter type table is longer than the parameter tables"),
        "{err}"
    );
    assert!(
        registry::lookup("bad_types.f").is_err(),
        "nothing registered"
    );
}

#[test]
fn plugin_parameters_carry_their_types() {
    let (_, _math) = text_and_math();
    let f = registry::lookup("math.scale").expect("math.scale");
    let params = f.params.as_ref().expect("typed parameters");
    assert_eq!((params[0].name, params[0].ty), ("factor", "f64"));
}

#[test]
fn a_plugin_for_another_abi_major_is_refused() {
    let err = load(plugin_file("papy_fixture_bad_abi")).unwrap_err();
    match &err {
        PluginError::AbiMismatch {
            found, expected, ..
        } => {
            assert_eq!(*found, (999, 7));
            assert_eq!(*expected, papy_plugins::abi::ABI_MAJOR);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("ABI 999.7"), "{err}");
}

#[test]
fn a_truncated_library_and_a_text_file_fail_to_open() {
    let dir = std::env::temp_dir().join(format!("papy-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(plugin_file("math")).unwrap();
    let truncated = dir.join("libtruncated.so");
    std::fs::write(&truncated, &bytes[..4096.min(bytes.len())]).unwrap();
    let err = load(&truncated).unwrap_err();
    assert!(matches!(err, PluginError::Open { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let text = dir.join("libnotes.so");
    std::fs::write(&text, "just some text\n").unwrap();
    assert!(matches!(load(&text), Err(PluginError::Open { .. })));
    assert!(matches!(
        load(dir.join("missing.so")),
        Err(PluginError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_the_inspector_refuses_is_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().canonicalize().unwrap();
    let file = marker.join(papy_plugins::SearchPath::file_name("papy_fixture_hostile"));
    std::fs::copy(plugin_file("papy_fixture_hostile"), &file).unwrap();
    // Only this test's directory is refused: other tests of this binary load on.
    let refused = marker.clone();
    papy_plugins::set_inspector(Some(Arc::new(move |p: &std::path::Path| {
        if p.starts_with(&refused) {
            Err("refused by the test".to_string())
        } else {
            Ok(())
        }
    })));
    let err = load(&file).unwrap_err();
    papy_plugins::set_inspector(None);
    assert!(
        matches!(err, PluginError::Inspect { ref path, .. } if *path == file),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert!(papy_plugins::plugin("hostile").is_none());
}
