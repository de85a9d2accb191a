//! `papy run --report FILE`: the live page with the run's final view
//! (worker timeline included) inside, as one HTML file that opens
//! offline and makes no request.

use std::path::Path;

use anyhow::Context;

use super::server::PAGE;
use super::view::View;

/// Where the page takes its data from when it is a report.
const SLOT: &str = r#"<script id="papy-data" type="application/json"></script>"#;

/// The report's HTML for `view`.
///
/// # Errors
/// The view cannot be encoded (it always can), or the page lost its slot.
pub(crate) fn html(view: &View) -> anyhow::Result<String> {
    // `<` only occurs inside JSON strings, where `\u003c` means the same:
    // no text of the run can close the script element.
    let json = serde_json::to_string(view)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    anyhow::ensure!(PAGE.contains(SLOT), "internal: the page has no data slot");
    Ok(PAGE.replacen(
        SLOT,
        &format!(r#"<script id="papy-data" type="application/json">{json}</script>"#),
        1,
    ))
}

/// Writes the report of `view` to `path`.
///
/// # Errors
/// The file cannot be written; the message names it.
pub(crate) fn write(path: &Path, view: &View) -> anyhow::Result<()> {
    std::fs::write(path, html(view)?)
        .with_context(|| format!("writing the report {}", path.display()))
}
