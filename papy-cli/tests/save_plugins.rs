//! A saved pipeline that uses a plugin's functions loads that plugin.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;

use papy_config::PlumberFile;
use papy_core::{Dagger, Piper, Plumber, Worker};

#[test]
fn a_saved_pipeline_names_the_plugins_it_uses() {
    papy_plugins::load(support::plugin_file("math")).expect("math loads");
    let mut d = Dagger::new();
    d.add_piper(Piper::new(
        "sq",
        Worker::new("math.square").expect("square"),
    ))
    .expect("piper");
    let text = Plumber::new(d).save_string().expect("saved");
    let dir = support::plugin_dir().display().to_string();
    assert!(text.contains("load = [\"math\"]"), "{text}");
    assert!(text.contains(&format!("paths = [\"{dir}\"]")), "{text}");
    // It loads back (the plugin is already loaded: loading it again is a no-op).
    let again = Plumber::from_toml(&text)
        .expect("loads")
        .save_string()
        .expect("saved");
    assert_eq!(again, text);
}
