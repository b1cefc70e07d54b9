//! The ONNX Runtime engine of the `ort` backend plugin (`libdicesim_backend_ort.so`), through the `ort` crate with
//! the engine library loaded at run time: `ORT_DYLIB_PATH`, or the copy `scripts/setup.sh`
//! installs in the project's `.deps`. `ort` panics when it cannot load the library, so
//! [`Ort::check`] finds and loads it first and turns every failure into a message.
#![warn(missing_docs)]

use dicesim_backend_api::{
    all_inputs_given, element_bytes, model_input, DType, Engine, Options, OutputFn, TensorView,
    UnitKind,
};
use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::OnceLock;

/// ONNX Runtime version the plugin is built for (`api-31`) and that setup installs.
pub const ORT_VERSION: &str = "1.31.1";

/// The engine behind the plugin.
pub struct Ort;

/// Candidate locations of the library, in order: `ORT_DYLIB_PATH`, then `.deps` of the
/// project this plugin was built in, then `.deps` above the running executable.
pub fn library_candidates() -> Vec<PathBuf> {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    let rel = [
        format!(".deps/python/onnxruntime/capi/{file}"),
        format!(".deps/ort/onnxruntime/capi/{file}"),
    ];
    let mut roots: Vec<PathBuf> = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(PathBuf::from));
    }
    let mut v = Vec::new();
    for r in roots {
        for f in &rel {
            v.push(r.join(f));
        }
    }
    v
}

/// The library to load, or what the user should do.
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "libonnxruntime not found: ORT_DYLIB_PATH={} is not a file; run scripts/setup.sh or set ORT_DYLIB_PATH to libonnxruntime.so.{ORT_VERSION}",
                p.display()
            ))
        };
    }
    library_candidates()
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
        .ok_or_else(|| {
            format!(
                "libonnxruntime not found: run scripts/setup.sh or set ORT_DYLIB_PATH (to libonnxruntime.so.{ORT_VERSION} from the PyPI onnxruntime=={ORT_VERSION} wheel)"
            )
        })
}

/// The process-wide ONNX Runtime environment (ort allows one), loaded on first use.
pub fn environment() -> Result<&'static Environment, String> {
    static ENV: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = find_library()?;
        let builder = std::panic::catch_unwind(|| ort::init_from(&path))
            .map_err(|_| format!("loading {} panicked", path.display()))?
            .map_err(|e| {
                format!(
                    "cannot load ONNX Runtime: {e}; run scripts/setup.sh or set ORT_DYLIB_PATH to libonnxruntime.so.{ORT_VERSION}"
                )
            })?;
        let env = builder
            .with_name("dicesim")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
        Ok((env, path))
    })
    .as_ref()
    .map(|(e, _)| e)
    .map_err(Clone::clone)
}

/// A loaded ONNX Runtime session.
pub struct OrtSession {
    session: Session,
    inputs: Vec<(String, Vec<i64>)>,
}

fn ort_err(e: impl std::fmt::Display) -> String {
    format!("ONNX Runtime: {e}")
}

impl OrtSession {
    /// Loads ONNX bytes with `threads` intra-op threads (0: ONNX Runtime's default).
    pub fn new(onnx: &[u8], threads: usize) -> Result<OrtSession, String> {
        let env = environment()?;
        let mut b = Session::builder(env).map_err(ort_err)?;
        if threads > 0 {
            b = b
                .with_intra_threads(threads)
                .map_err(ort_err)?
                .with_inter_threads(1)
                .map_err(ort_err)?;
        }
        let session = b.commit_from_memory(onnx).map_err(ort_err)?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| {
                let shape = match o.dtype() {
                    ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
                    _ => Vec::new(),
                };
                (o.name().to_string(), shape)
            })
            .collect();
        Ok(OrtSession { session, inputs })
    }

    /// Runs on borrowed inputs and lends each output to `out`, in model order.
    pub fn run(&mut self, inputs: &[TensorView<'_>], out: &mut OutputFn<'_>) -> Result<(), String> {
        self.check_inputs(inputs)?;
        let f32s: Vec<Cow<'_, [f32]>> = inputs
            .iter()
            .map(|t| match t.dtype {
                DType::F32 => t.f32s(),
                DType::I64 => Cow::Borrowed(&[][..]),
            })
            .collect();
        let i64s: Vec<Vec<i64>> = inputs.iter().map(i64s).collect();
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
        for (i, t) in inputs.iter().enumerate() {
            let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            // Borrowed, not copied: ONNX Runtime reads the host's buffer directly.
            let v: SessionInputValue<'_> = match t.dtype {
                DType::F32 => TensorRef::from_array_view((shape, &f32s[i][..]))
                    .map_err(ort_err)?
                    .into(),
                DType::I64 => TensorRef::from_array_view((shape, &i64s[i][..]))
                    .map_err(ort_err)?
                    .into(),
            };
            values.push((Cow::Borrowed(t.name), v));
        }
        let outputs = self.session.run(values).map_err(ort_err)?;
        for (name, v) in outputs.iter() {
            lend_output(name, &v, out)?;
        }
        Ok(())
    }

    /// Every input is a model input of a matching shape, and every model input is given.
    fn check_inputs(&self, inputs: &[TensorView<'_>]) -> Result<(), String> {
        for t in inputs {
            let want = model_input(&self.inputs, t.name)?;
            let ok = want.len() == t.shape.len()
                && want
                    .iter()
                    .zip(t.shape)
                    .all(|(&w, &g)| w < 0 || w as u64 == g);
            if !ok {
                return Err(format!(
                    "input '{}' has shape {:?}; the model expects {want:?}",
                    t.name, t.shape
                ));
            }
        }
        all_inputs_given(&self.inputs, inputs)
    }
}

/// An i64 input's values (empty for other types).
fn i64s(t: &TensorView<'_>) -> Vec<i64> {
    match t.dtype {
        DType::I64 => t
            .data
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        DType::F32 => Vec::new(),
    }
}

/// Lends one output tensor to `out` (f32 or i64).
fn lend_output(name: &str, v: &DynValue, out: &mut OutputFn<'_>) -> Result<(), String> {
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(format!("output '{name}' is not a tensor ({other})")),
    };
    let dims = |shape: &[i64]| -> Vec<u64> { shape.iter().map(|&d| d as u64).collect() };
    match ty {
        TensorElementType::Float32 => {
            let (shape, data) = v.try_extract_tensor::<f32>().map_err(ort_err)?;
            out(name, DType::F32, &dims(shape), element_bytes(data));
        }
        TensorElementType::Int64 => {
            let (shape, data) = v.try_extract_tensor::<i64>().map_err(ort_err)?;
            out(name, DType::I64, &dims(shape), element_bytes(data));
        }
        t => {
            return Err(format!(
                "output '{name}' has element type {t:?}, not f32 or i64"
            ))
        }
    }
    Ok(())
}

impl Engine for Ort {
    type Session = OrtSession;
    const NAME: &'static str = "ort";
    const VERSION: &'static str = concat!(
        env!("CARGO_PKG_VERSION"),
        " (ort 2.0.0-rc.15, ONNX Runtime 1.31)"
    );

    fn check() -> Result<String, String> {
        environment()?;
        let path = find_library()?;
        Ok(format!(
            "ONNX Runtime from {}; CPU execution provider",
            path.display()
        ))
    }

    fn create(onnx: &[u8], opts: &Options) -> Result<OrtSession, String> {
        if opts.unit_kind != UnitKind::Cpu {
            return Err(
                "this ONNX Runtime plugin runs on CPU units only (the wheel is CPU-only)".into(),
            );
        }
        OrtSession::new(onnx, opts.intra_op_threads)
    }

    fn run(
        s: &mut OrtSession,
        inputs: &[TensorView<'_>],
        out: &mut OutputFn<'_>,
    ) -> Result<(), String> {
        s.run(inputs, out)
    }
}
