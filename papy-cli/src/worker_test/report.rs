//! The report: one line per check (`ok`, `FAIL`, `skip`), violations
//! counted, and peer text quoted safely.

use papy_core::error::quote_peer;
use papy_core::Value;

/// Most lines printed for one rule; the others are counted.
const LINES_PER_RULE: usize = 10;

/// Peer text as a message may quote it: bounded, on one line.
pub(super) fn q(s: &str) -> String {
    quote_peer(s).escape_debug().to_string()
}

/// What a peer sent where something else belonged, for messages.
pub(super) fn seen(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Int(i) => format!("an integer ({i})"),
        Value::Float(x) => format!("a float ({x})"),
        Value::Str(s) => format!("a string (`{}`)", q(s)),
        Value::Bytes(b) => format!("binary ({} bytes)", b.len()),
        Value::List(l) => format!("a list of {}", l.len()),
        Value::Map(m) => format!("a map of {}", m.len()),
    }
}

/// `field` is missing or holds `v`, where `wanted` belonged.
pub(super) fn field_is(field: &str, v: Option<&Value>, wanted: &str) -> String {
    match v {
        None => format!("no `{field}` (it must be {wanted})"),
        Some(v) => format!("`{field}` is {}, not {wanted}", seen(v)),
    }
}

/// Prints the checks' outcomes and counts the violations.
#[derive(Default)]
pub(super) struct Report {
    pub(super) violations: usize,
}

impl Report {
    pub(super) fn ok(&self, rule: &str, note: &str) {
        if note.is_empty() {
            println!("ok    {rule}");
        } else {
            println!("ok    {rule}: {note}");
        }
    }

    /// One line per violation of `rule` (at most [`LINES_PER_RULE`], the
    /// rest counted), or `ok` with `note` when there is none.
    pub(super) fn rule(&mut self, rule: &str, violations: &[String], note: &str) {
        if violations.is_empty() {
            return self.ok(rule, note);
        }
        self.violations += violations.len();
        for v in violations.iter().take(LINES_PER_RULE) {
            println!("FAIL  {rule}: {v}");
        }
        if violations.len() > LINES_PER_RULE {
            println!(
                "FAIL  {rule}: {} more violations like these",
                violations.len() - LINES_PER_RULE
            );
        }
    }

    pub(super) fn fail(&mut self, rule: &str, what: String) {
        self.rule(rule, &[what], "");
    }

    pub(super) fn skip(&self, rule: &str, why: &str) {
        println!("skip  {rule}: not run, {why}");
    }
}
