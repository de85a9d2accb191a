//! Locators are checked, not trusted: their MAC under this run's key, and
//! the item folders their paths may name.

use std::path::Path;

use super::{ItemsError, LoadOptions};
use crate::value::Value;

/// The locator fields a MAC covers, in a fixed order.
const SIGNED: [&str; 7] = ["kind", "path", "host", "port", "codec", "len", "token"];

/// The bytes a locator's MAC is computed over: each signed field present,
/// as `name=value` and a NUL.
fn signed_bytes(locator: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for key in SIGNED {
        if let Some(v) = locator.get(key) {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            match v.as_str() {
                Some(s) => out.extend_from_slice(s.as_bytes()),
                None => out.extend_from_slice(v.to_string().as_bytes()),
            }
            out.push(0);
        }
    }
    out
}

type Mac = hmac::Hmac<sha2::Sha256>;

fn mac_of(locator: &Value) -> Mac {
    use hmac::Mac as _;
    let mut m = <Mac as hmac::Mac>::new_from_slice(crate::run_key::run_key())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(&signed_bytes(locator));
    m
}

/// The MAC of `locator`, in hex.
pub(super) fn mac_hex(locator: &Value) -> String {
    use hmac::Mac as _;
    crate::run_key::hex(&mac_of(locator).finalize().into_bytes())
}

/// `true` when `locator` carries the right MAC under this run's key
/// (compared in constant time).
pub fn is_authentic(locator: &Value) -> bool {
    use hmac::Mac as _;
    let Some(hex) = locator.get("mac").and_then(Value::as_str) else {
        return false;
    };
    let Some(tag) = crate::run_key::unhex::<32>(hex) else {
        return false;
    };
    mac_of(locator).verify_slice(&tag).is_ok()
}

/// Whether `locator` is this run's (its MAC is right) and names a file
/// or pipe inside one of the run's item folders ([`run_key::item_dirs`](crate::run_key::item_dirs)):
/// what may be read without a declared `dir`, removed, or mapped. Every
/// worker holds the run key, so a MAC alone proves only that some process
/// of the run signed it; the folder bounds what it can name to what the
/// run made.
pub(super) fn is_ours(locator: &Value) -> bool {
    if !is_authentic(locator) {
        return false;
    }
    match locator.get("path").and_then(Value::as_str) {
        Some(path) => crate::run_key::item_dirs()
            .iter()
            .any(|d| inside(Path::new(path), Some(d))),
        // A socket item names no file.
        None => true,
    }
}

/// Whether `path` (which must exist) lies inside `dir`, both resolved.
fn inside(path: &Path, dir: Option<&Path>) -> bool {
    let Some(dir) = dir else { return false };
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => false,
    }
}

/// Refuses a `file` or `fifo` locator that is neither authentic nor
/// inside the item directory; `Ok(true)` when it is authentic (so its file
/// may be removed).
pub(super) fn trust_path(
    locator: &Value,
    path: &str,
    opts: &LoadOptions,
) -> Result<bool, ItemsError> {
    if is_ours(locator) {
        return Ok(true);
    }
    if let Some(dir) = &opts.dir {
        // A `dir` the task chose cannot open the files this process may not.
        crate::permissions::check_file(dir)?;
    }
    if inside(Path::new(path), opts.dir.as_deref()) {
        return Ok(false);
    }
    Err(ItemsError::Untrusted(format!(
        "`{}` was not dumped into this run's item folder (no valid `mac`, or a path outside it) and is not inside {}; nothing was read or removed",
        crate::error::quote_peer(path),
        match &opts.dir {
            Some(d) => format!("the item directory {}", d.display()),
            None => "a declared item directory (`dir`)".to_string(),
        }
    )))
}
