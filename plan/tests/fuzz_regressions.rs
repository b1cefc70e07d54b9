//! Inputs the fuzz targets (fuzz/, scripts/fuzz.sh) found, each kept as a regression test.

use std::path::Path;

use dicesim_plan::model::{InputShapes, Model, MAX_TENSOR_BYTES};
use dicesim_plan::onnx::{
    decode_model, dtype, tensor_value_info, GraphProto, ModelProto, NodeProto,
};

fn analyse(bytes: &[u8]) -> Result<Model, String> {
    let proto =
        decode_model(bytes.to_vec().into(), Path::new("t.onnx")).map_err(|e| e.to_string())?;
    Model::analyse(proto, "t", &InputShapes::new()).map_err(|e| e.to_string())
}

/// fuzz target `onnx`: a mutated Resize/Pad made a tensor whose byte count overflowed
/// (a panic with overflow checks, a wrapped size without); now refused with a message.
#[test]
fn shape_overflow_is_refused() {
    let err = analyse(include_bytes!("data/fuzz-shape-overflow.onnx")).unwrap_err();
    assert!(err.contains("refused"), "{err}");
}

/// A graph input whose shape would take more than [`MAX_TENSOR_BYTES`] is refused, not
/// counted (and later allocated).
#[test]
fn huge_graph_input_is_refused() {
    let big = 1usize << 20;
    let node = NodeProto {
        input: vec!["x".into()],
        output: vec!["y".into()],
        op_type: Some("Relu".into()),
        ..Default::default()
    };
    let proto = ModelProto {
        graph: Some(GraphProto {
            node: vec![node],
            input: vec![tensor_value_info("x", &[big, big, big], dtype::FLOAT)],
            output: vec![tensor_value_info("y", &[big, big, big], dtype::FLOAT)],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = Model::analyse(proto, "t", &InputShapes::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused"), "{err}");
    assert!(MAX_TENSOR_BYTES < (big as u64).pow(3) * 4);
}

/// fuzz target `onnx`: a layer whose FLOP count overflowed u64 (a panic in `ops::flops` with
/// overflow checks, a wrapped count without); counts now saturate. The two crash inputs
/// analyse without a panic, and a convolution whose count overflows gives the saturated
/// bound (a wrapped product would not).
#[test]
fn flops_overflow_saturates() {
    for crash in [
        &include_bytes!("data/fuzz-flops-overflow.onnx")[..],
        &include_bytes!("data/fuzz-flops-overflow-2.onnx")[..],
    ] {
        let _ = analyse(crash);
    }
    let big = 1usize << 20;
    let input = |shape: Vec<usize>| {
        Some(dicesim_plan::ops::In {
            shape,
            dtype: dtype::FLOAT,
            konst: None,
        })
    };
    let ins = [input(vec![1, big, 8, 8]), input(vec![big, big, big, big])];
    let outs = [(vec![1, big, big, big], dtype::FLOAT)];
    let node = NodeProto::default();
    let attrs = dicesim_plan::attr::Attrs::new(&node, "conv");
    let f = dicesim_plan::ops::flops("Conv", &attrs, &ins, &outs);
    assert_eq!(f, u64::MAX);
}
