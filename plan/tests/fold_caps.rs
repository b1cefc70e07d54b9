//! Constant folding does not allocate what a model's shapes ask for: a ConstantOfShape
//! beyond `MAX_FOLD_BYTES` is refused with a message, a huge Range too, and values beyond
//! what dicesim decodes stay unfolded; each case ends within a second with modest memory.

use std::time::{Duration, Instant};

use dicesim_plan::model::{InputShapes, Model};
use dicesim_plan::onnx::{
    dtype, tensor_value_info, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};
use dicesim_plan::tensor::MAX_FOLD_BYTES;

fn ints(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![v.len() as i64],
        data_type: Some(dtype::INT64),
        name: Some(name.into()),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, input: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// `x [1, 4] -> Add(x, <w>) -> y` where `w` comes from `nodes` over `inits`.
fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> ModelProto {
    let mut node = nodes;
    node.push(node_add());
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node,
            input: vec![tensor_value_info("x", &[1, 4], dtype::FLOAT)],
            initializer: inits,
            output: vec![tensor_value_info("y", &[1, 4], dtype::FLOAT)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node_add() -> NodeProto {
    node("Add", &["x", "w"], "y")
}

/// Peak resident memory of this process [KiB] (VmHWM).
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Analyses `m`, checking it takes under a second and under 64 MiB more peak memory.
fn analyse_quickly(m: ModelProto) -> Result<Model, String> {
    let (t0, before) = (Instant::now(), peak_kib());
    let r = Model::analyse(m, "t", &InputShapes::new()).map_err(|e| e.to_string());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let grown = peak_kib().saturating_sub(before);
    assert!(grown < 64 << 10, "peak memory grew by {grown} KiB");
    r
}

#[test]
fn a_constant_of_shape_beyond_the_fold_cap_is_refused() {
    // 16384 x 32768 floats: 2 GiB
    let m = model(
        vec![node("ConstantOfShape", &["s"], "w")],
        vec![ints("s", &[16384, 32768])],
    );
    let err = analyse_quickly(m).unwrap_err();
    for needle in ["ConstantOfShape", "2048 MiB", "refused"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    const { assert!(2u64 << 30 > MAX_FOLD_BYTES) };
}

#[test]
fn an_expand_to_a_huge_shape_is_refused_without_allocating() {
    let m = model(
        vec![node("Expand", &["one", "s"], "w")],
        vec![
            TensorProto {
                dims: vec![1],
                data_type: Some(dtype::FLOAT),
                name: Some("one".into()),
                float_data: vec![1.0],
                ..Default::default()
            },
            ints("s", &[1 << 30, 1 << 30, 4]),
        ],
    );
    let err = analyse_quickly(m).unwrap_err();
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn an_expand_within_the_tensor_cap_is_analysed_not_materialised() {
    // 2^28 x 4 floats (4 GiB): a layer of the graph, not a folded constant
    let m = ModelProto {
        graph: Some(GraphProto {
            node: vec![node("Expand", &["x", "s"], "y")],
            input: vec![tensor_value_info("x", &[1, 4], dtype::FLOAT)],
            initializer: vec![ints("s", &[1 << 28, 4])],
            output: vec![tensor_value_info("y", &[1 << 28, 4], dtype::FLOAT)],
            ..Default::default()
        }),
        ..model(vec![], vec![])
    };
    let m = analyse_quickly(m).unwrap();
    assert_eq!(m.graph.layers[0].output_bytes, 4 << 30);
}

#[test]
fn a_huge_range_is_refused() {
    let m = model(
        vec![node("Range", &["a", "b", "d"], "w")],
        vec![
            ints("a", &[i64::MIN]),
            ints("b", &[i64::MAX]),
            ints("d", &[1]),
        ],
    );
    let err = analyse_quickly(m).unwrap_err();
    assert!(err.contains("dicesim folds at most"), "{err}");
}

#[test]
fn a_broadcast_beyond_the_decoded_size_stays_unfolded() {
    // [65536, 1] + [1, 65536] would fold into 2^32 values
    let col: Vec<i64> = vec![1; 1 << 16];
    let mut a = ints("a", &col);
    a.dims = vec![1 << 16, 1];
    let mut b = ints("b", &col);
    b.dims = vec![1, 1 << 16];
    let m = ModelProto {
        graph: Some(GraphProto {
            node: vec![node("Add", &["a", "b"], "c"), node("Add", &["x", "c"], "y")],
            input: vec![tensor_value_info("x", &[1, 1], dtype::INT64)],
            initializer: vec![a, b],
            output: vec![tensor_value_info("y", &[1 << 16, 1 << 16], dtype::INT64)],
            ..Default::default()
        }),
        ..model(vec![], vec![])
    };
    let m = analyse_quickly(m).unwrap();
    assert_eq!(m.graph.layers.len(), 2, "the constant Add stays a layer");
}

#[test]
fn a_zero_sized_constant_with_huge_dimensions_is_refused() {
    let m = model(
        vec![node("Identity", &["e"], "w")],
        vec![TensorProto {
            dims: vec![1 << 40, 1 << 40, 0],
            data_type: Some(dtype::FLOAT),
            name: Some("e".into()),
            ..Default::default()
        }],
    );
    let err = analyse_quickly(m).unwrap_err();
    assert!(err.contains("refused"), "{err}");
}
