use super::*;
use crate::worker::Args;

fn needs(function: &str, kwargs: &[(&str, Value)]) -> Needs {
    let named = kwargs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let w = Worker::build(function, Args::Named(named)).unwrap();
    let mut n = Needs::default();
    n.add(&w);
    n
}

#[test]
fn each_builtin_with_effects_asks_for_what_its_arguments_name() {
    let n = needs("papy.dump_jsonl", &[("path", "/srv/out/a.jsonl".into())]);
    assert_eq!(n.dirs, vec![PathBuf::from("/srv/out")]);
    let n = needs("papy.dump_lines", &[("path", "-".into())]);
    assert_eq!(n, Needs::default());
    #[cfg(feature = "items")]
    {
        let n = needs("papy.dump_item", &[("dir", "/srv/items".into())]);
        assert_eq!(n.dirs, vec![PathBuf::from("/srv/items")]);
        assert_eq!(n.item_dirs, n.dirs);
        let n = needs("papy.dump_item", &[]);
        assert_eq!(n, Needs::default());
        let n = needs("papy.dump_item", &[("kind", "socket".into())]);
        assert!(n.network && n.dirs.is_empty());
        let n = needs("papy.load_item", &[]);
        assert_eq!(n, Needs::default());
        let n = needs("papy.load_item", &[("dir", "/srv/in".into())]);
        assert_eq!(n.dirs, vec![PathBuf::from("/srv/in")]);
    }
    let n = needs("papy.json_dumps", &[]);
    assert_eq!(n, Needs::default());
}
