//! `#[worker]` registration, lookup by name, arguments and imports.

use papy::registry::{self, lookup};
use papy::{worker, Error, ErrorKind, Value, Worker};

papy::module!("reg_test_module");

mod alpha {
    use papy::worker;
    /// Alpha's version.
    #[worker]
    pub(crate) fn same_name(x: i64) -> i64 {
        x + 1
    }
}

mod beta {
    use papy::worker;
    /// Beta's version.
    #[worker]
    pub(crate) fn same_name(x: i64) -> i64 {
        x + 2
    }
}

/// Greets someone; `punct` is optional.
#[worker(name = "greetings.hello")]
fn hello(who: String, greeting: String, punct: Option<String>) -> String {
    format!("{greeting}, {who}{}", punct.unwrap_or_default())
}

/// Needs a module that exists only as the second alternative.
#[worker(imports = ["no_such_module_x, reg_test_module", "papy"])]
fn needs_alternative(x: i64) -> i64 {
    x
}

/// Needs a module that does not exist.
#[worker(imports = ["no_such_module_y"])]
fn needs_missing(x: i64) -> i64 {
    x
}

/// Same, but forgiven.
#[worker(imports = ["no_such_module_z"], forgive)]
fn needs_missing_forgiven(x: i64) -> i64 {
    x
}

/// Two inputs.
#[worker]
fn pair_up((a, b): (String, i64)) -> String {
    format!("{a}{b}")
}

/// Raw form.
#[worker(raw)]
fn raw_len(inbox: &[Value], args: &[Value]) -> Result<Value, String> {
    Ok(Value::Int((inbox.len() + args.len()) as i64))
}

#[test]
fn lookup_by_full_and_short_name_and_ambiguity() {
    let f = lookup("registry.alpha.same_name").unwrap();
    assert_eq!(f.doc, "Alpha's version.");
    assert_eq!(
        lookup("beta::same_name").unwrap().name,
        "registry.beta.same_name"
    );
    match lookup("same_name") {
        Err(Error::AmbiguousWorker { candidates, .. }) => {
            assert_eq!(
                candidates,
                ["registry.alpha.same_name", "registry.beta.same_name"]
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(Worker::new("same_name")
        .unwrap_err()
        .to_string()
        .contains("ambiguous"));
}

#[test]
fn name_override_and_arguments_by_position_or_name() {
    assert_eq!(lookup("hello").unwrap().name, "greetings.hello");
    let w = Worker::with_args("greetings.hello", ["Hi"]).unwrap();
    assert_eq!(
        w.call(&[Value::from("Ann")]).unwrap(),
        Value::from("Hi, Ann")
    );
    let w = Worker::with_named("hello", [("punct", "!"), ("greeting", "Yo")]).unwrap();
    assert_eq!(
        w.call(&[Value::from("Bob")]).unwrap(),
        Value::from("Yo, Bob!")
    );
    let err = Worker::new("hello").unwrap_err().to_string();
    assert!(err.contains("missing argument `greeting`"), "{err}");
}

#[test]
fn imports_resolve_alternatives_fail_or_warn() {
    assert!(Worker::new("needs_alternative").is_ok());
    let err = Worker::new("needs_missing").unwrap_err();
    match &err {
        Error::Import {
            module, searched, ..
        } => {
            assert_eq!(module, "no_such_module_y");
            assert!(searched.contains("registered modules"), "{searched}");
        }
        other => panic!("{other:?}"),
    }
    let f = lookup("needs_missing_forgiven").unwrap();
    assert!(f.forgive);
    let warnings = registry::resolve_imports(&f).unwrap();
    assert!(warnings[0].contains("no_such_module_z"));
    assert!(Worker::new("needs_missing_forgiven").is_ok());
}

#[test]
fn tuple_inbox_checks_arity_and_types() {
    let w = Worker::new("pair_up").unwrap();
    assert_eq!(
        w.call(&[Value::from("a"), Value::Int(1)]).unwrap(),
        Value::from("a1")
    );
    let e = w.call(&[Value::from("a")]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conversion);
    assert!(e.message().contains("expects 2 input(s)"), "{e}");
    let e = w.call(&[Value::Int(1), Value::Int(1)]).unwrap_err();
    assert!(e.message().contains("inbox[0]"), "{e}");
}

#[test]
fn raw_form_passes_inbox_and_args_through() {
    let w = Worker::with_args("raw_len", [1, 2, 3]).unwrap();
    assert_eq!(w.call(&[Value::Null, Value::Null]).unwrap(), Value::Int(5));
    assert_eq!(lookup("raw_len").unwrap().params, None);
}

#[test]
fn all_expected_names_are_registered() {
    let names: Vec<String> = registry::functions()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    for n in [
        "papy.ipasser",
        "greetings.hello",
        "registry.pair_up",
        "registry.raw_len",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let _ = hello;
    let _ = worker_is_reexported;
}

#[worker]
fn worker_is_reexported(x: bool) -> bool {
    !x
}
