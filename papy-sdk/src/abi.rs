//! The plugin ABI: `#[repr(C)]` types shared by plugins and hosts.
//!
//! A plugin exports one symbol, [`ENTRY_SYMBOL`], an `extern "C"` function
//! returning a pointer to a [`Manifest`] that lives as long as the library.
//! The manifest starts with a [`ManifestHeader`] (magic, ABI version, size)
//! that a host reads and checks *before* anything else.
//!
//! Version rules: a change that removes or reorders fields bumps
//! [`ABI_MAJOR`] (hosts refuse other majors); a change that only appends
//! fields at the end bumps [`ABI_MINOR`] (a host reads what it knows and
//! refuses a manifest smaller than its own struct).
//!
//! Calls cross the boundary as MessagePack bytes: the host passes
//! `[inbox, args]` (two arrays of values) and gets a buffer allocated by the
//! plugin, which the host copies and hands back to the plugin's `free`.

use std::os::raw::c_char;

/// "PAPYPLUG" in ASCII.
pub const MAGIC: u64 = 0x5041_5059_504c_5547;
/// Incompatible ABI changes bump this.
pub const ABI_MAJOR: u32 = 1;
/// Compatible (appending) ABI changes bump this.
///
/// - 1.0: the [`Manifest`].
/// - 1.1: a [`ManifestExt`] around it, adding each parameter's type.
/// - 1.2: a [`ManifestExt2`] around that, adding a batch call.
pub const ABI_MINOR: u32 = 2;

/// Most entries a host accepts in one manifest table (workers, a
/// worker's imports or parameters, the parameter type table). Checked, with
/// the pointer's alignment, before any table is read.
pub const MAX_TABLE_LEN: usize = 1 << 16;

/// Most bytes a host accepts in a name (the plugin's, a worker's, a
/// parameter's, an import, a version).
pub const MAX_NAME_LEN: usize = 1024;

/// Most bytes a host accepts in any other manifest string (a doc comment,
/// a parameter type).
pub const MAX_TEXT_LEN: usize = 1 << 20;

/// The entry symbol every plugin exports (NUL-terminated for `dlsym`).
pub const ENTRY_SYMBOL: &[u8] = b"papy_plugin_manifest\0";

/// Status: the call succeeded; the buffer holds the result value.
pub const STATUS_OK: i32 = 0;
/// Status: the function returned an error; the buffer holds `[kind code, message]`.
pub const STATUS_ERROR: i32 = 1;
/// Status: the function panicked (caught in the plugin); the buffer holds the message.
pub const STATUS_PANIC: i32 = 2;
/// Status: the input could not be decoded, or the index is unknown; the buffer holds the message.
pub const STATUS_BAD_INPUT: i32 = 3;

/// A borrowed UTF-8 string owned by the plugin.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrRef {
    /// First byte.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

/// A buffer allocated by the plugin and returned to the host.
#[repr(C)]
#[derive(Debug)]
pub struct OutBuf {
    /// First byte (null when empty).
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
    /// Allocation capacity, needed by `free`.
    pub cap: usize,
}

/// One argument parameter of a plugin worker.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ParamEntry {
    /// Parameter name.
    pub name: StrRef,
    /// Non-zero when the parameter may be left out.
    pub optional: u8,
}

/// Calls worker `index` with MessagePack `[inbox, args]`; writes the result to `out`.
pub type CallFn =
    unsafe extern "C" fn(index: usize, input: *const u8, input_len: usize, out: *mut OutBuf) -> i32;

/// Frees a buffer the plugin returned.
pub type FreeFn = unsafe extern "C" fn(ptr: *mut u8, len: usize, cap: usize);

/// One worker function of a plugin.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WorkerEntry {
    /// Name within the plugin (`tokenize`, `sub.f`); the host registers `plugin.name`.
    pub name: StrRef,
    /// The doc comment.
    pub doc: StrRef,
    /// `imports` entries.
    pub imports: *const StrRef,
    /// Number of `imports` entries.
    pub imports_len: usize,
    /// Non-zero for `forgive`.
    pub forgive: u8,
    /// Argument parameters (null with `params_len == usize::MAX` for raw functions).
    pub params: *const ParamEntry,
    /// Number of parameters, or `usize::MAX` for raw functions.
    pub params_len: usize,
    /// Inbox elements taken, or -1 for any.
    pub inputs: i64,
    /// The call shim (the same dispatcher for every entry, told `index`);
    /// a host refuses a null one (`None`: the layout is a nullable pointer).
    pub call: Option<CallFn>,
}

/// The fixed prefix of every manifest, checked before anything else is read.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ManifestHeader {
    /// Must be [`MAGIC`].
    pub magic: u64,
    /// Must equal the host's [`ABI_MAJOR`].
    pub abi_major: u32,
    /// The plugin's [`ABI_MINOR`].
    pub abi_minor: u32,
    /// `size_of::<Manifest>()` in the plugin.
    pub size: usize,
}

/// What a plugin's entry symbol returns.
#[repr(C)]
#[derive(Debug)]
pub struct Manifest {
    /// Checked first.
    pub header: ManifestHeader,
    /// The plugin's name (its functions register as `name.function`).
    pub name: StrRef,
    /// The plugin's version.
    pub version: StrRef,
    /// The papy version it was built against.
    pub papy_version: StrRef,
    /// The rustc that built it.
    pub rustc_version: StrRef,
    /// The worker table.
    pub workers: *const WorkerEntry,
    /// Number of workers.
    pub workers_len: usize,
    /// Frees buffers returned by `call`; a host refuses a null one.
    pub free: Option<FreeFn>,
}

/// ABI 1.1: a [`Manifest`] followed by the type of every parameter.
///
/// A 1.1 plugin's entry symbol returns a pointer to this struct (its first
/// field is the 1.0 manifest, so the pointer is also a valid
/// `*const Manifest`) with `header.abi_minor >= 1` and
/// `header.size == size_of::<ManifestExt>()`. A host reads the extension
/// only when both say it is there, so 1.0 plugins load unchanged (their
/// parameters have no known type) and a 1.0 host ignores the extension.
#[repr(C)]
#[derive(Debug)]
pub struct ManifestExt {
    /// The 1.0 manifest.
    pub base: Manifest,
    /// The Rust type of each parameter as written (`f64`,
    /// `Option<Vec<String>>`), worker by worker in table order, the
    /// parameters of each in order; raw workers have none.
    pub param_types: *const StrRef,
    /// Number of entries: the sum of `params_len` over non-raw workers.
    pub param_types_len: usize,
}

/// ABI 1.2: a [`ManifestExt`] followed by a batch call shim.
///
/// `call_batch(index, input, len, out)` calls worker `index` on a batch of
/// one-value inboxes with the same arguments, in one crossing of the
/// boundary. Values are *packed* (MessagePack values one after the other,
/// as in the worker protocol's frames):
///
/// - input: the length `L` of the arguments as 8 little-endian bytes, then
///   `L` bytes of packed arguments, then the packed inbox values;
/// - output, with [`STATUS_OK`]: one status byte per inbox (the statuses of
///   a single call), then one packed payload per inbox: the result, the
///   list `[kind code, message]` of an error, or a panic's message.
///
/// Any other status fails the whole batch; its buffer holds the message.
/// A host reads the shim only when `abi_minor >= 2` and the size say it is
/// there.
#[repr(C)]
#[derive(Debug)]
pub struct ManifestExt2 {
    /// The 1.1 manifest.
    pub base: ManifestExt,
    /// The batch call shim (the same for every worker, told `index`); a
    /// host refuses a null one.
    pub call_batch: Option<CallFn>,
}

/// The type of the entry symbol.
pub type EntryFn = unsafe extern "C" fn() -> *const Manifest;
