//! Calling a plugin's functions: MessagePack across the ABI, one item or
//! a whole batch, the plugin's buffers freed by its own `free`.

use std::sync::Arc;

use papy_core::registry::{BatchFn, PackedFn};
use papy_core::{ErrorKind, ItemError, Value};

use crate::abi::{CallFn, FreeFn, OutBuf, STATUS_BAD_INPUT, STATUS_ERROR, STATUS_OK, STATUS_PANIC};

/// One crossing of the ABI: `input` in, the status and a copy of the
/// plugin's buffer out (the buffer is freed by the plugin's `free`).
fn raw_call(call: CallFn, free: FreeFn, index: usize, input: &[u8]) -> (i32, Vec<u8>) {
    raw_call_with(call, free, index, input, |status, bytes| {
        (status, bytes.to_vec())
    })
}

/// One crossing of the ABI: `input` in, then `read` given the status and
/// the plugin's buffer where it lies (freed by the plugin's `free` after).
fn raw_call_with<R>(
    call: CallFn,
    free: FreeFn,
    index: usize,
    input: &[u8],
    read: impl FnOnce(i32, &[u8]) -> R,
) -> R {
    let mut out = OutBuf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
    // SAFETY: `call` is a shim of a library that is never unloaded; `input` is a
    // valid slice for the duration of the call and `out` a valid, writable OutBuf.
    let status = unsafe { call(index, input.as_ptr(), input.len(), &mut out) };
    if out.ptr.is_null() {
        return read(status, &[]);
    }
    /// Frees the plugin's buffer when dropped, even if `read` panics.
    struct Owned(OutBuf, FreeFn);
    impl Drop for Owned {
        fn drop(&mut self) {
            // SAFETY: the buffer came from this plugin's shim and is freed
            // exactly once, by its own `free`.
            unsafe { (self.1)(self.0.ptr, self.0.len, self.0.cap) };
        }
    }
    let owned = Owned(out, free);
    // SAFETY: the shim wrote `len` initialised bytes at `ptr` (ABI
    // contract); they stay valid until `owned` is dropped, after `read`.
    let bytes = unsafe { std::slice::from_raw_parts(owned.0.ptr, owned.0.len) };
    read(status, bytes)
}

/// A message payload (panics, bad input) as text.
fn message(bytes: &[u8]) -> String {
    rmp_serde::from_slice::<String>(bytes).unwrap_or_else(|_| "(undecodable message)".into())
}

/// Calls a plugin worker: MessagePack in, MessagePack out, the buffer freed by the plugin.
pub(super) fn call_plugin(
    call: CallFn,
    free: FreeFn,
    index: usize,
    inbox: &[Value],
    args: &[Value],
) -> Result<Value, ItemError> {
    let input = rmp_serde::to_vec(&(inbox, args)).map_err(|e| {
        ItemError::new(
            ErrorKind::Conversion,
            format!("cannot encode the call: {e}"),
        )
    })?;
    let (status, bytes) = raw_call(call, free, index, &input);
    match status {
        STATUS_OK => rmp_serde::from_slice::<Value>(&bytes).map_err(|e| {
            ItemError::new(
                ErrorKind::Conversion,
                format!("cannot decode the plugin's result: {e}"),
            )
        }),
        STATUS_ERROR => {
            let (code, msg): (u8, String) = rmp_serde::from_slice(&bytes)
                .unwrap_or((ErrorKind::Function.code(), "(undecodable error)".into()));
            Err(ItemError::new(
                ErrorKind::from_code(code).unwrap_or(ErrorKind::Function),
                msg,
            ))
        }
        STATUS_PANIC => Err(ItemError::new(ErrorKind::Panic, message(&bytes))),
        STATUS_BAD_INPUT => Err(ItemError::new(ErrorKind::Conversion, message(&bytes))),
        other => Err(ItemError::new(
            ErrorKind::Function,
            format!("the plugin returned an unknown status {other}"),
        )),
    }
}

/// Calls a plugin worker on a whole batch (ABI 1.2): one crossing, one
/// result per inbox. A batch the plugin cannot read, or a reply of the
/// wrong length, fails every item of the batch with the reason.
pub(super) fn call_plugin_batch(
    call_batch: CallFn,
    free: FreeFn,
    index: usize,
    inboxes: &[&[Value]],
    args: &[Value],
) -> Vec<Result<Value, ItemError>> {
    use papy_core::protocol::packed::{decode_values, encode_values};
    let all = |e: ItemError| inboxes.iter().map(|_| Err(e.clone())).collect();
    // The batch shim takes one-value inboxes (the only ones batched).
    if inboxes.iter().any(|i| i.len() != 1) {
        return all(ItemError::new(
            ErrorKind::Conversion,
            "a batch call takes inboxes of one value",
        ));
    }
    let mut input = batch_input(args, 0);
    encode_values(inboxes.iter().map(|i| &i[0]), &mut input);
    let (status, bytes) = raw_call(call_batch, free, index, &input);
    if status != STATUS_OK {
        let kind = if status == STATUS_PANIC {
            ErrorKind::Panic
        } else {
            ErrorKind::Conversion
        };
        return all(ItemError::new(kind, message(&bytes)));
    }
    let n = inboxes.len();
    let (statuses, payloads) = match bytes.split_at_checked(n) {
        Some(x) => x,
        None => {
            return all(ItemError::new(
                ErrorKind::Conversion,
                format!(
                    "the plugin answered a batch of {n} with {} bytes",
                    bytes.len()
                ),
            ))
        }
    };
    let values = match decode_values(payloads) {
        Ok(v) if v.len() == n => v,
        Ok(v) => {
            return all(ItemError::new(
                ErrorKind::Conversion,
                format!(
                    "the plugin answered a batch of {n} with {} results",
                    v.len()
                ),
            ))
        }
        Err(e) => {
            return all(ItemError::new(
                ErrorKind::Conversion,
                format!("cannot decode the plugin's batch: {e}"),
            ))
        }
    };
    statuses
        .iter()
        .zip(values)
        .map(|(status, v)| match i32::from(*status) {
            STATUS_OK => Ok(v),
            other => Err(item_error(other, &v)),
        })
        .collect()
}

/// The error of an item a batch call answered with status `status` (not
/// OK) and payload `v`.
fn item_error(status: i32, v: &Value) -> ItemError {
    match status {
        STATUS_ERROR => {
            let (kind, msg) = match v {
                Value::List(l) if l.len() == 2 => (
                    l[0].as_int()
                        .and_then(|c| u8::try_from(c).ok())
                        .and_then(ErrorKind::from_code)
                        .unwrap_or(ErrorKind::Function),
                    l[1].to_string(),
                ),
                _ => (ErrorKind::Function, "(undecodable error)".to_string()),
            };
            ItemError::new(kind, msg)
        }
        STATUS_PANIC => ItemError::new(ErrorKind::Panic, v.to_string()),
        other => ItemError::new(
            ErrorKind::Function,
            format!("the plugin returned an unknown status {other}"),
        ),
    }
}

/// The batch input of ABI 1.2: the packed arguments' length (8 bytes,
/// little-endian), the packed arguments, then the packed values.
fn batch_input(args: &[Value], values_len: usize) -> Vec<u8> {
    use papy_core::protocol::packed::encode_values;
    let mut input = Vec::with_capacity(8 + 16 * args.len() + values_len);
    input.extend_from_slice(&[0; 8]);
    encode_values(args.iter(), &mut input);
    let args_len = (input.len() - 8) as u64;
    input[..8].copy_from_slice(&args_len.to_le_bytes());
    input
}

/// Calls a plugin worker on a whole batch of packed values as they came
/// (a frame's own bytes): nothing is decoded on this side, and the results
/// the plugin packed are appended to `out` as they are, checked value by
/// value (nil where an item failed; the failures returned by position).
/// `Err` (nothing appended): the plugin could not read the batch, or
/// answered it malformed or with another number of results than `n`.
pub(super) fn call_plugin_packed(
    call_batch: CallFn,
    free: FreeFn,
    index: usize,
    (values, n): (&[u8], usize),
    args: &[Value],
    out: &mut Vec<u8>,
) -> Result<Vec<(usize, ItemError)>, ItemError> {
    use papy_core::protocol::packed::{decode_value, value_len};
    let mut input = batch_input(args, values.len());
    input.extend_from_slice(values);
    let start = out.len();
    let read = |status: i32, bytes: &[u8]| {
        if status != STATUS_OK {
            let kind = if status == STATUS_PANIC {
                ErrorKind::Panic
            } else {
                ErrorKind::Conversion
            };
            return Err(ItemError::new(kind, message(bytes)));
        }
        let malformed = |what: String| ItemError::new(ErrorKind::Conversion, what);
        let (statuses, mut payloads) = bytes.split_at_checked(n).ok_or_else(|| {
            malformed(format!(
                "the plugin answered a batch of {n} with {} bytes",
                bytes.len()
            ))
        })?;
        out.reserve(payloads.len());
        let mut failed = Vec::new();
        for (i, status) in statuses.iter().enumerate() {
            let len = value_len(payloads)
                .map_err(|e| malformed(format!("cannot decode the plugin's batch: {e}")))?;
            let (v, rest) = payloads.split_at(len);
            payloads = rest;
            match i32::from(*status) {
                STATUS_OK => out.extend_from_slice(v),
                other => {
                    let v = decode_value(v).unwrap_or(Value::Null);
                    failed.push((i, item_error(other, &v)));
                    out.push(0xc0);
                }
            }
        }
        if !payloads.is_empty() {
            return Err(malformed(format!(
                "the plugin answered a batch of {n} with more results"
            )));
        }
        Ok(failed)
    };
    let answer = raw_call_with(call_batch, free, index, &input, read);
    if answer.is_err() {
        out.truncate(start);
    }
    answer
}

/// The batch entry points of worker `index` of a plugin with a batch shim
/// (`call_batch`, ABI 1.2): on values, and on packed values.
pub(super) fn batch_entries(
    call_batch: Option<CallFn>,
    free: FreeFn,
    index: usize,
) -> (Option<Arc<BatchFn>>, Option<Arc<PackedFn>>) {
    let Some(cb) = call_batch else {
        return (None, None);
    };
    let batch: Arc<BatchFn> = Arc::new(move |inboxes: &[&[Value]], args: &[Value]| {
        call_plugin_batch(cb, free, index, inboxes, args)
    });
    let packed: Arc<PackedFn> = Arc::new(
        move |values: &[u8], n: usize, args: &[Value], out: &mut Vec<u8>| {
            call_plugin_packed(cb, free, index, (values, n), args, out)
        },
    );
    (Some(batch), Some(packed))
}
