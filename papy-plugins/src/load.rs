//! The host side: loading plugin files, checking their manifest, and
//! registering their workers as `plugin_name.worker`.
//!
//! Rules: the header (magic, ABI major, size) is checked before anything
//! else is read; every string is copied; every buffer the plugin returns is
//! freed with the plugin's own `free`; a library is never unloaded (Rust
//! code cannot be unloaded safely: thread-locals, leaked statics and
//! registered function pointers would dangle); the same file is not loaded
//! twice, nor two plugins of the same name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use papy_core::registry::{self, Callable, Function, ImportResolver, Param};
use papy_core::{ErrorKind, ItemError, Value};
use sha2::{Digest, Sha256};

use crate::abi::{
    CallFn, EntryFn, FreeFn, Manifest, ManifestExt, ManifestExt2, ManifestHeader, OutBuf, StrRef,
    ABI_MAJOR, ENTRY_SYMBOL, MAGIC, MAX_NAME_LEN, MAX_TABLE_LEN, MAX_TEXT_LEN, STATUS_BAD_INPUT,
    STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use crate::error::PluginError;
use crate::search::SearchPath;

/// A loaded plugin (kept for the life of the process).
#[derive(Debug)]
pub struct Plugin {
    name: String,
    version: String,
    papy_version: String,
    rustc_version: String,
    path: PathBuf,
    sha256: String,
    functions: Vec<String>,
    _library: &'static libloading::Library,
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The plugin's version.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The papy version it was built with.
    pub fn papy_version(&self) -> &str {
        &self.papy_version
    }
    /// The rustc that built it.
    pub fn rustc_version(&self) -> &str {
        &self.rustc_version
    }
    /// The file (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// SHA-256 of the file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The registered names of its workers (`plugin.worker`).
    pub fn functions(&self) -> &[String] {
        &self.functions
    }
}

fn loaded() -> MutexGuard<'static, Vec<Arc<Plugin>>> {
    static LOADED: Mutex<Vec<Arc<Plugin>>> = Mutex::new(Vec::new());
    LOADED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every plugin loaded in this process.
pub fn plugins() -> Vec<Arc<Plugin>> {
    loaded().clone()
}

/// The loaded plugin named `name`.
pub fn plugin(name: &str) -> Option<Arc<Plugin>> {
    loaded().iter().find(|p| p.name == name).cloned()
}

fn invalid(path: &Path, message: String) -> PluginError {
    PluginError::InvalidManifest {
        path: path.to_path_buf(),
        message,
    }
}

/// A manifest string of at most `max` bytes, checked before it is read.
fn read_str(path: &Path, what: &str, s: StrRef, max: usize) -> Result<String, PluginError> {
    if s.len == 0 {
        return Ok(String::new());
    }
    if s.len > max {
        return Err(invalid(
            path,
            format!("{what} is {} bytes long (at most {max})", s.len),
        ));
    }
    if s.ptr.is_null() {
        return Err(invalid(path, format!("{what} is a null pointer")));
    }
    // SAFETY: the manifest passed its magic/ABI/size checks, so `s` is a StrRef
    // written by export.rs: `len` bytes at `ptr` (bounded just above),
    // leaked for the life of the library.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr.cast::<u8>(), s.len) };
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid(path, format!("{what} is not UTF-8")))
}

/// A manifest table of at most [`MAX_TABLE_LEN`] entries, its pointer
/// checked for null and alignment before a slice is made of it.
fn array<'a, T>(
    path: &Path,
    what: &str,
    ptr: *const T,
    len: usize,
) -> Result<&'a [T], PluginError> {
    if len == 0 {
        return Ok(&[]);
    }
    if len > MAX_TABLE_LEN {
        return Err(invalid(
            path,
            format!("{what} has {len} entries (at most {MAX_TABLE_LEN})"),
        ));
    }
    if ptr.is_null() {
        return Err(invalid(
            path,
            format!("{what} is a null pointer with {len} entries"),
        ));
    }
    if !ptr.is_aligned() {
        return Err(invalid(path, format!("{what} is not aligned")));
    }
    // SAFETY: as in `read_str`: a table of `len` entries leaked by the
    // plugin; `len` is bounded (so `len * size_of::<T>()` cannot overflow)
    // and the pointer is non-null and aligned.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

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
fn call_plugin(
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
fn call_plugin_batch(
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

fn host_architecture() -> Option<object::Architecture> {
    use object::Architecture as A;
    Some(match std::env::consts::ARCH {
        "x86_64" => A::X86_64,
        "x86" => A::I386,
        "aarch64" => A::Aarch64,
        "arm" => A::Arm,
        "riscv64" => A::Riscv64,
        "powerpc64" => A::PowerPc64,
        "s390x" => A::S390x,
        _ => return None,
    })
}

/// Checks the file before the dynamic loader sees it: a truncated or
/// foreign library can crash `dlopen` itself (SIGBUS on unmapped pages).
fn precheck(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    use object::{Object, ObjectSegment};
    let bad = |message: String| PluginError::Open {
        path: path.to_path_buf(),
        message,
    };
    let file = object::File::parse(bytes).map_err(|e| bad(format!("not a shared library: {e}")))?;
    if let Some(host) = host_architecture() {
        if file.architecture() != host {
            return Err(bad(format!(
                "built for {:?}, this host is {:?}",
                file.architecture(),
                host
            )));
        }
    }
    for seg in file.segments() {
        let (offset, size) = seg.file_range();
        if offset.saturating_add(size) > bytes.len() as u64 {
            return Err(bad(format!(
                "truncated: a segment needs bytes {offset}..{} but the file has {}",
                offset.saturating_add(size),
                bytes.len()
            )));
        }
    }
    Ok(())
}

/// Loads a plugin file and registers its workers as `plugin_name.worker`.
///
/// # Errors
/// A [`PluginError`] saying what is wrong with the file.
pub fn load(path: impl AsRef<Path>) -> Result<Arc<Plugin>, PluginError> {
    let given = path.as_ref();
    let path = given.canonicalize().map_err(|source| PluginError::Io {
        path: given.to_path_buf(),
        source,
    })?;
    if let Some(existing) = loaded().iter().find(|p| p.path == path) {
        return Err(PluginError::AlreadyLoaded {
            existing: existing.path.clone(),
            path,
        });
    }
    let content = std::fs::read(&path).map_err(|source| PluginError::Io {
        path: path.clone(),
        source,
    })?;
    let sha256 = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    // The same contents under another name (a copy, a hard link) are the
    // same plugin: found before the copy is opened, so its initialisers
    // never run a second time.
    if let Some(existing) = loaded().iter().find(|p| p.sha256 == sha256) {
        return Err(PluginError::AlreadyLoaded {
            existing: existing.path.clone(),
            path,
        });
    }
    precheck(&path, &content)?;
    drop(content);
    crate::inspect::inspect(&path).map_err(|message| PluginError::Inspect {
        path: path.clone(),
        message,
    })?;

    // SAFETY: loading a library runs its initialisers; papy only loads files the
    // user named as plugins (documented in docs/plugins.md).
    let library = unsafe { libloading::Library::new(&path) }.map_err(|e| PluginError::Open {
        path: path.clone(),
        message: e.to_string(),
    })?;
    // Never unloaded, whatever happens next: even a refused plugin may have
    // run initialisers or handed out pointers.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol, if present, is the `extern "C" fn() -> *const Manifest`
    // that export_plugin! defines; its type is checked through the header below.
    let entry: EntryFn = match unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) } {
        Ok(sym) => *sym,
        Err(_) => return Err(PluginError::NotAPlugin { path }),
    };
    // SAFETY: calling the plugin's entry function; it takes no arguments and
    // returns a pointer to a manifest that lives as long as the library.
    let ptr = unsafe { entry() };
    if ptr.is_null() {
        return Err(PluginError::InvalidManifest {
            path,
            message: "the entry symbol returned a null manifest".into(),
        });
    }
    if !ptr.is_aligned() || !ptr.cast::<ManifestExt2>().is_aligned() {
        return Err(PluginError::InvalidManifest {
            path,
            message: "the manifest pointer is not aligned".into(),
        });
    }
    // SAFETY: every manifest starts with a ManifestHeader (repr(C)); reading
    // only the header is valid for any ABI version, and nothing else is read
    // until magic, major and size are checked.
    let header: ManifestHeader = unsafe { std::ptr::read(ptr.cast::<ManifestHeader>()) };
    if header.magic != MAGIC {
        return Err(PluginError::BadMagic {
            path,
            found: header.magic,
        });
    }
    if header.abi_major != ABI_MAJOR {
        return Err(PluginError::AbiMismatch {
            path,
            found: (header.abi_major, header.abi_minor),
            expected: ABI_MAJOR,
        });
    }
    if header.size < std::mem::size_of::<Manifest>() {
        return Err(PluginError::ManifestTooSmall {
            path,
            found: header.size,
            expected: std::mem::size_of::<Manifest>(),
        });
    }
    // SAFETY: magic, major and size match this host's Manifest layout.
    let m: &Manifest = unsafe { &*ptr };
    // ABI 1.1: the parameters' types follow the manifest, when the plugin
    // says so in both its minor version and its size.
    let mut types: Option<std::slice::Iter<'_, StrRef>> =
        if header.abi_minor >= 1 && header.size >= std::mem::size_of::<ManifestExt>() {
            // SAFETY: the plugin declares a manifest of at least
            // `size_of::<ManifestExt>()` bytes at `ptr` (checked above), laid out
            // as a ManifestExt (repr(C), the 1.0 manifest first).
            let ext: &ManifestExt = unsafe { &*ptr.cast::<ManifestExt>() };
            let table = array(
                &path,
                "the parameter type table",
                ext.param_types,
                ext.param_types_len,
            )?;
            Some(table.iter())
        } else {
            None
        };
    // ABI 1.2: a batch call shim follows, when the plugin says so.
    let call_batch: Option<CallFn> =
        if header.abi_minor >= 2 && header.size >= std::mem::size_of::<ManifestExt2>() {
            // SAFETY: the plugin declares a manifest of at least
            // `size_of::<ManifestExt2>()` bytes at `ptr` (checked just above),
            // laid out as a ManifestExt2 (repr(C), the older manifests first).
            let ext: &ManifestExt2 = unsafe { &*ptr.cast::<ManifestExt2>() };
            match ext.call_batch {
                Some(f) => Some(f),
                None => {
                    return Err(invalid(
                        &path,
                        "the batch call shim is a null pointer".into(),
                    ))
                }
            }
        } else {
            None
        };
    let name = read_str(&path, "the plugin name", m.name, MAX_NAME_LEN)?;
    if name.is_empty() || name.contains(['.', ':']) || name.contains(char::is_control) {
        return Err(PluginError::InvalidManifest {
            path,
            message: format!("invalid plugin name `{name}`"),
        });
    }
    if let Some(existing) = plugin(&name) {
        return Err(PluginError::DuplicateName {
            name,
            existing: existing.path.clone(),
            path,
        });
    }
    let version = read_str(&path, "the version", m.version, MAX_NAME_LEN)?;
    let papy_version = read_str(&path, "the papy version", m.papy_version, MAX_NAME_LEN)?;
    let rustc_version = read_str(&path, "the rustc version", m.rustc_version, MAX_NAME_LEN)?;
    let Some(free) = m.free else {
        return Err(invalid(&path, "the free function is a null pointer".into()));
    };
    let entries = array(&path, "the worker table", m.workers, m.workers_len)?;
    let mut functions = Vec::with_capacity(entries.len());
    for (index, e) in entries.iter().enumerate() {
        let short = read_str(&path, "a worker name", e.name, MAX_NAME_LEN)?;
        let imports = array(&path, "an imports table", e.imports, e.imports_len)?
            .iter()
            .map(|s| read_str(&path, "an import", *s, MAX_NAME_LEN))
            .collect::<Result<Vec<_>, _>>()?;
        let params = if e.params_len == usize::MAX {
            None
        } else {
            let ps = array(&path, "a parameter table", e.params, e.params_len)?;
            let mut out = Vec::with_capacity(ps.len());
            for p in ps {
                let pname: &'static str = Box::leak(
                    read_str(&path, "a parameter name", p.name, MAX_NAME_LEN)?.into_boxed_str(),
                );
                let ty: &'static str = match types.as_mut() {
                    None => "",
                    Some(t) => {
                        let s = t.next().ok_or_else(|| PluginError::InvalidManifest {
                            path: path.clone(),
                            message:
                                "the parameter type table is shorter than the parameter tables"
                                    .into(),
                        })?;
                        Box::leak(
                            read_str(&path, "a parameter type", *s, MAX_TEXT_LEN)?.into_boxed_str(),
                        )
                    }
                };
                out.push(Param {
                    name: pname,
                    optional: p.optional != 0,
                    ty,
                });
            }
            Some(out)
        };
        let Some(call) = e.call else {
            return Err(invalid(
                &path,
                format!("worker {index} (`{short}`) has a null call pointer"),
            ));
        };
        functions.push(Function {
            name: format!("{name}.{short}"),
            params,
            inputs: usize::try_from(e.inputs).ok(),
            imports,
            forgive: e.forgive != 0,
            doc: read_str(&path, "a doc comment", e.doc, MAX_TEXT_LEN)?,
            portable: true,
            call: Callable::Dynamic(Arc::new(move |inbox: &[Value], args: &[Value]| {
                call_plugin(call, free, index, inbox, args)
            })),
            batch: call_batch.map(|cb| {
                let f: Arc<papy_core::registry::BatchFn> =
                    Arc::new(move |inboxes: &[&[Value]], args: &[Value]| {
                        call_plugin_batch(cb, free, index, inboxes, args)
                    });
                f
            }),
        });
    }
    if types.is_some_and(|t| t.len() > 0) {
        return Err(PluginError::InvalidManifest {
            path,
            message: "the parameter type table is longer than the parameter tables".into(),
        });
    }
    // All or nothing: refuse before registering anything.
    if let Some(taken) = functions.iter().find(|f| registry::contains(&f.name)) {
        return Err(PluginError::Register {
            name,
            source: papy_core::Error::Config(format!(
                "a worker function named `{}` is already registered",
                taken.name
            )),
        });
    }
    let mut names = Vec::with_capacity(functions.len());
    for f in functions {
        let n = f.name.clone();
        registry::register(f).map_err(|source| PluginError::Register {
            name: name.clone(),
            source,
        })?;
        names.push(n);
    }
    registry::register_module(&name);
    registry::record_module_hash(&name, &sha256);
    let plugin = Arc::new(Plugin {
        name,
        version,
        papy_version,
        rustc_version,
        path,
        sha256,
        functions: names,
        _library: library,
    });
    tracing::info!(
        "loaded plugin `{}` {} from {} ({} workers)",
        plugin.name,
        plugin.version,
        plugin.path.display(),
        plugin.functions.len()
    );
    loaded().push(plugin.clone());
    Ok(plugin)
}

/// Loads plugin `name` from the search path (or returns it if already loaded).
///
/// # Errors
/// [`PluginError::NotFound`] with the directories searched, or a load error.
pub fn load_by_name(name: &str, path: &SearchPath) -> Result<Arc<Plugin>, PluginError> {
    if let Some(p) = plugin(name) {
        return Ok(p);
    }
    match path.find(name) {
        Some(file) => load(file),
        None => Err(PluginError::NotFound {
            name: name.to_string(),
            file: SearchPath::file_name(name),
            searched: path.dirs().to_vec(),
        }),
    }
}

/// Resolves `imports` by loading plugins of that name from a search path.
#[derive(Debug, Clone)]
pub struct PluginResolver {
    path: SearchPath,
}

impl PluginResolver {
    /// A resolver over `path`.
    pub fn new(path: SearchPath) -> PluginResolver {
        PluginResolver { path }
    }
}

impl ImportResolver for PluginResolver {
    fn resolve(&self, module: &str) -> Result<bool, String> {
        if plugin(module).is_some() {
            return Ok(true);
        }
        match self.path.find(module) {
            None => Ok(false),
            Some(file) => load(file).map(|_| true).map_err(|e| e.to_string()),
        }
    }

    fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .path
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!(
            "plugin search path [{}]",
            if dirs.is_empty() {
                "empty".to_string()
            } else {
                dirs.join(", ")
            }
        )
    }
}

/// Makes `imports` load plugins from `path` on demand in this process.
pub fn install_resolver(path: SearchPath) {
    registry::add_import_resolver(Arc::new(PluginResolver::new(path)));
}
