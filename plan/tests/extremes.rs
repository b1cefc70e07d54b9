//! Every supported operator with extreme attributes, constant values and shapes (dimensions
//! near 2^40, i64::MAX/MIN, negative values, zero groups, zero-sized tensors with huge other
//! dimensions): the analysis returns a model or an error, never panics. The plan crate is
//! built with overflow checks in release (Cargo.toml), so an overflow is a panic here.
//!
//! The cases are drawn by a fixed-seed generator: the same cases every run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicesim_plan::attr::Attrs;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::model::{InputShapes, Model};
use dicesim_plan::onnx::{
    attribute_proto::AttributeType, dtype, tensor_value_info, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};
use dicesim_plan::ops::{self, In, SUPPORTED};
use dicesim_plan::partition::Plan;
use dicesim_plan::split::{sub_model, PlanFile};
use dicesim_plan::tensor::Const;

/// Cases per operator.
const CASES: usize = 400;

const BIG: i64 = 1 << 40;
const INTS: &[i64] = &[
    i64::MAX,
    i64::MIN,
    i64::MAX / 2 + 1,
    BIG,
    -BIG,
    BIG + 1,
    1 << 32,
    -1,
    0,
    1,
    2,
    3,
    7,
];
const DIMS: &[usize] = &[0, 1 << 20, 1 << 40, (1 << 40) + 1, 1 << 62, usize::MAX];
const INT_ATTRS: &[&str] = &[
    "group",
    "axis",
    "size",
    "keepdims",
    "transA",
    "transB",
    "to",
    "allowzero",
    "ceil_mode",
    "start",
    "end",
    "num_outputs",
    "broadcast",
    "value_int",
];
const INTS_ATTRS: &[&str] = &[
    "strides",
    "pads",
    "dilations",
    "kernel_shape",
    "output_padding",
    "output_shape",
    "split",
    "starts",
    "ends",
    "axes",
    "perm",
    "shape",
    "paddings",
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn int(&mut self) -> i64 {
        if self.chance(2) {
            INTS[self.below(INTS.len())]
        } else {
            self.below(9) as i64 - 2
        }
    }
    fn ints(&mut self) -> Vec<i64> {
        (0..self.below(7)).map(|_| self.int()).collect()
    }
    /// A graph input's dimension: small, now and then huge (0 is not a declared size).
    fn dim(&mut self) -> usize {
        if self.chance(12) {
            DIMS[1 + self.below(DIMS.len() - 1)]
        } else {
            1 + self.below(6)
        }
    }
    fn shape(&mut self) -> Vec<usize> {
        (0..self.below(6)).map(|_| self.dim()).collect()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v,
        ..Default::default()
    }
}

fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec().into()),
        ..Default::default()
    }
}

/// An int64 initializer holding `v` (shape `[len]`, or a scalar of its first value).
fn int_tensor(name: &str, mut v: Vec<i64>, scalar: bool) -> TensorProto {
    if scalar {
        v.resize(1, 0);
    }
    TensorProto {
        dims: if scalar { vec![] } else { vec![v.len() as i64] },
        data_type: Some(dtype::INT64),
        name: Some(name.into()),
        int64_data: v,
        ..Default::default()
    }
}

/// A zero-sized float initializer of huge other dimensions.
fn empty_tensor(name: &str, rng: &mut Rng) -> TensorProto {
    let mut dims: Vec<i64> = (0..1 + rng.below(4)).map(|_| rng.int().max(1)).collect();
    dims.insert(rng.below(dims.len() + 1), 0);
    TensorProto {
        dims,
        data_type: Some(dtype::FLOAT),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn attributes(rng: &mut Rng) -> Vec<AttributeProto> {
    let mut attrs = Vec::new();
    for name in INT_ATTRS {
        if rng.chance(3) {
            attrs.push(attr_int(name, rng.int()));
        }
    }
    for name in INTS_ATTRS {
        if rng.chance(3) {
            attrs.push(attr_ints(name, rng.ints()));
        }
    }
    if rng.chance(4) {
        let pad = ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"][rng.below(4)];
        attrs.push(attr_string("auto_pad", pad));
    }
    if rng.chance(2) {
        let v = rng.ints();
        attrs.push(attr_tensor("value", int_tensor("v", v, false)));
    }
    attrs
}

/// A model of one `op` node (reading a graph input and random initializers), sometimes fed
/// by a second node, with random attributes.
fn case(op: &str, rng: &mut Rng) -> ModelProto {
    let mut initializer = Vec::new();
    let mut input = vec![tensor_value_info("x", &rng.shape(), dtype::FLOAT)];
    let mut names = vec!["x".to_string()];
    for i in 1..=rng.below(5) {
        let name = format!("c{i}");
        match rng.below(6) {
            0 => names.push(String::new()),
            1 => {
                input.push(tensor_value_info(&name, &rng.shape(), dtype::FLOAT));
                names.push(name);
            }
            2 => {
                initializer.push(empty_tensor(&name, rng));
                names.push(name);
            }
            k => {
                initializer.push(int_tensor(&name, rng.ints(), k == 3));
                names.push(name);
            }
        }
    }
    let mut nodes = Vec::new();
    if rng.chance(3) {
        // a producer first: the node reads a folded or computed value
        let pre = SUPPORTED[rng.below(SUPPORTED.len())];
        nodes.push(node(pre, names.clone(), vec!["p".into()], attributes(rng)));
        let at = rng.below(names.len());
        names[at] = "p".into();
    }
    let n_out = if rng.chance(4) { 2 + rng.below(2) } else { 1 };
    let outputs: Vec<String> = (0..n_out).map(|k| format!("y{k}")).collect();
    nodes.push(node(op, names, outputs, attributes(rng)));
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some([7, 9, 11, 13, 18][rng.below(5)]),
        }],
        graph: Some(GraphProto {
            node: nodes,
            input,
            initializer,
            output: vec![tensor_value_info("y0", &[1], dtype::FLOAT)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, input: Vec<String>, output: Vec<String>, a: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input,
        output,
        attribute: a,
        ..Default::default()
    }
}

/// Analyses a case and, when it analyses, uses the model as `inspect` and `split` do.
fn exercise(proto: ModelProto) {
    let r = Model::analyse(proto, "x", &InputShapes::new());
    if std::env::var("SHOWERR").is_ok() {
        eprintln!("{:?}", r.as_ref().err());
    }
    let Ok(m) = r else {
        return;
    };
    let _ = (m.graph.total_flops(), m.graph.total_params_bytes());
    let _ = m.static_proto();
    let mapping = Mapping::single(&m.graph, "a.cpu");
    if let Ok(plan) = Plan::build(&m.graph, &mapping) {
        let _ = PlanFile::new(&m, &plan);
        for p in 0..plan.partitions.len() {
            let _ = sub_model(&m, &plan, p);
        }
    }
}

#[test]
fn no_operator_panics_on_extreme_values() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for op in SUPPORTED.iter().chain(&["Constant"]) {
        for _ in 0..CASES {
            let proto = case(op, &mut rng);
            let shown = format!("{:?}", proto.graph);
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| exercise(proto))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{op}: {msg}\n  {shown}"));
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "{} panics, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

/// Shape inference, folding and costs called directly on the largest shapes the analysis
/// admits, with every attribute and every constant input's value at one extreme (constant
/// inputs as long as the input's rank, or scalars): errors or saturated values, no panic.
#[test]
fn direct_inference_with_extreme_values() {
    let big = 1usize << 40;
    let shapes = [
        vec![1, big, 1, 1],
        vec![big, 1, 1],
        vec![3, 5, 7, 2],
        vec![4],
    ];
    for op in SUPPORTED {
        for &v in INTS {
            let attrs: Vec<AttributeProto> = (INT_ATTRS.iter().map(|n| attr_int(n, v)))
                .chain(INTS_ATTRS.iter().map(|n| attr_ints(n, vec![v; 2])))
                .collect();
            let n = node(op, vec![], vec!["y".into()], attrs);
            let a = Attrs::new(&n, "node");
            for s in &shapes {
                for len in [s.len(), 1, 2 * s.len()] {
                    direct(op, &a, s, Const::from_ints("c", vec![len], vec![v; len]));
                    direct(op, &a, s, Const::from_ints("c", vec![], vec![v]));
                }
            }
        }
    }
}

/// One operator over an activation of shape `s` (or a small constant of it) and up to four
/// copies of the constant `c`.
fn direct(op: &str, a: &Attrs, s: &[usize], c: Const) {
    let x = In {
        shape: s.to_vec(),
        dtype: dtype::FLOAT,
        konst: None,
    };
    let small = (s.iter().product::<usize>() <= 64)
        .then(|| Const::from_floats("x", s.to_vec(), vec![1.5; s.iter().product()]));
    let k = In {
        shape: c.shape.clone(),
        dtype: c.dtype,
        konst: Some(&c),
    };
    for n_in in 1..=5 {
        let mut ins = vec![Some(x.clone())];
        ins.extend((1..n_in).map(|_| Some(k.clone())));
        if let Ok(outs) = ops::infer(op, a, &ins, 1, 13) {
            let _ = ops::flops(op, a, &ins, &outs);
        }
        let _ = ops::fold(op, a, &ins, &["y".into()], 13);
        ins[0] = Some(k.clone());
        let _ = ops::fold(op, a, &ins, &["y".into()], 13);
        if let Some(sm) = &small {
            ins[0] = Some(In {
                shape: sm.shape.clone(),
                dtype: sm.dtype,
                konst: Some(sm),
            });
            let _ = ops::fold(op, a, &ins, &["y".into()], 13);
        }
    }
}
