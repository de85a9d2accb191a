//! Calling a plugin's functions: MessagePack across the ABI, one item or
//! a whole batch, the plugin's buffers freed by its own `free`.

use papy_core::{ErrorKind, ItemError, Value};

use crate::abi::{CallFn, FreeFn, OutBuf, STATUS_BAD_INPUT, STATUS_ERROR, STATUS_OK, STATUS_PANIC};

/// One crossing of the ABI: `input` in, the status and a copy of the
/// plugin's buffer out (the buffer is freed by the plugin's `free`).
fn raw_call(call: CallFn, free: FreeFn, index: usize, input: &[u8]) -> (i32, Vec<u8>) {
    let mut out = OutBuf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
    // SAFETY: `call` is a shim of a library that is never unloaded; `input` is a
    // valid slice for the duration of the call and `out` a valid, writable OutBuf.
    let status = unsafe { call(index, input.as_ptr(), input.len(), &mut out) };
    let bytes = if out.ptr.is_null() {
        Vec::new()
    } else {
        // SAFETY: the shim wrote `len` initialised bytes at `ptr` (ABI contract).
        let b = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
        // SAFETY: the buffer came from this plugin's shim and is freed exactly once, by its own `free`.
        unsafe { free(out.ptr, out.len, out.cap) };
        b
    };
    (status, bytes)
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
    let mut input = vec![0u8; 8];
    encode_values(args.iter(), &mut input);
    let args_len = (input.len() - 8) as u64;
    input[..8].copy_from_slice(&args_len.to_le_bytes());
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
            STATUS_ERROR => {
                let (kind, msg) = match &v {
                    Value::List(l) if l.len() == 2 => (
                        l[0].as_int()
                            .and_then(|c| u8::try_from(c).ok())
                            .and_then(ErrorKind::from_code)
                            .unwrap_or(ErrorKind::Function),
                        l[1].to_string(),
                    ),
                    _ => (ErrorKind::Function, "(undecodable error)".to_string()),
                };
                Err(ItemError::new(kind, msg))
            }
            STATUS_PANIC => Err(ItemError::new(ErrorKind::Panic, v.to_string())),
            other => Err(ItemError::new(
                ErrorKind::Function,
                format!("the plugin returned an unknown status {other}"),
            )),
        })
        .collect()
}
