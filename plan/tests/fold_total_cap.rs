//! ConstantOfShape fills count against `MAX_FOLD_BYTES` for the whole model, not only per
//! node. A test binary of its own: it allocates up to the cap, which would disturb the
//! peak-memory checks of plan/tests/fold_caps.rs running beside it.

use std::time::{Duration, Instant};

use dicesim_plan::model::{InputShapes, Model};
use dicesim_plan::onnx::{
    dtype, tensor_value_info, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};

fn node(op: &str, input: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

#[test]
fn constant_of_shape_fills_beyond_the_cap_in_all_are_refused() {
    // four 384 MiB fills: each within the cap, together beyond it
    let n = 3 * (1i64 << 25);
    let mut nodes = Vec::new();
    for k in 0..4 {
        nodes.push(node("ConstantOfShape", &["s"], &format!("f{k}")));
    }
    nodes.push(node("Sum", &["f0", "f1", "f2", "f3"], "w"));
    nodes.push(node("Add", &["x", "w"], "y"));
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: nodes,
            input: vec![tensor_value_info("x", &[1, 4], dtype::FLOAT)],
            initializer: vec![TensorProto {
                dims: vec![1],
                data_type: Some(dtype::INT64),
                name: Some("s".into()),
                int64_data: vec![n],
                ..Default::default()
            }],
            output: vec![tensor_value_info("y", &[1, 4], dtype::FLOAT)],
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    let err = Model::analyse(m, "t", &InputShapes::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("in a model: refused"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
