//! ONNX bytes through `inspect`'s path: protobuf decoding, then the analysis (constant
//! folding, shape inference, per-layer cost). Errors are fine; panics, hangs and runaway
//! allocations are not.
#![no_main]

use std::path::Path;

use dicesim_plan::model::{InputShapes, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let Ok(proto) = dicesim_plan::onnx::decode_model(bytes, Path::new("fuzz.onnx")) else {
        return;
    };
    if let Ok(m) = Model::analyse(proto, "fuzz", &InputShapes::new()) {
        let _ = m.graph.total_flops();
        let _ = m.static_proto();
    }
});
