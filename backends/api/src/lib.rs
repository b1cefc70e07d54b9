//! The backend plugin ABI of dicesim.
//!
//! A plugin is a shared library (`libdicesim_backend_<name>.so`) that exports one symbol,
//! [`ENTRY_SYMBOL`], a `extern "C" fn() -> *const BackendTable`. The table is `#[repr(C)]`
//! and starts with [`ABI_VERSION`], so a host can refuse a plugin built against another ABI
//! before touching anything else.
//!
//! Data crosses the boundary without ownership transfer: the host lends input tensors
//! (pointers to its buffers) and a [`Sink`] of callbacks; the plugin lends its output
//! tensors and error messages back through the sink for the duration of the call. So each
//! tensor is copied at most once each way (host buffer -> engine tensor, engine tensor ->
//! host buffer), and no allocator crosses the boundary.
//!
//! Plugins written in Rust implement [`Engine`] and call [`export_backend!`]; every call is
//! wrapped in `catch_unwind`, so a panic inside the engine becomes an error message.
#![warn(missing_docs)]

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

mod check;
pub use check::{
    all_inputs_given, check_input_names, element_bytes, model_input, rel_error, Element,
};

/// Version of this ABI. Bump on any change to the layout of [`BackendTable`] or its calls.
pub const ABI_VERSION: u32 = 1;

/// The one symbol a plugin exports: `extern "C" fn() -> *const BackendTable`.
pub const ENTRY_SYMBOL: &str = "dicesim_backend_entry";

/// File name of the plugin called `name` (`libdicesim_backend_<name>.so` on Linux).
pub fn plugin_file_name(name: &str) -> String {
    format!(
        "{}dicesim_backend_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Signature of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const BackendTable;

/// A borrowed UTF-8 string (not NUL-terminated).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// Borrows `s`.
    pub fn new(s: &str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The string, replacing invalid UTF-8.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or `len` be 0).
    pub unsafe fn to_string_lossy(&self) -> String {
        if self.len == 0 || self.ptr.is_null() {
            return String::new();
        }
        String::from_utf8_lossy(std::slice::from_raw_parts(self.ptr, self.len)).into_owned()
    }
}

/// Element type of a tensor: the ONNX `TensorProto.DataType` codes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (ONNX 1).
    F32 = 1,
    /// 64-bit signed integer (ONNX 7).
    I64 = 7,
}

impl DType {
    /// From an ONNX code.
    pub fn from_code(c: u32) -> Option<DType> {
        match c {
            1 => Some(DType::F32),
            7 => Some(DType::I64),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::I64 => 8,
        }
    }

    /// Lower-case name (`f32`, `i64`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        }
    }
}

/// A borrowed tensor crossing the boundary: dtype, shape and row-major bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawTensor {
    /// Tensor name (graph input or output name).
    pub name: Str,
    /// An ONNX dtype code (see [`DType`]).
    pub dtype: u32,
    /// Dimensions.
    pub shape: *const u64,
    /// Number of dimensions.
    pub ndim: usize,
    /// Row-major element bytes.
    pub data: *const u8,
    /// Number of bytes at `data`.
    pub nbytes: usize,
}

/// Kind of compute unit a session runs on.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    /// CPU cores.
    Cpu = 0,
    /// A GPU.
    Gpu = 1,
}

/// Session options.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawOptions {
    /// Threads inside one operator (the unit's cores); 0: the engine's default.
    pub intra_op_threads: u32,
    /// A [`UnitKind`] code.
    pub unit_kind: u32,
}

/// Callbacks the host lends to a call. `ctx` is passed back unchanged.
#[repr(C)]
pub struct Sink {
    /// Host state.
    pub ctx: *mut c_void,
    /// A message: the error of a failing call, or the description of a passing `check`.
    pub message: unsafe extern "C" fn(ctx: *mut c_void, msg: Str),
    /// One output tensor of `run`, valid only during this callback: the host copies it.
    pub output: unsafe extern "C" fn(ctx: *mut c_void, t: *const RawTensor),
}

/// Status code: success.
pub const OK: i32 = 0;
/// Status code: failure; the message was sent to the sink.
pub const ERR: i32 = 1;

/// The function table a plugin exports. Field order and types are the ABI.
#[repr(C)]
pub struct BackendTable {
    /// Must equal the host's [`ABI_VERSION`]; checked before anything else is read.
    pub abi_version: u32,
    /// Backend name (static).
    pub name: Str,
    /// Backend and engine version (static).
    pub version: Str,
    /// Is the engine usable here? [`OK`] with a description, or [`ERR`] with what the user
    /// should do; the text goes to `sink.message`.
    pub check: unsafe extern "C" fn(sink: *const Sink) -> i32,
    /// Loads ONNX bytes; returns a session handle, or null after sending the error.
    pub create: unsafe extern "C" fn(
        onnx: *const u8,
        len: usize,
        opts: *const RawOptions,
        sink: *const Sink,
    ) -> *mut c_void,
    /// Runs a session on `n` named inputs; outputs go to `sink.output` in model order.
    pub run: unsafe extern "C" fn(
        session: *mut c_void,
        inputs: *const RawTensor,
        n: usize,
        sink: *const Sink,
    ) -> i32,
    /// Frees a session.
    pub drop: unsafe extern "C" fn(session: *mut c_void),
}

// SAFETY: the table holds static strings and function pointers only.
unsafe impl Sync for BackendTable {}
// SAFETY: as for Sync: nothing in the table is tied to the thread that made it.
unsafe impl Send for BackendTable {}

// ---------------------------------------------------------------------------------------
// Plugin side.

/// Options as seen by an engine.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Threads inside one operator; 0: the engine's default.
    pub intra_op_threads: usize,
    /// Unit kind.
    pub unit_kind: UnitKind,
}

/// A borrowed input tensor as seen by an engine.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// Name.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub shape: &'a [u64],
    /// Row-major bytes (`numel * dtype.size()` of them, checked by the glue).
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Dimensions as `usize`.
    pub fn dims(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }

    /// The data as f32, borrowed when aligned, copied otherwise.
    pub fn f32s(&self) -> std::borrow::Cow<'_, [f32]> {
        // SAFETY: every bit pattern is a valid f32; align_to only yields aligned elements.
        let (pre, mid, post) = unsafe { self.data.align_to::<f32>() };
        if pre.is_empty() && post.is_empty() {
            std::borrow::Cow::Borrowed(mid)
        } else {
            std::borrow::Cow::Owned(
                self.data
                    .chunks_exact(4)
                    .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
    }
}

/// Receives one output of a run: name, element type, shape, row-major bytes (lent for the
/// duration of the call).
pub type OutputFn<'a> = dyn FnMut(&str, DType, &[u64], &[u8]) + 'a;

/// What a plugin implements. Errors are messages for the user.
pub trait Engine {
    /// A loaded model.
    type Session: Send;
    /// Backend name, e.g. `tract`.
    const NAME: &'static str;
    /// Backend and engine version, e.g. `0.1.0 (tract 0.23)`.
    const VERSION: &'static str;
    /// Is the engine usable here? `Ok(description)` or `Err(what to do)`.
    fn check() -> Result<String, String>;
    /// Loads ONNX bytes.
    fn create(onnx: &[u8], opts: &Options) -> Result<Self::Session, String>;
    /// Runs on named inputs; calls `out` once per output, in model order.
    fn run(
        session: &mut Self::Session,
        inputs: &[TensorView<'_>],
        out: &mut OutputFn<'_>,
    ) -> Result<(), String>;
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let what = if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    };
    format!("the backend panicked: {what}")
}

/// Runs `f`, catching panics; sends the error to the sink.
///
/// # Safety
/// `sink` must be a valid sink for this call.
unsafe fn guarded<T>(sink: *const Sink, f: impl FnOnce() -> Result<T, String>) -> Option<T> {
    let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_message(p)));
    match r {
        Ok(v) => Some(v),
        Err(msg) => {
            if let Some(s) = sink.as_ref() {
                (s.message)(s.ctx, Str::new(&msg));
            }
            None
        }
    }
}

/// Glue for [`export_backend!`].
///
/// # Safety
/// The pointers must be valid as the [`BackendTable`] call they implement requires.
#[doc(hidden)]
pub unsafe fn glue_check<E: Engine>(sink: *const Sink) -> i32 {
    match guarded(sink, E::check) {
        Some(msg) => {
            if let Some(s) = sink.as_ref() {
                (s.message)(s.ctx, Str::new(&msg));
            }
            OK
        }
        None => ERR,
    }
}

/// Glue for [`export_backend!`].
///
/// # Safety
/// The pointers must be valid as the [`BackendTable`] call they implement requires.
#[doc(hidden)]
pub unsafe fn glue_create<E: Engine>(
    onnx: *const u8,
    len: usize,
    opts: *const RawOptions,
    sink: *const Sink,
) -> *mut c_void {
    guarded(sink, || {
        if onnx.is_null() && len > 0 {
            return Err("null model bytes".into());
        }
        let bytes: &[u8] = raw_slice(onnx, len);
        let raw = opts.as_ref().copied().unwrap_or(RawOptions {
            intra_op_threads: 0,
            unit_kind: 0,
        });
        let unit_kind = match raw.unit_kind {
            0 => UnitKind::Cpu,
            1 => UnitKind::Gpu,
            k => return Err(format!("unknown unit kind code {k}")),
        };
        let opts = Options {
            intra_op_threads: raw.intra_op_threads as usize,
            unit_kind,
        };
        let s = E::create(bytes, &opts)?;
        Ok(Box::into_raw(Box::new(s)) as *mut c_void)
    })
    .unwrap_or(std::ptr::null_mut())
}

/// The `len` items at `ptr` (none when `len` is 0, whatever `ptr` is).
///
/// # Safety
/// With `len > 0`, `ptr` must point to `len` readable items that outlive `'a`.
unsafe fn raw_slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// An input tensor as the engine reads it, checked: a UTF-8 name, a known dtype, a shape
/// whose size matches the bytes.
///
/// # Safety
/// `r`'s pointers must be valid for their lengths.
unsafe fn tensor_view(r: &RawTensor) -> Result<TensorView<'_>, String> {
    let name = std::str::from_utf8(raw_slice(r.name.ptr, r.name.len))
        .map_err(|_| "an input name is not UTF-8".to_string())?;
    let dtype = DType::from_code(r.dtype)
        .ok_or_else(|| format!("input '{name}': unsupported dtype code {}", r.dtype))?;
    let shape: &[u64] = raw_slice(r.shape, r.ndim);
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("input '{name}': shape {shape:?} overflows"))?;
    if numel.checked_mul(dtype.size() as u64) != Some(r.nbytes as u64) {
        return Err(format!(
            "input '{name}': shape {shape:?} of {} needs {} bytes, got {}",
            dtype.name(),
            numel * dtype.size() as u64,
            r.nbytes
        ));
    }
    Ok(TensorView {
        name,
        dtype,
        shape,
        data: raw_slice(r.data, r.nbytes),
    })
}

/// Glue for [`export_backend!`].
///
/// # Safety
/// The pointers must be valid as the [`BackendTable`] call they implement requires.
#[doc(hidden)]
pub unsafe fn glue_run<E: Engine>(
    session: *mut c_void,
    inputs: *const RawTensor,
    n: usize,
    sink: *const Sink,
) -> i32 {
    let r = guarded(sink, || {
        let sess = (session as *mut E::Session)
            .as_mut()
            .ok_or("null session handle")?;
        let views = raw_slice(inputs, n)
            .iter()
            .map(|r| tensor_view(r))
            .collect::<Result<Vec<_>, String>>()?;
        let s = sink.as_ref().ok_or("null sink")?;
        let mut out = |name: &str, dtype: DType, shape: &[u64], data: &[u8]| {
            let t = RawTensor {
                name: Str::new(name),
                dtype: dtype as u32,
                shape: shape.as_ptr(),
                ndim: shape.len(),
                data: data.as_ptr(),
                nbytes: data.len(),
            };
            (s.output)(s.ctx, &t);
        };
        E::run(sess, &views, &mut out)
    });
    if r.is_some() {
        OK
    } else {
        ERR
    }
}

/// Glue for [`export_backend!`].
///
/// # Safety
/// The pointers must be valid as the [`BackendTable`] call they implement requires.
#[doc(hidden)]
pub unsafe fn glue_drop<E: Engine>(session: *mut c_void) {
    if !session.is_null() {
        // A panic in a destructor must not unwind into the host.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(Box::from_raw(session as *mut E::Session))
        }));
    }
}

/// Exports `$engine` (a type implementing [`Engine`]) as this library's plugin entry.
#[macro_export]
macro_rules! export_backend {
    ($engine:ty) => {
        #[doc(hidden)]
        pub mod __dicesim_backend_export {
            #[allow(unused_imports)]
            use super::*;

            unsafe extern "C" fn check(sink: *const $crate::Sink) -> i32 {
                $crate::glue_check::<$engine>(sink)
            }
            unsafe extern "C" fn create(
                onnx: *const u8,
                len: usize,
                opts: *const $crate::RawOptions,
                sink: *const $crate::Sink,
            ) -> *mut ::std::ffi::c_void {
                $crate::glue_create::<$engine>(onnx, len, opts, sink)
            }
            unsafe extern "C" fn run(
                session: *mut ::std::ffi::c_void,
                inputs: *const $crate::RawTensor,
                n: usize,
                sink: *const $crate::Sink,
            ) -> i32 {
                $crate::glue_run::<$engine>(session, inputs, n, sink)
            }
            unsafe extern "C" fn drop_session(session: *mut ::std::ffi::c_void) {
                $crate::glue_drop::<$engine>(session)
            }

            static TABLE: ::std::sync::OnceLock<$crate::BackendTable> =
                ::std::sync::OnceLock::new();

            /// The plugin entry point.
            #[no_mangle]
            pub extern "C" fn dicesim_backend_entry() -> *const $crate::BackendTable {
                TABLE.get_or_init(|| $crate::BackendTable {
                    abi_version: $crate::ABI_VERSION,
                    name: $crate::Str::new(<$engine as $crate::Engine>::NAME),
                    version: $crate::Str::new(<$engine as $crate::Engine>::VERSION),
                    check,
                    create,
                    run,
                    drop: drop_session,
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicky;
    impl Engine for Panicky {
        type Session = u32;
        const NAME: &'static str = "panicky";
        const VERSION: &'static str = "0";
        fn check() -> Result<String, String> {
            Err("install nothing".into())
        }
        fn create(onnx: &[u8], _: &Options) -> Result<u32, String> {
            if onnx.is_empty() {
                panic!("boom in create");
            }
            Ok(7)
        }
        fn run(
            s: &mut u32,
            inputs: &[TensorView<'_>],
            out: &mut OutputFn<'_>,
        ) -> Result<(), String> {
            if inputs.is_empty() {
                panic!("boom in run {s}");
            }
            out("y", inputs[0].dtype, inputs[0].shape, inputs[0].data);
            Ok(())
        }
    }
    export_backend!(Panicky);

    #[derive(Default)]
    struct Got {
        msgs: Vec<String>,
        outs: Vec<(String, Vec<u8>)>,
    }
    unsafe extern "C" fn msg(ctx: *mut c_void, m: Str) {
        (*(ctx as *mut Got)).msgs.push(m.to_string_lossy());
    }
    unsafe extern "C" fn output(ctx: *mut c_void, t: *const RawTensor) {
        let t = &*t;
        (*(ctx as *mut Got)).outs.push((
            t.name.to_string_lossy(),
            std::slice::from_raw_parts(t.data, t.nbytes).to_vec(),
        ));
    }

    #[test]
    fn panics_become_errors_and_data_round_trips() {
        // SAFETY: the exported entry returns a pointer to a static table.
        let table = unsafe { &*__dicesim_backend_export::dicesim_backend_entry() };
        assert_eq!(table.abi_version, ABI_VERSION);
        let mut got = Got::default();
        let sink = Sink {
            ctx: (&mut got as *mut Got).cast(),
            message: msg,
            output,
        };
        // SAFETY: the table's functions get a live sink whose ctx is `got`, byte buffers
        // with their true lengths, and only handles that `create` returned, each dropped once.
        unsafe {
            assert_eq!((table.check)(&sink), ERR);
            assert_eq!(got.msgs.pop().unwrap(), "install nothing");
            let opts = RawOptions {
                intra_op_threads: 1,
                unit_kind: 0,
            };
            let h = (table.create)([].as_ptr(), 0, &opts, &sink);
            assert!(h.is_null());
            assert!(got.msgs.pop().unwrap().contains("panicked: boom in create"));
            let bad = RawOptions {
                intra_op_threads: 1,
                unit_kind: 9,
            };
            assert!((table.create)(b"x".as_ptr(), 1, &bad, &sink).is_null());
            assert!(got.msgs.pop().unwrap().contains("unit kind"));
            let h = (table.create)(b"x".as_ptr(), 1, &opts, &sink);
            assert!(!h.is_null());
            assert_eq!((table.run)(h, std::ptr::null(), 0, &sink), ERR);
            assert!(got.msgs.pop().unwrap().contains("boom in run 7"));
            let shape = [2u64];
            let data = [1f32, 2.0];
            let mut t = RawTensor {
                name: Str::new("x"),
                dtype: DType::F32 as u32,
                shape: shape.as_ptr(),
                ndim: 1,
                data: data.as_ptr().cast(),
                nbytes: 8,
            };
            assert_eq!((table.run)(h, &t, 1, &sink), OK);
            assert_eq!(got.outs.pop().unwrap().1.len(), 8);
            t.nbytes = 4; // shape says 8 bytes
            assert_eq!((table.run)(h, &t, 1, &sink), ERR);
            assert!(got.msgs.pop().unwrap().contains("needs 8 bytes"));
            t.dtype = 99;
            assert_eq!((table.run)(h, &t, 1, &sink), ERR);
            (table.drop)(h);
        }
    }
}
