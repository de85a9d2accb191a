use super::*;
use crate::value::Value;

#[test]
fn hash_mismatches_are_reported() {
    record_module_hash("hashtest_mod", "aaaaaaaaaaaaaaaa");
    assert!(hash_mismatches(&[("hashtest_mod".into(), "aaaaaaaaaaaaaaaa".into())]).is_empty());
    assert!(hash_mismatches(&[("hashtest_other".into(), "bb".into())]).is_empty());
    let m = hash_mismatches(&[("hashtest_mod".into(), "bbbbbbbbbbbbbbbb".into())]);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].contains("hashtest_mod") && m[0].contains("aaaaaaaaaaaa"),
        "{m:?}"
    );
}

#[test]
fn builtins_are_registered_under_papy() {
    for name in [
        "ipasser", "npasser", "spasser", "nzipper", "szipper", "njoiner", "sjoiner", "plugger",
    ] {
        let f = lookup(name).unwrap();
        assert_eq!(f.name, format!("papy.{name}"));
        assert!(f.portable);
    }
}

#[test]
fn unknown_name_suggests_close_ones() {
    match lookup("ipaser") {
        Err(Error::UnknownWorker { suggestions, .. }) => {
            assert!(
                suggestions.contains(&"papy.ipasser".to_string()),
                "{suggestions:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn register_refuses_duplicates_and_ambiguity_is_reported() {
    let mk = |n: &str| Function::closure(n, Arc::new(|_: &[Value], _: &[Value]| Ok(Value::Null)));
    let mut a = mk("regtest_a.same");
    a.portable = true;
    register(a).unwrap();
    register(mk("regtest_b.same")).unwrap();
    assert!(register(mk("regtest_b.same")).is_err());
    match lookup("same") {
        Err(Error::AmbiguousWorker { candidates, .. }) => {
            assert_eq!(candidates, ["regtest_a.same", "regtest_b.same"])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lookup("regtest_a::same").unwrap().name, "regtest_a.same");
}

struct Fake;
impl ImportResolver for Fake {
    fn resolve(&self, module: &str) -> std::result::Result<bool, String> {
        Ok(module == "fake_second")
    }
    fn describe(&self) -> String {
        "fake resolver".into()
    }
}

#[test]
fn imports_alternatives_and_forgive() {
    add_import_resolver(Arc::new(Fake));
    let mut f = Function::closure(
        "imp.f",
        Arc::new(|_: &[Value], _: &[Value]| Ok(Value::Null)),
    );
    f.imports = vec!["fake_first, fake_second".into(), "papy".into()];
    assert!(resolve_imports(&f).unwrap().is_empty());
    f.imports = vec!["fake_missing".into()];
    let err = resolve_imports(&f).unwrap_err().to_string();
    assert!(
        err.contains("fake_missing") && err.contains("fake resolver"),
        "{err}"
    );
    f.forgive = true;
    let warnings = resolve_imports(&f).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("fake_missing"));
}
