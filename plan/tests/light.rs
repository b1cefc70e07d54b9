//! A "light" model as the ONNX Model Zoo ships them (IR version 3, opset 9): every weight is
//! made by ConstantOfShape from a shape initializer, and that initializer is also listed as
//! a graph input (before IR 4 every initializer must be). dicesim folds them as constants.

use dicesim_plan::mapping::Mapping;
use dicesim_plan::model::{InputShapes, Model};
use dicesim_plan::onnx::{
    attribute_proto::AttributeType, dtype, tensor_value_info, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};
use dicesim_plan::partition::Plan;
use dicesim_plan::split::sub_model;
use dicesim_plan::tensor::Values;

/// Gemm output and input features: the weight (512 x 256) is larger than what dicesim
/// decodes, so it is folded as bytes only.
const N: usize = 512;
const K: usize = 256;

fn shape_init(name: &str, dims: &[i64]) -> TensorProto {
    TensorProto {
        dims: vec![dims.len() as i64],
        data_type: Some(dtype::INT64),
        name: Some(name.into()),
        int64_data: dims.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(output.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// ConstantOfShape filling `out` with `v` from the shape initializer `<out>__SHAPE`.
fn constant_of_shape(out: &str, v: f32) -> NodeProto {
    let value = AttributeProto {
        name: Some("value".into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(TensorProto {
            dims: vec![1],
            data_type: Some(dtype::FLOAT),
            float_data: vec![v],
            ..Default::default()
        }),
        ..Default::default()
    };
    node(
        "ConstantOfShape",
        &[&format!("{out}__SHAPE")],
        out,
        vec![value],
    )
}

/// x [1, K] -> Gemm(W [N, K], b [N], transB) -> Relu.
fn light_gemm() -> ModelProto {
    let inits = vec![
        shape_init("W__SHAPE", &[N as i64, K as i64]),
        shape_init("b__SHAPE", &[N as i64]),
    ];
    let mut input = vec![tensor_value_info("x", &[1, K], dtype::FLOAT)];
    input.push(tensor_value_info("W__SHAPE", &[2], dtype::INT64));
    input.push(tensor_value_info("b__SHAPE", &[1], dtype::INT64));
    let trans_b = AttributeProto {
        name: Some("transB".into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(1),
        ..Default::default()
    };
    let graph = GraphProto {
        node: vec![
            constant_of_shape("W", 0.5),
            constant_of_shape("b", 0.25),
            node("Gemm", &["x", "W", "b"], "fc", vec![trans_b]),
            node("Relu", &["fc"], "y", vec![]),
        ],
        name: Some("light".into()),
        initializer: inits,
        input,
        output: vec![tensor_value_info("y", &[1, N], dtype::FLOAT)],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(3),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(9),
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

#[test]
fn constant_of_shape_weights_from_initializer_inputs_fold() {
    let m = Model::analyse(light_gemm(), "light", &InputShapes::new()).unwrap();
    let g = &m.graph;
    assert_eq!(
        g.inputs,
        vec!["x"],
        "shape initializers are not graph inputs"
    );
    let ops: Vec<&str> = g.layers.iter().map(|l| l.op.as_str()).collect();
    assert_eq!(ops, ["Gemm", "Relu"], "ConstantOfShape folds away");
    let fc = &g.layers[0];
    assert_eq!(fc.inputs, vec!["x"]);
    assert_eq!(fc.params_bytes, ((N * K + N) * 4) as u64);
    assert_eq!(fc.flops, (2 * N * K + N) as u64);
    assert_eq!(m.layer_consts[0], vec!["W", "b"]);
    let w = &m.consts["W"];
    assert_eq!(w.shape, vec![N, K]);
    assert_eq!(w.values, Values::Opaque, "too large to decode");
    let raw = w.proto.raw_data.as_deref().unwrap();
    assert_eq!(raw.len(), N * K * 4);
    assert!(raw.chunks_exact(4).all(|c| c == 0.5f32.to_le_bytes()));
    assert_eq!(m.consts["b"].floats().unwrap(), vec![0.25; N]);
}

#[test]
fn sub_models_list_the_weights_they_hold_not_the_shape_initializers() {
    let m = Model::analyse(light_gemm(), "light", &InputShapes::new()).unwrap();
    let mapping = Mapping::from_assignment(&["a.cpu", "b.cpu"]);
    let plan = Plan::build(&m.graph, &mapping).unwrap();
    assert_eq!(plan.graph_inputs.len(), 1);
    assert_eq!(plan.graph_inputs[0].0.name, "x");
    let inputs = |p: usize| -> Vec<String> {
        let g = sub_model(&m, &plan, p).graph.unwrap();
        g.input.iter().map(|v| v.name.clone().unwrap()).collect()
    };
    // IR 3: the initializers a sub-model holds are listed as its inputs too.
    assert_eq!(inputs(0), vec!["x", "W", "b"]);
    assert_eq!(inputs(1), vec!["fc"]);
}

#[test]
fn input_shape_for_an_initializer_input_is_an_error() {
    let shapes = InputShapes::from([("W__SHAPE".to_string(), vec![2])]);
    let err = Model::analyse(light_gemm(), "light", &shapes)
        .unwrap_err()
        .to_string();
    for needle in ["'W__SHAPE'", "initializer", "graph inputs are: x"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
}
