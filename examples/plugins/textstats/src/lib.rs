//! The `textstats` example plugin: its workers declare `imports`, resolved
//! where they run. `shout` needs a text plugin: `no_such_text_plugin` if
//! present, else `text` (an alternative list, tried in order).

use papy_sdk::worker;

/// Upper-cases and counts the characters of a string: `[upper, chars]`.
#[worker(imports = ["no_such_text_plugin, text"])]
fn shout(s: String) -> (String, i64) {
    let n = s.chars().count() as i64;
    (s.to_uppercase(), n)
}

/// Needs a module that exists nowhere (to show the error).
#[worker(imports = ["no_such_module_q"])]
fn needs_missing(x: i64) -> i64 {
    x
}

/// Needs a module that exists nowhere, but forgives it (a warning).
#[worker(imports = ["no_such_module_q"], forgive)]
fn needs_missing_forgiven(x: i64) -> i64 {
    x
}

papy_sdk::export_plugin!(name = "textstats");
