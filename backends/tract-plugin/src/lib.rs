//! The tract backend plugin (`libdicesim_backend_tract.so`): the pure-Rust engine, usable on
//! any CPU (the ARM CPU backend of the boards). It needs no engine library, so `check` always
//! passes.
#![warn(missing_docs)]

use dicesim_backend_api::{
    check_input_names, element_bytes, export_backend, DType, Engine, Options, OutputFn, TensorView,
    UnitKind,
};

/// The engine behind the plugin.
pub struct Tract;

/// A loaded tract model and its thread count.
pub struct TractSession {
    session: dicesim_tract::Session,
    threads: usize,
}

impl Engine for Tract {
    type Session = TractSession;
    const NAME: &'static str = "tract";
    const VERSION: &'static str = concat!(env!("CARGO_PKG_VERSION"), " (tract-onnx 0.23)");

    fn check() -> Result<String, String> {
        Ok(format!(
            "pure-Rust engine built in; CPU only; {} {}",
            std::env::consts::ARCH,
            std::env::consts::OS
        ))
    }

    fn create(onnx: &[u8], opts: &Options) -> Result<TractSession, String> {
        if opts.unit_kind != UnitKind::Cpu {
            return Err("tract runs on CPU units only".into());
        }
        let session = dicesim_tract::Session::from_onnx_bytes(onnx).map_err(|e| e.to_string())?;
        Ok(TractSession {
            session,
            threads: opts.intra_op_threads,
        })
    }

    fn run(
        s: &mut TractSession,
        inputs: &[TensorView<'_>],
        out: &mut OutputFn<'_>,
    ) -> Result<(), String> {
        // the same name check (and message) as every plugin; tract then checks the shapes
        check_input_names(s.session.inputs(), inputs)?;
        let dims: Vec<Vec<usize>> = inputs.iter().map(|t| t.dims()).collect();
        let mut vals = Vec::with_capacity(inputs.len());
        for t in inputs {
            if t.dtype != DType::F32 {
                return Err(format!(
                    "input '{}' is {}; tract plugin inputs are f32",
                    t.name,
                    t.dtype.name()
                ));
            }
            vals.push(t.f32s());
        }
        let ins: Vec<(&str, &[usize], &[f32])> = inputs
            .iter()
            .zip(&dims)
            .zip(&vals)
            .map(|((t, d), v)| (t.name, d.as_slice(), &v[..]))
            .collect();
        s.session
            .run_borrowed(&ins, s.threads, &mut |name, shape, data| {
                let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
                out(name, DType::F32, &shape, element_bytes(data))
            })
            .map_err(|e| e.to_string())
    }
}

export_backend!(Tract);
