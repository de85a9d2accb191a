//! Whether a fixed argument written in a pipeline file can be the Rust
//! type of its parameter, decided from the type as written (`f64`,
//! `Option<Vec<String>>`, `BTreeMap<String, i64>`): numbers, booleans,
//! strings, lists, maps and tuples are checked; any other type (`Value`,
//! a user's struct) is accepted and left to the call.

/// `Ok` when `v` can be read as `ty`, else what is wrong.
///
/// ```
/// use papy_config::types::fits;
/// let v = |s: &str| s.parse::<toml::Table>().unwrap().remove("v").unwrap();
/// assert!(fits("f64", &v("v = 2")).is_ok());
/// assert!(fits("f64", &v("v = \"two\"")).unwrap_err().contains("a string"));
/// assert!(fits("Option<Vec<u32>>", &v("v = [1, -2]")).unwrap_err().contains("item 1"));
/// assert!(fits("papy::Value", &v("v = \"anything\"")).is_ok());
/// ```
pub fn fits(ty: &str, v: &toml::Value) -> Result<(), String> {
    // Types come from plugins too: a description too long to be a real
    // parameter type is not interpreted (this also bounds the recursion).
    if ty.len() > MAX_TYPE_LEN {
        return Ok(());
    }
    let (head, args) = split(ty);
    let bad = || {
        Err(format!(
            "{} is {}, but the parameter is `{ty}`",
            shown(v),
            article(v.type_str())
        ))
    };
    match head {
        "Option" | "Box" | "Arc" | "Rc" => args.first().map_or(Ok(()), |t| fits(t, v)),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => match v {
            toml::Value::Integer(_) => in_range(head, v),
            _ => bad(),
        },
        "f32" | "f64" => match v {
            toml::Value::Integer(_) | toml::Value::Float(_) => Ok(()),
            _ => bad(),
        },
        "bool" => match v {
            toml::Value::Boolean(_) => Ok(()),
            _ => bad(),
        },
        "String" | "str" | "&str" | "Cow" | "PathBuf" => match v {
            toml::Value::String(_) => Ok(()),
            _ => bad(),
        },
        "char" => match v {
            toml::Value::String(s) if s.chars().count() == 1 => Ok(()),
            _ => bad(),
        },
        "Vec" | "VecDeque" | "BTreeSet" | "HashSet" => match v {
            toml::Value::Array(a) => each(a, args.first().copied()),
            _ => bad(),
        },
        "BTreeMap" | "HashMap" => match v {
            toml::Value::Table(t) => {
                for (k, x) in t {
                    if let Some(vt) = args.get(1) {
                        fits(vt, x).map_err(|e| format!("key `{k}`: {e}"))?;
                    }
                }
                Ok(())
            }
            _ => bad(),
        },
        "()" => Ok(()),
        _ if head.starts_with('(') => match v {
            toml::Value::Array(a) => {
                let inner = head.strip_prefix('(').and_then(|h| h.strip_suffix(')'));
                let Some(inner) = inner else { return Ok(()) };
                let parts = split_top(inner);
                if parts.len() != a.len() {
                    return Err(format!(
                        "a list of {} is given, but the parameter is the {}-tuple `{ty}`",
                        a.len(),
                        parts.len()
                    ));
                }
                for (i, (t, x)) in parts.iter().zip(a).enumerate() {
                    fits(t, x).map_err(|e| format!("item {i}: {e}"))?;
                }
                Ok(())
            }
            _ => bad(),
        },
        _ if head.starts_with('[') => match v {
            toml::Value::Array(a) => {
                let inner = head.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
                let Some(inner) = inner else { return Ok(()) };
                each(a, split_top_sep(inner, ';').first().copied())
            }
            _ => bad(),
        },
        _ => Ok(()),
    }
}

/// Longest type description interpreted.
const MAX_TYPE_LEN: usize = 512;

fn each(a: &[toml::Value], ty: Option<&str>) -> Result<(), String> {
    let Some(ty) = ty else { return Ok(()) };
    for (i, x) in a.iter().enumerate() {
        fits(ty, x).map_err(|e| format!("item {i}: {e}"))?;
    }
    Ok(())
}

fn in_range(ty: &str, v: &toml::Value) -> Result<(), String> {
    let Some(n) = v.as_integer() else {
        return Ok(());
    };
    let ok = match ty {
        "i8" => i8::try_from(n).is_ok(),
        "i16" => i16::try_from(n).is_ok(),
        "i32" => i32::try_from(n).is_ok(),
        "u8" => u8::try_from(n).is_ok(),
        "u16" => u16::try_from(n).is_ok(),
        "u32" => u32::try_from(n).is_ok(),
        "u64" | "u128" | "usize" => n >= 0,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{n} does not fit the parameter's type `{ty}`"))
    }
}

fn article(kind: &str) -> String {
    match kind.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

fn shown(v: &toml::Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        "the value".to_string()
    } else {
        s
    }
}

/// `Vec<Option<u8>>` -> (`Vec`, [`Option<u8>`]); a path keeps its last segment.
fn split(ty: &str) -> (&str, Vec<&str>) {
    let ty = ty.trim();
    let ty = ty.strip_prefix("&'static").unwrap_or(ty);
    let ty = ty.strip_prefix('&').unwrap_or(ty);
    if ty.starts_with('(') || ty.starts_with('[') {
        return (ty, Vec::new());
    }
    let (path, args) = match ty.find('<') {
        Some(i) if ty.ends_with('>') => (&ty[..i], split_top(&ty[i + 1..ty.len() - 1])),
        _ => (ty, Vec::new()),
    };
    let head = path.rsplit("::").next().unwrap_or(path);
    (head, args)
}

fn split_top(s: &str) -> Vec<&str> {
    split_top_sep(s, ',')
}

/// Splits at `sep` outside brackets.
fn split_top_sep(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fits;

    #[test]
    fn any_description_is_handled_without_panicking() {
        let v = toml::Value::Array(vec![toml::Value::Integer(1)]);
        let deep = format!("{}i64{}", "Option<".repeat(10_000), ">".repeat(10_000));
        for ty in [
            "(", "[", ")", "<", ">", "()", "(,)", "[;]", "Vec<", "Vec<>", "Ve<c>", "", "&", "(i64",
            "é<ü>", &deep,
        ] {
            let _ = fits(ty, &v);
        }
        assert!(fits("(i64, String)", &v).is_err());
        assert!(fits("[u8; 4]", &v).is_ok());
        assert!(fits("Vec<bool>", &v).is_err());
    }
}
