//! PaPy's `util.func` passers, zippers and joiners, registered as `papy.*`.
//!
//! They take the whole inbox (one element per input pipe) and select,
//! zip or join its elements. Differences from PaPy, on purpose:
//! `spasser` keeps inbox order (as PaPy does, against its docs), and
//! `nzipper` returns the whole zip, not only its first tuple.

use papy_macros::worker_in_core as worker;

use crate::value::Value;

fn take(inbox: &[Value], n: Option<usize>) -> &[Value] {
    match n {
        Some(n) => &inbox[..n.min(inbox.len())],
        None => inbox,
    }
}

fn select(inbox: &[Value], s: Option<&[usize]>) -> Vec<Value> {
    inbox
        .iter()
        .enumerate()
        .filter(|(i, _)| s.is_none_or(|s| s.contains(i)))
        .map(|(_, v)| v.clone())
        .collect()
}

fn zip(inputs: &[Value]) -> Result<Value, String> {
    let lists = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_list()
                .ok_or_else(|| format!("input {i} is a {}, not a list", v.kind()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let len = lists.iter().map(|l| l.len()).min().unwrap_or(0);
    Ok(Value::list(
        (0..len).map(|j| Value::list(lists.iter().map(|l| l[j].clone()))),
    ))
}

fn join(parts: &[Value], sep: Option<&str>) -> String {
    let strs: Vec<String> = parts.iter().map(ToString::to_string).collect();
    strs.join(sep.unwrap_or(""))
}

/// Returns nothing (null): ends a branch whose results are not needed.
#[worker(name = "papy.plugger")]
fn plugger(_inbox: &[Value]) -> Value {
    Value::Null
}

/// Passes inbox element `i` (default 0).
#[worker(name = "papy.ipasser")]
fn ipasser(inbox: &[Value], i: Option<usize>) -> Result<Value, String> {
    let i = i.unwrap_or(0);
    inbox
        .get(i)
        .cloned()
        .ok_or_else(|| format!("inbox has {} element(s), no element {i}", inbox.len()))
}

/// Passes the first `n` inbox elements (default all) as a list.
#[worker(name = "papy.npasser")]
fn npasser(inbox: &[Value], n: Option<usize>) -> Value {
    Value::list(take(inbox, n).iter().cloned())
}

/// Passes the inbox elements whose index is in `s` (default all), in inbox order.
#[worker(name = "papy.spasser")]
fn spasser(inbox: &[Value], s: Option<Vec<usize>>) -> Value {
    Value::list(select(inbox, s.as_deref()))
}

/// Zips the first `n` inputs (each a list): `[[1,2],[3,4]]` gives `[[1,3],[2,4]]`.
#[worker(name = "papy.nzipper")]
fn nzipper(inbox: &[Value], n: Option<usize>) -> Result<Value, String> {
    zip(take(inbox, n))
}

/// Zips the inputs whose index is in `s` (each a list).
#[worker(name = "papy.szipper")]
fn szipper(inbox: &[Value], s: Vec<usize>) -> Result<Value, String> {
    zip(&select(inbox, Some(&s)))
}

/// Joins the first `n` inputs (default all) as strings with `join` (default "").
#[worker(name = "papy.njoiner")]
fn njoiner(inbox: &[Value], n: Option<usize>, join: Option<String>) -> String {
    self::join(take(inbox, n), join.as_deref())
}

/// Joins the inputs whose index is in `s` (default all) with `join` (default "").
#[worker(name = "papy.sjoiner")]
fn sjoiner(inbox: &[Value], s: Option<Vec<usize>>, join: Option<String>) -> String {
    self::join(&select(inbox, s.as_deref()), join.as_deref())
}

#[cfg(test)]
mod tests;
