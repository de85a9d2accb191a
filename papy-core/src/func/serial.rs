//! JSON and MessagePack dumps and loads of `inbox[0]` (PaPy's
//! `json_dumps`/`json_loads` and `pickle_dumps`/`pickle_loads`).

use papy_macros::worker_in_core as worker;

use super::first;
use crate::value::Value;

/// `inbox[0]` as a JSON string.
#[worker(name = "papy.json_dumps")]
fn json_dumps(inbox: &[Value]) -> Result<String, String> {
    serde_json::to_string(first(inbox)?).map_err(|e| e.to_string())
}

/// The value of the JSON string `inbox[0]`.
#[worker(name = "papy.json_loads")]
fn json_loads(inbox: &[Value]) -> Result<Value, String> {
    let v = first(inbox)?;
    let s = v
        .as_str()
        .ok_or_else(|| format!("json_loads reads a string, got a {}", v.kind()))?;
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// `inbox[0]` as MessagePack bytes.
#[worker(name = "papy.msgpack_dumps")]
fn msgpack_dumps(inbox: &[Value]) -> Result<Value, String> {
    rmp_serde::to_vec(first(inbox)?)
        .map(|b| Value::from(b.as_slice()))
        .map_err(|e| e.to_string())
}

/// The value of the MessagePack bytes `inbox[0]`.
#[worker(name = "papy.msgpack_loads")]
fn msgpack_loads(inbox: &[Value]) -> Result<Value, String> {
    let v = first(inbox)?;
    let b = v
        .as_bytes()
        .ok_or_else(|| format!("msgpack_loads reads bytes, got a {}", v.kind()))?;
    rmp_serde::from_slice(b).map_err(|e| format!("not MessagePack: {e}"))
}

#[cfg(test)]
mod tests;
