//! Shape inference, folding and FLOPs of single operators, against hand-computed values.

use dicesim_plan::attr::Attrs;
use dicesim_plan::onnx::{attribute_proto::AttributeType, dtype, AttributeProto, NodeProto};
use dicesim_plan::ops::{flops, fold, infer, In};
use dicesim_plan::tensor::Const;

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(AttributeType::Int as i32),
        ..Default::default()
    }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        s: Some(v.as_bytes().to_vec().into()),
        r#type: Some(AttributeType::String as i32),
        ..Default::default()
    }
}
fn node(op: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    }
}
fn act(shape: &[usize]) -> Option<In<'static>> {
    Some(In {
        shape: shape.to_vec(),
        dtype: dtype::FLOAT,
        konst: None,
    })
}
fn konst(c: &Const) -> Option<In<'_>> {
    Some(In {
        shape: c.shape.clone(),
        dtype: c.dtype,
        konst: Some(c),
    })
}

fn shape_of(op: &str, attrs: Vec<AttributeProto>, ins: &[Option<In>], opset: i64) -> Vec<usize> {
    let n = node(op, attrs);
    let a = Attrs::new(&n, "test");
    infer(op, &a, ins, 1, opset).unwrap()[0].0.clone()
}

#[test]
fn conv_shapes_and_flops() {
    let w = Const::from_floats("w", vec![64, 3, 7, 7], vec![0.0; 64 * 3 * 49]);
    let n = node(
        "Conv",
        vec![ints("strides", &[2, 2]), ints("pads", &[3, 3, 3, 3])],
    );
    let a = Attrs::new(&n, "conv");
    let ins = [act(&[1, 3, 224, 224]), konst(&w)];
    let out = infer("Conv", &a, &ins, 1, 13).unwrap();
    assert_eq!(out[0].0, vec![1, 64, 112, 112]);
    assert_eq!(flops("Conv", &a, &ins, &out), 236_027_904);
    // Depthwise 3x3, SAME_UPPER, stride 2 on an odd size: ceil(15 / 2) = 8.
    let dw = Const::from_floats("dw", vec![32, 1, 3, 3], vec![0.0; 32 * 9]);
    let s = shape_of(
        "Conv",
        vec![
            int("group", 32),
            ints("strides", &[2, 2]),
            string("auto_pad", "SAME_UPPER"),
        ],
        &[act(&[1, 32, 15, 15]), konst(&dw)],
        13,
    );
    assert_eq!(s, vec![1, 32, 8, 8]);
    // Dilation 2, no padding: 15 - (3-1)*2 = 11.
    let s = shape_of(
        "Conv",
        vec![int("group", 32), ints("dilations", &[2, 2])],
        &[act(&[1, 32, 15, 15]), konst(&dw)],
        13,
    );
    assert_eq!(s, vec![1, 32, 11, 11]);
    // Wrong channel count is an error naming the node.
    let n = node("Conv", vec![]);
    let a = Attrs::new(&n, "node 'c' (Conv)");
    let e = infer("Conv", &a, &[act(&[1, 4, 8, 8]), konst(&w)], 1, 13).unwrap_err();
    assert!(
        e.contains("node 'c' (Conv)") && e.contains("channels"),
        "{e}"
    );
}

#[test]
fn pooling_ceil_mode_follows_onnx_runtime() {
    let pool =
        |attrs: Vec<AttributeProto>, shape: &[usize]| shape_of("MaxPool", attrs, &[act(shape)], 13);
    let k3s2c = || {
        vec![
            ints("kernel_shape", &[3, 3]),
            ints("strides", &[2, 2]),
            int("ceil_mode", 1),
        ]
    };
    // squeezenet1_1: 111 -> 55 and 55 -> 27 with k3 s2 ceil.
    assert_eq!(pool(k3s2c(), &[1, 64, 111, 111]), vec![1, 64, 55, 55]);
    assert_eq!(pool(k3s2c(), &[1, 64, 55, 55]), vec![1, 64, 27, 27]);
    assert_eq!(pool(k3s2c(), &[1, 64, 56, 56]), vec![1, 64, 28, 28]);
    // The last window must start inside the input or left padding: 6 with k2 s2 p1 ceil
    // gives 4 (ceil((6+2-2)/2)+1 = 4, last start 6 < 6+1).
    let s = shape_of(
        "AveragePool",
        vec![
            ints("kernel_shape", &[2, 2]),
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
            int("ceil_mode", 1),
        ],
        &[act(&[1, 1, 6, 6])],
        13,
    );
    assert_eq!(s, vec![1, 1, 4, 4]);
}

#[test]
fn reshape_slice_gemm_matmul_concat() {
    let t = Const::from_ints("t", vec![2], vec![0, -1]);
    assert_eq!(
        shape_of("Reshape", vec![], &[act(&[1, 512, 7, 7]), konst(&t)], 13),
        vec![1, 25088]
    );
    let st = Const::from_ints("s", vec![1], vec![-1]);
    let en = Const::from_ints("e", vec![1], vec![i64::MIN]);
    let ax = Const::from_ints("a", vec![1], vec![1]);
    let sp = Const::from_ints("p", vec![1], vec![-2]);
    // Every other channel backwards: starts -1, ends -inf, step -2 on 10 -> 5.
    let s = shape_of(
        "Slice",
        vec![],
        &[
            act(&[1, 10, 4]),
            konst(&st),
            konst(&en),
            konst(&ax),
            konst(&sp),
        ],
        13,
    );
    assert_eq!(s, vec![1, 5, 4]);
    let w = Const::from_floats("w", vec![1000, 512], vec![0.0; 512_000]);
    let n = node("Gemm", vec![int("transB", 1)]);
    let a = Attrs::new(&n, "fc");
    let b = Const::from_floats("b", vec![1000], vec![0.0; 1000]);
    let ins = [act(&[1, 512]), konst(&w), konst(&b)];
    let out = infer("Gemm", &a, &ins, 1, 13).unwrap();
    assert_eq!(out[0].0, vec![1, 1000]);
    assert_eq!(flops("Gemm", &a, &ins, &out), 2 * 512 * 1000 + 1000);
    assert_eq!(
        shape_of("MatMul", vec![], &[act(&[2, 1, 3, 4]), act(&[5, 4, 6])], 13),
        vec![2, 5, 3, 6]
    );
    assert_eq!(
        shape_of(
            "Concat",
            vec![int("axis", 1)],
            &[act(&[1, 64, 8, 8]), act(&[1, 32, 8, 8])],
            13
        ),
        vec![1, 96, 8, 8]
    );
    assert_eq!(
        shape_of("Add", vec![], &[act(&[1, 64, 8, 8]), act(&[64, 1, 1])], 13),
        vec![1, 64, 8, 8]
    );
}

#[test]
fn shape_chains_fold_to_constants() {
    // Shape -> Gather(0) -> Unsqueeze -> Concat with [-1]: the Flatten target [1, -1].
    let n = node("Shape", vec![]);
    let a = Attrs::new(&n, "shape");
    let s = fold("Shape", &a, &[act(&[1, 512, 1, 1])], &["s".into()], 13)
        .unwrap()
        .unwrap();
    assert_eq!(s[0].ints().unwrap(), vec![1, 512, 1, 1]);
    let idx = Const::from_ints("i", vec![], vec![0]);
    let n = node("Gather", vec![int("axis", 0)]);
    let a = Attrs::new(&n, "gather");
    let g = fold(
        "Gather",
        &a,
        &[konst(&s[0]), konst(&idx)],
        &["g".into()],
        13,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (g[0].shape.clone(), g[0].ints().unwrap()),
        (vec![], vec![1])
    );
    let axes = Const::from_ints("ax", vec![1], vec![0]);
    let n = node("Unsqueeze", vec![]);
    let a = Attrs::new(&n, "unsq");
    let u = fold(
        "Unsqueeze",
        &a,
        &[konst(&g[0]), konst(&axes)],
        &["u".into()],
        13,
    )
    .unwrap()
    .unwrap();
    assert_eq!(u[0].shape, vec![1]);
    let m1 = Const::from_ints("m1", vec![1], vec![-1]);
    let n = node("Concat", vec![int("axis", 0)]);
    let a = Attrs::new(&n, "cat");
    let c = fold("Concat", &a, &[konst(&u[0]), konst(&m1)], &["c".into()], 13)
        .unwrap()
        .unwrap();
    assert_eq!(c[0].ints().unwrap(), vec![1, -1]);
    assert_eq!(c[0].proto.name.as_deref(), Some("c"));
}

#[test]
fn resize_and_pad() {
    let scales = Const::from_floats("sc", vec![4], vec![1.0, 1.0, 2.0, 2.0]);
    let s = shape_of(
        "Resize",
        vec![],
        &[act(&[1, 128, 13, 13]), None, konst(&scales)],
        13,
    );
    assert_eq!(s, vec![1, 128, 26, 26]);
    let s = shape_of(
        "Upsample",
        vec![],
        &[act(&[1, 128, 13, 13]), konst(&scales)],
        9,
    );
    assert_eq!(s, vec![1, 128, 26, 26]);
    let pads = Const::from_ints("p", vec![8], vec![0, 0, 1, 2, 0, 0, 3, 4]);
    assert_eq!(
        shape_of("Pad", vec![], &[act(&[1, 3, 10, 10]), konst(&pads)], 13),
        vec![1, 3, 14, 16]
    );
    assert_eq!(
        shape_of(
            "Pad",
            vec![ints("pads", &[0, 0, 1, 1, 0, 0, 1, 1])],
            &[act(&[1, 3, 10, 10])],
            9
        ),
        vec![1, 3, 12, 12]
    );
}

#[test]
fn unsupported_operator_names_itself() {
    let n = node("LSTM", vec![]);
    let a = Attrs::new(&n, "node 'rnn' (LSTM)");
    let e = infer("LSTM", &a, &[act(&[1, 3, 4])], 1, 13).unwrap_err();
    assert!(
        e.contains("node 'rnn' (LSTM)") && e.contains("unsupported operator LSTM"),
        "{e}"
    );
}
