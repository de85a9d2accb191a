//! A value as the bytes an item carries, and back (`codec`: `bytes`,
//! `str` or `msgpack`).

use std::sync::Arc;

use super::ItemsError;
use crate::value::Value;

/// The codec and bytes of `v`.
pub(super) fn encode(v: &Value) -> Result<(&'static str, Payload), ItemsError> {
    Ok(match v {
        Value::Bytes(b) => ("bytes", Payload::Shared(b.clone())),
        Value::Str(s) => ("str", Payload::Str(s.clone())),
        other => (
            "msgpack",
            Payload::Owned(
                rmp_serde::to_vec(other).map_err(|e| ItemsError::Payload(e.to_string()))?,
            ),
        ),
    })
}

/// The bytes of a payload, shared with the value when it is bytes or a string.
pub(super) enum Payload {
    Shared(Arc<[u8]>),
    Str(Arc<str>),
    Owned(Vec<u8>),
}

impl Payload {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Payload::Shared(b) => b,
            Payload::Str(s) => s.as_bytes(),
            Payload::Owned(v) => v,
        }
    }
}

/// The value of `bytes` written with `codec`.
pub(super) fn decode(codec: &str, bytes: &[u8]) -> Result<Value, ItemsError> {
    match codec {
        "bytes" => Ok(Value::from(bytes)),
        "str" => std::str::from_utf8(bytes)
            .map(Value::from)
            .map_err(|e| ItemsError::Payload(e.to_string())),
        "msgpack" => rmp_serde::from_slice(bytes).map_err(|e| ItemsError::Payload(e.to_string())),
        other => Err(ItemsError::Locator(format!("unknown codec `{other}`"))),
    }
}
