//! Finds backend plugins by name, checks them and runs sessions through their C function
//! table (see `dicesim-backend-api`).
//!
//! Search order for `libdicesim_backend_<name>.so`: every folder of `DICESIM_PLUGIN_PATH`
//! (colon-separated), then the folder of the running executable, then its parent when that
//! folder is `deps` (cargo's test binaries live in `target/<profile>/deps`).
//!
//! Plugins are code run in the process: a name is `[a-z0-9_]+` (it cannot reach outside
//! the search folders), and `DICESIM_PLUGIN_PATH` entries that are relative are ignored;
//! as root, so are entries not owned by root or writable by group or others, so that
//! another user cannot plant a library that root then loads.
//!
//! Loaded libraries stay loaded for the life of the process: engines keep threads and
//! thread-locals that do not survive `dlclose`.
#![warn(missing_docs)]

use dicesim_backend_api as api;
pub use dicesim_backend_api::{DType, UnitKind};
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A loader or plugin error; every variant is a message for the user.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// No plugin file of that name in the search path.
    #[error("no backend plugin '{name}' ({file}) in {searched}; build it with `cargo build --release --workspace` or add its folder to DICESIM_PLUGIN_PATH")]
    NotFound {
        /// Backend name.
        name: String,
        /// File name looked for.
        file: String,
        /// Folders searched.
        searched: String,
    },
    /// The file exists but could not be loaded (missing engine library, wrong architecture...).
    #[error("cannot load backend plugin {path}: {reason}")]
    Load {
        /// Plugin file.
        path: PathBuf,
        /// dlopen's message, with a hint.
        reason: String,
    },
    /// Built against another ABI.
    #[error("backend plugin {path} uses plugin ABI version {found}, this dicesim expects {expected}: rebuild the plugin with this dicesim (`cargo build --release --workspace`)")]
    AbiMismatch {
        /// Plugin file.
        path: PathBuf,
        /// ABI version of the plugin.
        found: u32,
        /// ABI version of the host.
        expected: u32,
    },
    /// The engine is not usable here.
    #[error("backend '{name}' is not usable here: {message}")]
    Unavailable {
        /// Backend name.
        name: String,
        /// What the user should do.
        message: String,
    },
    /// A call into the plugin failed.
    #[error("backend '{name}': {message}")]
    Call {
        /// Backend name.
        name: String,
        /// The plugin's message.
        message: String,
    },
}

/// A host-side tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: TensorData,
}

/// Values of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit integers.
    I64(Vec<i64>),
}

impl Tensor {
    /// An f32 tensor.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
        }
    }

    /// The values, when f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: plain-old-data slices viewed as bytes.
        unsafe {
            match &self.data {
                TensorData::F32(v) => std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4),
                TensorData::I64(v) => std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 8),
            }
        }
    }
}

/// Session options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Threads inside one operator (the unit's cores); 0: the engine's default.
    pub intra_op_threads: usize,
    /// Kind of unit.
    pub unit_kind: UnitKind,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            intra_op_threads: 0,
            unit_kind: UnitKind::Cpu,
        }
    }
}

/// Folders searched for plugins, in order.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = std::env::var_os("DICESIM_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| trusted_dir(d)));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if dir.file_name().is_some_and(|n| n == "deps") {
            if let Some(parent) = dir.parent() {
                dirs.push(dir.clone());
                dirs.push(parent.to_path_buf());
            }
        } else {
            dirs.push(dir);
        }
    }
    dirs
}

/// Whether a `DICESIM_PLUGIN_PATH` entry may be searched: absolute, and, when this process
/// runs as root, a folder owned by root that group and others cannot write.
fn trusted_dir(d: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if !d.is_absolute() {
        return false;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return true;
    }
    std::fs::metadata(d).is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0)
}

/// Whether `name` can name a plugin: one or more of `[a-z0-9_]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Every plugin found in the search path: (name, file), first occurrence of each name.
pub fn discover() -> Vec<(String, PathBuf)> {
    let prefix = format!("{}dicesim_backend_", std::env::consts::DLL_PREFIX);
    let suffix = std::env::consts::DLL_SUFFIX;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for dir in search_path() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here: Vec<(String, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                let name = f.strip_prefix(&prefix)?.strip_suffix(suffix)?.to_string();
                valid_name(&name).then(|| (name, e.path()))
            })
            .collect();
        here.sort();
        for (n, p) in here {
            if !found.iter().any(|(m, _)| *m == n) {
                found.push((n, p));
            }
        }
    }
    found
}

/// Finds the file of plugin `name`.
pub fn find(name: &str) -> Result<PathBuf, BackendError> {
    let file = api::plugin_file_name(name);
    let dirs = if valid_name(name) {
        search_path()
    } else {
        // not searched anywhere: the error below says so
        Vec::new()
    };
    for d in &dirs {
        let p = d.join(&file);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(BackendError::NotFound {
        name: name.to_string(),
        file,
        searched: if !valid_name(name) {
            "no folder (a plugin name is made of a-z, 0-9 and _)".into()
        } else if dirs.is_empty() {
            "(no folders)".into()
        } else {
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// A loaded plugin.
#[derive(Clone)]
pub struct Backend {
    table: &'static api::BackendTable,
    path: PathBuf,
    name: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

fn loaded() -> &'static Mutex<HashMap<PathBuf, &'static api::BackendTable>> {
    static L: OnceLock<Mutex<HashMap<PathBuf, &'static api::BackendTable>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

fn load_hint(reason: &str) -> String {
    if reason.contains("libonnxruntime") {
        format!("{reason} (libonnxruntime not found: run scripts/setup.sh or set ORT_DYLIB_PATH)")
    } else if reason.contains("libtorch") || reason.contains("libc10") {
        format!("{reason} (LibTorch not found: run scripts/setup.sh, or set LD_LIBRARY_PATH to the folder of libtorch_cpu.so)")
    } else if reason.contains("wrong ELF class") || reason.contains("cannot open shared object") {
        format!("{reason} (rebuild with `cargo build --release --workspace`)")
    } else {
        reason.to_string()
    }
}

struct Collect {
    messages: Vec<String>,
    outputs: Vec<(String, Tensor)>,
    error: Option<String>,
}

unsafe extern "C" fn on_message(ctx: *mut c_void, msg: api::Str) {
    let c = &mut *(ctx as *mut Collect);
    c.messages.push(msg.to_string_lossy());
}

unsafe extern "C" fn on_output(ctx: *mut c_void, t: *const api::RawTensor) {
    let c = &mut *(ctx as *mut Collect);
    let Some(t) = t.as_ref() else {
        c.error = Some("the plugin sent a null output".into());
        return;
    };
    let name = t.name.to_string_lossy();
    let shape: Vec<usize> = if t.ndim == 0 {
        Vec::new()
    } else {
        std::slice::from_raw_parts(t.shape, t.ndim)
            .iter()
            .map(|&d| d as usize)
            .collect()
    };
    let numel: usize = shape.iter().product();
    let Some(dtype) = DType::from_code(t.dtype) else {
        c.error = Some(format!(
            "output '{name}' has dtype code {}, which dicesim does not read",
            t.dtype
        ));
        return;
    };
    if numel * dtype.size() != t.nbytes || (t.data.is_null() && t.nbytes > 0) {
        c.error = Some(format!(
            "output '{name}': shape {shape:?} does not match its {} bytes",
            t.nbytes
        ));
        return;
    }
    // The one copy out of the engine's buffer.
    let data = match dtype {
        DType::F32 => {
            let mut v = vec![0f32; numel];
            if t.nbytes > 0 {
                std::ptr::copy_nonoverlapping(t.data, v.as_mut_ptr().cast::<u8>(), t.nbytes);
            }
            TensorData::F32(v)
        }
        DType::I64 => {
            let mut v = vec![0i64; numel];
            if t.nbytes > 0 {
                std::ptr::copy_nonoverlapping(t.data, v.as_mut_ptr().cast::<u8>(), t.nbytes);
            }
            TensorData::I64(v)
        }
    };
    c.outputs.push((name, Tensor { shape, data }));
}

fn with_sink<R>(f: impl FnOnce(&api::Sink) -> R) -> (R, Collect) {
    let mut c = Collect {
        messages: Vec::new(),
        outputs: Vec::new(),
        error: None,
    };
    let sink = api::Sink {
        ctx: (&mut c as *mut Collect).cast(),
        message: on_message,
        output: on_output,
    };
    let r = f(&sink);
    (r, c)
}

impl Backend {
    /// Loads the plugin called `name` from the search path.
    pub fn load(name: &str) -> Result<Backend, BackendError> {
        let path = find(name)?;
        Backend::load_file(&path)
    }

    /// Loads a plugin file.
    pub fn load_file(path: &Path) -> Result<Backend, BackendError> {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut map = loaded().lock().unwrap_or_else(|e| e.into_inner());
        let table = match map.get(&path) {
            Some(t) => *t,
            None => {
                let load_err = |e: libloading::Error| BackendError::Load {
                    path: path.clone(),
                    reason: load_hint(&e.to_string()),
                };
                // SAFETY: loading a dicesim plugin runs its initialisers; plugins are ours.
                let lib = unsafe { libloading::Library::new(&path) }.map_err(load_err)?;
                // Kept loaded for the life of the process (see the crate docs).
                let lib: &'static libloading::Library = Box::leak(Box::new(lib));
                // SAFETY: the symbol has the EntryFn signature by the plugin contract.
                let entry: libloading::Symbol<'static, api::EntryFn> = unsafe {
                    lib.get(api::ENTRY_SYMBOL.as_bytes())
                }
                .map_err(|e| BackendError::Load {
                    path: path.clone(),
                    reason: format!(
                        "{e}: not a dicesim backend plugin (no `{}` symbol)",
                        api::ENTRY_SYMBOL
                    ),
                })?;
                // SAFETY: the entry returns a pointer to a static table or null.
                let t = unsafe { entry() };
                if t.is_null() {
                    return Err(BackendError::Load {
                        path,
                        reason: "the plugin returned no function table".into(),
                    });
                }
                // The version is the first field of every ABI revision: read it alone first.
                // SAFETY: t points to a table whose first field is a u32.
                let found = unsafe { *(t as *const u32) };
                if found != api::ABI_VERSION {
                    return Err(BackendError::AbiMismatch {
                        path,
                        found,
                        expected: api::ABI_VERSION,
                    });
                }
                // SAFETY: same ABI version: the layout is ours; the library is never unloaded.
                let t: &'static api::BackendTable = unsafe { &*t };
                map.insert(path.clone(), t);
                t
            }
        };
        // SAFETY: static string of the plugin.
        let name = unsafe { table.name.to_string_lossy() };
        Ok(Backend { table, path, name })
    }

    /// Backend name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Backend version.
    pub fn version(&self) -> String {
        // SAFETY: static string of the plugin.
        unsafe { self.table.version.to_string_lossy() }
    }

    /// Plugin file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Is the engine usable here? `Ok(description)`, or the error says what to do.
    pub fn check(&self) -> Result<String, BackendError> {
        // SAFETY: valid sink for the call.
        let (rc, c) = with_sink(|s| unsafe { (self.table.check)(s) });
        let msg = c.messages.join("; ");
        if rc == api::OK {
            Ok(msg)
        } else {
            Err(BackendError::Unavailable {
                name: self.name.clone(),
                message: if msg.is_empty() {
                    "check failed without a message".into()
                } else {
                    msg
                },
            })
        }
    }

    fn call_err(&self, c: Collect, what: &str) -> BackendError {
        let mut msg = c.messages.join("; ");
        if let Some(e) = c.error {
            msg = if msg.is_empty() {
                e
            } else {
                format!("{msg}; {e}")
            };
        }
        if msg.is_empty() {
            msg = format!("{what} failed without a message");
        }
        BackendError::Call {
            name: self.name.clone(),
            message: msg,
        }
    }

    /// Loads ONNX bytes into a new session (after [`Backend::check`] passes).
    pub fn session(&self, onnx: &[u8], opts: &Options) -> Result<Session, BackendError> {
        self.check()?;
        self.session_unchecked(onnx, opts)
    }

    /// Loads ONNX bytes into a new session without calling `check` first.
    pub fn session_unchecked(&self, onnx: &[u8], opts: &Options) -> Result<Session, BackendError> {
        let raw = api::RawOptions {
            intra_op_threads: opts.intra_op_threads as u32,
            unit_kind: opts.unit_kind as u32,
        };
        // SAFETY: valid pointers for the call.
        let (h, c) =
            with_sink(|s| unsafe { (self.table.create)(onnx.as_ptr(), onnx.len(), &raw, s) });
        if h.is_null() {
            return Err(self.call_err(c, "loading the model"));
        }
        Ok(Session {
            backend: self.clone(),
            handle: h,
            _not_sync: std::marker::PhantomData,
        })
    }
}

/// A model loaded in a plugin. It may move between threads, but is used by one at a time.
pub struct Session {
    backend: Backend,
    handle: *mut c_void,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

// SAFETY: plugin sessions are `Send` by the `Engine` contract (`type Session: Send`).
unsafe impl Send for Session {}

impl Session {
    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Runs on named inputs; returns the outputs in model order.
    pub fn run(
        &mut self,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<(String, Tensor)>, BackendError> {
        let shapes: Vec<Vec<u64>> = inputs
            .iter()
            .map(|(_, t)| t.shape.iter().map(|&d| d as u64).collect())
            .collect();
        let raws: Vec<api::RawTensor> = inputs
            .iter()
            .zip(&shapes)
            .map(|((name, t), shape)| {
                let b = t.bytes();
                api::RawTensor {
                    name: api::Str::new(name),
                    dtype: t.dtype() as u32,
                    shape: shape.as_ptr(),
                    ndim: shape.len(),
                    data: b.as_ptr(),
                    nbytes: b.len(),
                }
            })
            .collect();
        // SAFETY: the handle is live; inputs and sink outlive the call.
        let (rc, c) = with_sink(|s| unsafe {
            (self.backend.table.run)(self.handle, raws.as_ptr(), raws.len(), s)
        });
        if rc != api::OK || c.error.is_some() {
            return Err(self.backend.call_err(c, "running"));
        }
        Ok(c.outputs)
    }

    /// Runs on a map of named inputs.
    pub fn run_map(
        &mut self,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, BackendError> {
        let v: Vec<(&str, &Tensor)> = inputs.iter().map(|(k, t)| (k.as_str(), t)).collect();
        self.run(&v)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the handle came from this table's create and is dropped once.
        unsafe { (self.backend.table.drop)(self.handle) }
    }
}

/// A cheaply shareable handle to a loaded backend.
pub type SharedBackend = Arc<Backend>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn plugin_names_are_plain() {
        for ok in ["ort", "tch", "tract", "my_engine2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "../x", "a/b", "Ort", "a-b", "a.b", "x\0"] {
            assert!(!valid_name(bad), "{bad:?}");
            let e = find(bad).unwrap_err().to_string();
            assert!(e.contains("a-z, 0-9 and _"), "{e}");
        }
    }

    #[test]
    fn relative_and_as_root_writable_folders_are_not_searched() {
        assert!(!trusted_dir(Path::new("target/release")));
        assert!(!trusted_dir(Path::new("")));
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::Builder::new()
            .prefix("dicesim-loader-test-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(trusted_dir(d));
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted_dir(d));
        assert!(!trusted_dir(Path::new("/tmp")), "world-writable");
    }
}
