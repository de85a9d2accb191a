//! The greeting and the worker's `Hello`: its version, codec, functions,
//! `plugins` pairs and `signatures`, each field checked.

use papy_core::error::quote_peer;
use papy_core::protocol::{decode_payload, Frame, MAJOR};
use papy_core::{Map, Value};

use super::conn::Conn;
use super::report::{field_is, q, seen, Report};

/// Checks the greeting and the worker's `Hello`. The functions it lists
/// when the rest can be tested (`None`: no `Hello`, or another major
/// version).
pub(super) fn check(conn: &mut Conn, report: &mut Report) -> Option<Vec<String>> {
    if let Err(e) = conn.greeting() {
        report.fail("greeting", e);
        return None;
    }
    report.ok("greeting", "");
    let (hello, payload) = match hello_of(conn) {
        Ok(h) => h,
        Err(e) => {
            report.fail("Hello first", e);
            return None;
        }
    };
    let functions: Vec<String> = match hello.get(&Value::from("functions")) {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|f| match f {
                Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut core = Vec::new();
    let major = hello_version(&hello, &mut core);
    hello_fields(&hello, &mut core);
    let plugins = hello_plugins(&hello);
    let signatures = hello_signatures(&hello);
    // A Hello this command reads may still be one the host refuses: the
    // host decodes it into its types.
    if core.is_empty() && plugins.is_empty() && signatures.is_empty() {
        if let Err(e) = decode_payload::<Frame>(&payload) {
            core.push(format!("the host cannot decode it: {e}"));
        }
    }
    let note = format!(
        "functions: {}",
        if functions.is_empty() {
            "(none)".to_string()
        } else {
            q(&functions.join(", "))
        }
    );
    report.rule("Hello", &core, &note);
    report.rule("Hello plugins", &plugins, "");
    report.rule("Hello signatures", &signatures, "");
    if major != Some(i64::from(MAJOR)) {
        report.skip("the rest", "the worker does not speak this major version");
        return None;
    }
    Some(functions)
}

/// Reads the worker's `Hello` (after the greeting), as a map of fields,
/// with the frame's payload.
pub(super) fn hello_of(conn: &mut Conn) -> Result<(Map, Vec<u8>), String> {
    let payload = conn.payload("Hello")?;
    let frame: Value =
        decode_payload(&payload).map_err(|e| format!("the first frame does not decode: {e}"))?;
    let Value::Map(frame) = frame else {
        return Err(format!("the first frame is {}, not Hello", seen(&frame)));
    };
    match frame.get(&Value::from("Hello")) {
        Some(Value::Map(h)) if frame.len() == 1 => Ok(((**h).clone(), payload)),
        Some(other) if frame.len() == 1 => Err(format!("the Hello is {}, not a map", seen(other))),
        _ => {
            let kinds: Vec<String> = frame.keys().map(seen).collect();
            Err(format!(
                "the first frame is {}, not Hello",
                quote_peer(&kinds.join(", "))
            ))
        }
    }
}

/// Checks `major`, `minor`; returns the major version when it is an integer.
fn hello_version(h: &Map, out: &mut Vec<String>) -> Option<i64> {
    let major = match h.get(&Value::from("major")) {
        Some(Value::Int(m)) => {
            if *m != i64::from(MAJOR) {
                out.push(format!(
                    "speaks {m}.{}, the host speaks {MAJOR}.x",
                    match h.get(&Value::from("minor")) {
                        Some(Value::Int(n)) => n.to_string(),
                        _ => "?".into(),
                    }
                ));
            }
            Some(*m)
        }
        other => {
            out.push(field_is("major", other, "an integer"));
            None
        }
    };
    match h.get(&Value::from("minor")) {
        Some(Value::Int(n)) if u16::try_from(*n).is_ok() => {}
        other => out.push(field_is("minor", other, "an integer 0-65535")),
    }
    major
}

/// Checks `codec`, `papy_version` and `functions`.
fn hello_fields(h: &Map, out: &mut Vec<String>) {
    match h.get(&Value::from("codec")) {
        Some(Value::Str(c)) if &**c == "msgpack" => {}
        Some(Value::Str(c)) => out.push(format!("codec `{}`, expected `msgpack`", q(c))),
        other => out.push(field_is("codec", other, "the string `msgpack`")),
    }
    match h.get(&Value::from("papy_version")) {
        Some(Value::Str(_)) => {}
        other => out.push(field_is("papy_version", other, "a string")),
    }
    match h.get(&Value::from("functions")) {
        Some(Value::List(l)) => {
            for (k, f) in l.iter().enumerate() {
                if !matches!(f, Value::Str(_)) {
                    out.push(field_is(&format!("functions[{k}]"), Some(f), "a string"));
                }
            }
        }
        other => out.push(field_is("functions", other, "a list of names")),
    }
}

/// A plugin file's hash as the Hello must give it: its SHA-256 in 64
/// lowercase hexadecimal digits.
fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The violations of `plugins`: a list of `[name, sha256]` pairs of
/// strings, the hash in 64 lowercase hexadecimal digits.
fn hello_plugins(h: &Map) -> Vec<String> {
    let mut out = Vec::new();
    let list = match h.get(&Value::from("plugins")) {
        Some(Value::List(l)) => l,
        other => {
            out.push(field_is(
                "plugins",
                other,
                "a list of [name, sha256] pairs (`[]` without plugins)",
            ));
            return out;
        }
    };
    for (k, p) in list.iter().enumerate() {
        match p {
            Value::List(pair) => match pair.as_slice() {
                [Value::Str(name), Value::Str(hash)] => {
                    if !is_sha256_hex(hash) {
                        out.push(format!(
                            "`plugins[{k}]` (`{}`): hash `{}` is not 64 lowercase hexadecimal digits (the file's SHA-256)",
                            q(name),
                            q(hash)
                        ));
                    }
                }
                [Value::Str(_), other] => out.push(field_is(
                    &format!("plugins[{k}][1]"),
                    Some(other),
                    "a string",
                )),
                [other, _] => out.push(field_is(
                    &format!("plugins[{k}][0]"),
                    Some(other),
                    "a string",
                )),
                _ => out.push(format!(
                    "`plugins[{k}]` has {} elements, not 2 ([name, sha256])",
                    pair.len()
                )),
            },
            other => out.push(field_is(
                &format!("plugins[{k}]"),
                Some(other),
                "a [name, sha256] pair",
            )),
        }
    }
    out
}

/// The violations of `signatures` (optional): a list of `{name, params,
/// inputs, doc}`, `params` nil or a list of `{name, optional, ty}`.
fn hello_signatures(h: &Map) -> Vec<String> {
    let mut out = Vec::new();
    let list = match h.get(&Value::from("signatures")) {
        None => return out,
        Some(Value::List(l)) => l,
        other => {
            out.push(field_is("signatures", other, "a list (or no field)"));
            return out;
        }
    };
    let string = |v: &Value| matches!(v, Value::Str(_));
    for (k, s) in list.iter().enumerate() {
        let at = format!("signatures[{k}]");
        let Value::Map(s) = s else {
            out.push(field_is(&at, Some(s), "a map {name, params, inputs, doc}"));
            continue;
        };
        want(&mut out, s, &at, "name", "a string", string);
        want(&mut out, s, &at, "doc", "a string", string);
        want(
            &mut out,
            s,
            &at,
            "inputs",
            "nil or an integer 0-4294967295",
            |v| match v {
                Value::Null => true,
                Value::Int(n) => u32::try_from(*n).is_ok(),
                _ => false,
            },
        );
        let params = format!("{at}.params");
        match s.get(&Value::from("params")) {
            Some(Value::Null) => {}
            Some(Value::List(ps)) => {
                for (j, p) in ps.iter().enumerate() {
                    let at = format!("{params}[{j}]");
                    let Value::Map(p) = p else {
                        out.push(field_is(&at, Some(p), "a map {name, optional, ty}"));
                        continue;
                    };
                    want(&mut out, p, &at, "name", "a string", string);
                    want(&mut out, p, &at, "optional", "a boolean", |v| {
                        matches!(v, Value::Bool(_))
                    });
                    want(
                        &mut out,
                        p,
                        &at,
                        "ty",
                        "a string (the type as the worker's language writes it, or \"\")",
                        string,
                    );
                }
            }
            other => out.push(field_is(&params, other, "nil or a list of parameters")),
        }
    }
    out
}

/// Pushes a violation unless `m[field]` is there and `fits`.
fn want(
    out: &mut Vec<String>,
    m: &Map,
    at: &str,
    field: &str,
    wanted: &str,
    fits: impl Fn(&Value) -> bool,
) {
    let v = m.get(&Value::from(field));
    if !v.is_some_and(&fits) {
        out.push(field_is(&format!("{at}.{field}"), v, wanted));
    }
}
