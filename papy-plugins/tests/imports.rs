//! `imports` resolved through the plugin loader, in a process where only
//! `textstats` was loaded by hand.

mod support;

use papy_core::{registry, Error, Value, Worker};
use papy_plugins::{install_resolver, load, load_by_name, plugin, PluginError, SearchPath};
use support::{plugin_dir, plugin_file};

#[test]
fn imports_load_plugins_on_demand_with_alternatives_and_forgive() {
    load(plugin_file("textstats")).unwrap();
    assert!(plugin("text").is_none(), "text is not loaded yet");
    install_resolver(SearchPath::new([plugin_dir()]));

    // "no_such_text_plugin, text": the first is missing, the second is loaded on demand.
    let w = Worker::new("textstats.shout").unwrap();
    assert!(
        plugin("text").is_some(),
        "the import loaded the text plugin"
    );
    assert!(registry::lookup("text.l33t").is_ok());
    assert_eq!(
        w.call(&[Value::from("hey")]).unwrap(),
        Value::list([Value::from("HEY"), Value::Int(3)])
    );

    // A missing import names the module and the search path.
    match Worker::new("textstats.needs_missing") {
        Err(Error::Import {
            module, searched, ..
        }) => {
            assert_eq!(module, "no_such_module_q");
            assert!(
                searched.contains(&plugin_dir().display().to_string()),
                "{searched}"
            );
        }
        other => panic!("{other:?}"),
    }
    // `forgive` turns it into a warning.
    let f = registry::lookup("textstats.needs_missing_forgiven").unwrap();
    let warnings = registry::resolve_imports(&f).unwrap();
    assert!(warnings[0].contains("no_such_module_q"));
    assert!(Worker::new("textstats.needs_missing_forgiven").is_ok());
}

#[test]
fn load_by_name_searches_the_path() {
    let p = load_by_name("math", &SearchPath::new([plugin_dir()])).unwrap();
    assert_eq!(p.name(), "math");
    match load_by_name("nowhere", &SearchPath::new(["/nonexistent/dir"])) {
        Err(e @ PluginError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("libnowhere.so")
                    && msg.contains("/nonexistent/dir")
                    && msg.contains("PAPY_PLUGIN_PATH"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}
