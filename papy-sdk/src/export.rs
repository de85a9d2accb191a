//! The plugin side: [`export_plugin!`](crate::export_plugin) and the code it
//! calls, compiled into every plugin.
//!
//! The manifest is built once, on the first call of the entry symbol, from
//! the plugin's own registry (a cdylib has its own copy of the `inventory`
//! registry, which is exactly why the host cannot see these functions
//! without this table). Only functions defined in the plugin crate are
//! exported; names lose the crate prefix (`my_plugin.f` becomes `f`, which
//! the host registers as `plugin_name.f`).

use std::os::raw::c_char;
use std::sync::{Arc, OnceLock};

use crate::packed::{decode_value, decode_values, encode_value};
use crate::registry::{self, Function};
use crate::Value;

use crate::abi::{
    Manifest, ManifestExt, ManifestExt2, ManifestHeader, OutBuf, ParamEntry, StrRef, WorkerEntry,
    ABI_MAJOR, ABI_MINOR, MAGIC, STATUS_BAD_INPUT, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};

/// Declares the current crate (built as a `cdylib`) a papy plugin.
///
/// ```text
/// // in the plugin crate's lib.rs (compiled in examples/plugins/)
/// use papy_sdk::worker;
///
/// /// Lower-cases a string.
/// #[worker]
/// fn lowercase(s: String) -> String { s.to_lowercase() }
///
/// papy_sdk::export_plugin!(name = "text", version = "0.1.0");
/// ```
///
/// The version may be left out (the crate's version is used).
#[macro_export]
macro_rules! export_plugin {
    (name = $name:expr, version = $version:expr $(,)?) => {
        /// The papy plugin entry point: returns this plugin's manifest.
        #[no_mangle]
        pub extern "C" fn papy_plugin_manifest() -> *const $crate::abi::Manifest {
            $crate::__private::manifest($name, $version, ::core::module_path!())
        }
    };
    (name = $name:expr $(,)?) => {
        $crate::export_plugin!(name = $name, version = ::core::env!("CARGO_PKG_VERSION"));
    };
}

static FUNCTIONS: OnceLock<Vec<Arc<Function>>> = OnceLock::new();
static MANIFEST: OnceLock<usize> = OnceLock::new();

fn leak_str(s: &str) -> StrRef {
    let s: &'static str = Box::leak(s.to_string().into_boxed_str());
    StrRef {
        ptr: s.as_ptr().cast::<c_char>(),
        len: s.len(),
    }
}

fn own_functions(crate_prefix: &str) -> Vec<(String, Arc<Function>)> {
    let prefix = format!("{}.", registry::normalise(crate_prefix));
    let mut own: Vec<(String, Arc<Function>)> = registry::registered()
        .filter_map(|f| {
            let short = f.name.strip_prefix(&prefix)?.to_string();
            Some((short, Arc::new(f)))
        })
        .collect();
    // The table's order is the workers' index: make it the names' order,
    // the same on every load.
    own.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    own
}

/// Builds (once) and returns the manifest. Called by the entry symbol.
pub fn manifest(name: &str, version: &str, crate_prefix: &str) -> *const Manifest {
    let addr = *MANIFEST.get_or_init(|| {
        crate::quiet_caught_panics();
        let own = own_functions(crate_prefix);
        let param_types: Vec<StrRef> = own
            .iter()
            .flat_map(|(_, f)| f.params.iter().flatten().map(|p| leak_str(p.ty)))
            .collect();
        let param_types: &'static [StrRef] = Box::leak(param_types.into_boxed_slice());
        let entries: Vec<WorkerEntry> = own
            .iter()
            .map(|(short, f)| {
                let imports: Vec<StrRef> = f.imports.iter().map(|s| leak_str(s)).collect();
                let imports: &'static [StrRef] = Box::leak(imports.into_boxed_slice());
                let (params, params_len) = match &f.params {
                    None => (std::ptr::null(), usize::MAX),
                    Some(ps) => {
                        let ps: Vec<ParamEntry> = ps
                            .iter()
                            .map(|p| ParamEntry {
                                name: leak_str(p.name),
                                optional: u8::from(p.optional),
                            })
                            .collect();
                        let ps: &'static [ParamEntry] = Box::leak(ps.into_boxed_slice());
                        (ps.as_ptr(), ps.len())
                    }
                };
                WorkerEntry {
                    name: leak_str(short),
                    doc: leak_str(&f.doc),
                    imports: imports.as_ptr(),
                    imports_len: imports.len(),
                    forgive: u8::from(f.forgive),
                    params,
                    params_len,
                    inputs: f.inputs.map_or(-1, |n| n as i64),
                    call: Some(call),
                }
            })
            .collect();
        let _ = FUNCTIONS.set(own.into_iter().map(|(_, f)| f).collect());
        let entries: &'static [WorkerEntry] = Box::leak(entries.into_boxed_slice());
        let m = Box::leak(Box::new(ManifestExt2 {
            base: ManifestExt {
                base: Manifest {
                    header: ManifestHeader {
                        magic: MAGIC,
                        abi_major: ABI_MAJOR,
                        abi_minor: ABI_MINOR,
                        size: std::mem::size_of::<ManifestExt2>(),
                    },
                    name: leak_str(name),
                    version: leak_str(version),
                    papy_version: leak_str(env!("CARGO_PKG_VERSION")),
                    rustc_version: leak_str(env!("PAPY_RUSTC_VERSION")),
                    workers: entries.as_ptr(),
                    workers_len: entries.len(),
                    free: Some(free),
                },
                param_types: param_types.as_ptr(),
                param_types_len: param_types.len(),
            },
            call_batch: Some(call_batch),
        }));
        // The extension starts with the 1.0 manifest (repr(C), first field).
        std::ptr::from_ref::<Manifest>(&m.base.base) as usize
    });
    addr as *const Manifest
}

/// A message for the host, packed as a MessagePack string.
fn encode(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&Value::from(message), &mut out);
    out
}

/// The single call's input: one MessagePack array `[inbox, args]` (what
/// the host writes for a `(Vec<Value>, Vec<Value>)`).
fn decode_call(bytes: &[u8]) -> Result<(Vec<Value>, Vec<Value>), String> {
    let Value::List(pair) = decode_value(bytes)? else {
        return Err("the call is not an array".into());
    };
    match pair.as_slice() {
        [Value::List(inbox), Value::List(args)] => Ok((inbox.to_vec(), args.to_vec())),
        _ => Err("the call is not [inbox, args]".into()),
    }
}

fn dispatch(index: usize, bytes: &[u8]) -> (i32, Vec<u8>) {
    let Some(f) = FUNCTIONS.get().and_then(|fs| fs.get(index)) else {
        return (
            STATUS_BAD_INPUT,
            encode(&format!("the plugin has no worker number {index}")),
        );
    };
    let (inbox, args) = match decode_call(bytes) {
        Ok(x) => x,
        Err(e) => {
            return (
                STATUS_BAD_INPUT,
                encode(&format!("cannot decode the call: {e}")),
            )
        }
    };
    let mut out = Vec::new();
    match f.invoke(&inbox, &args) {
        Ok(v) => {
            encode_value(&v, &mut out);
            (STATUS_OK, out)
        }
        Err(e) => {
            let err = Value::list([
                Value::Int(i64::from(e.kind().code())),
                Value::from(e.message()),
            ]);
            encode_value(&err, &mut out);
            (STATUS_ERROR, out)
        }
    }
}

/// What both shims do around their dispatcher: read the input bytes, turn
/// a panic into a [`STATUS_PANIC`] reply carrying its message (the
/// plugin's own panic hook stays silent for it: `quiet_caught_panics`,
/// installed with the manifest), and hand the reply buffer over to the host.
///
/// # Safety
/// As [`call`].
unsafe fn serve(
    dispatcher: fn(usize, &[u8]) -> (i32, Vec<u8>),
    index: usize,
    input: *const u8,
    input_len: usize,
    out: *mut OutBuf,
) -> i32 {
    let bytes: &[u8] = if input.is_null() || input_len == 0 {
        &[]
    } else {
        // SAFETY: the caller passes `input_len` readable bytes at `input` (ABI contract).
        unsafe { std::slice::from_raw_parts(input, input_len) }
    };
    let (status, payload) = match crate::catch(|| dispatcher(index, bytes)) {
        Ok(r) => r,
        Err(msg) => (STATUS_PANIC, encode(&msg)),
    };
    let mut payload = std::mem::ManuallyDrop::new(payload);
    if out.is_null() {
        std::mem::ManuallyDrop::into_inner(payload);
        return STATUS_BAD_INPUT;
    }
    // SAFETY: `out` is a valid, writable OutBuf (ABI contract); the buffer is
    // handed over to the host, which returns it to `free`.
    unsafe {
        *out = OutBuf {
            ptr: payload.as_mut_ptr(),
            len: payload.len(),
            cap: payload.capacity(),
        };
    }
    status
}

/// The call shim of every exported worker.
///
/// # Safety
/// `input` must point to `input_len` readable bytes (or be null with length
/// 0) and `out` must point to a writable [`OutBuf`]; the host guarantees both.
pub unsafe extern "C" fn call(
    index: usize,
    input: *const u8,
    input_len: usize,
    out: *mut OutBuf,
) -> i32 {
    // SAFETY: the caller upholds `serve`'s contract, which is this function's.
    unsafe { serve(dispatch, index, input, input_len, out) }
}

fn dispatch_batch(index: usize, bytes: &[u8]) -> (i32, Vec<u8>) {
    let Some(f) = FUNCTIONS.get().and_then(|fs| fs.get(index)) else {
        return (
            STATUS_BAD_INPUT,
            encode(&format!("the plugin has no worker number {index}")),
        );
    };
    let bad = |m: String| (STATUS_BAD_INPUT, encode(&m));
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return bad("a batch shorter than its header".into());
    };
    let args_len = usize::try_from(u64::from_le_bytes(*len)).unwrap_or(usize::MAX);
    if args_len > rest.len() {
        return bad(format!(
            "a batch's arguments claim {args_len} bytes of {}",
            rest.len()
        ));
    }
    let (args, values) = rest.split_at(args_len);
    let (args, values) = match (decode_values(args), decode_values(values)) {
        (Ok(a), Ok(v)) => (a, v),
        (Err(e), _) | (_, Err(e)) => return bad(format!("cannot decode the batch: {e}")),
    };
    let mut statuses = Vec::with_capacity(values.len());
    let mut payloads = Vec::with_capacity(values.len() * 2);
    for v in &values {
        match crate::catch(|| f.invoke(std::slice::from_ref(v), &args)) {
            Ok(Ok(r)) => {
                statuses.push(STATUS_OK as u8);
                encode_value(&r, &mut payloads);
            }
            Ok(Err(e)) => {
                statuses.push(STATUS_ERROR as u8);
                let err = Value::list([
                    Value::Int(i64::from(e.kind().code())),
                    Value::from(e.message()),
                ]);
                encode_value(&err, &mut payloads);
            }
            Err(msg) => {
                statuses.push(STATUS_PANIC as u8);
                encode_value(&Value::from(msg), &mut payloads);
            }
        }
    }
    statuses.extend_from_slice(&payloads);
    (STATUS_OK, statuses)
}

/// The batch call shim (ABI 1.2): packed arguments and one-value inboxes
/// in, one status byte and one packed payload per inbox out (the layout is
/// documented on [`ManifestExt2`]).
///
/// # Safety
/// As [`call`].
pub unsafe extern "C" fn call_batch(
    index: usize,
    input: *const u8,
    input_len: usize,
    out: *mut OutBuf,
) -> i32 {
    // SAFETY: the caller upholds `serve`'s contract, which is this function's.
    unsafe { serve(dispatch_batch, index, input, input_len, out) }
}

/// Frees a buffer returned by [`call`].
///
/// # Safety
/// `(ptr, len, cap)` must come from one `OutBuf` written by [`call`], freed once.
pub unsafe extern "C" fn free(ptr: *mut u8, len: usize, cap: usize) {
    if !ptr.is_null() {
        // SAFETY: the triple is exactly the parts of a Vec<u8> that `call` leaked.
        drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
    }
}
