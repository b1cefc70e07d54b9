//! Operator classes: the groups of layers a device model gives its own throughput, memory
//! term and thread scaling (a 3x3 stride-1 convolution runs with Winograd on ncnn's CPUs, a
//! depthwise or fully connected layer is bound by memory, a reshape only copies).

use serde::{Deserialize, Serialize};

use crate::attr::Attrs;
use crate::ops::In;

/// The class of a layer, from its operator, kernel, stride and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpClass {
    /// Dense 3x3 convolution with stride 1 (Winograd-eligible).
    Conv3x3s1,
    /// 1x1 dense convolution (a GEMM over pixels).
    Conv1x1,
    /// Any other dense convolution (larger kernels, strided 3x3, transposed).
    Conv,
    /// Depthwise convolution (one group per channel).
    Depthwise,
    /// Grouped convolution that is not depthwise.
    Grouped,
    /// Fully connected layer or matrix product (GEMV at batch 1).
    Fc,
    /// Pooling (local or global) and reductions.
    Pool,
    /// An activation or normalisation right after a convolution, a fully connected layer or
    /// another such layer, whose input feeds nothing else: what engines fuse into the layer
    /// before (ncnn and ONNX Runtime fuse Conv + BatchNormalization + Relu).
    Activation,
    /// Element-wise operators, activations and normalisations that cannot be fused.
    Eltwise,
    /// Data movement: concat, reshape, transpose, slice, pad, ...
    Copy,
}

impl OpClass {
    /// Every class, in a fixed order.
    pub const ALL: [OpClass; 10] = [
        OpClass::Conv3x3s1,
        OpClass::Conv1x1,
        OpClass::Conv,
        OpClass::Depthwise,
        OpClass::Grouped,
        OpClass::Fc,
        OpClass::Pool,
        OpClass::Activation,
        OpClass::Eltwise,
        OpClass::Copy,
    ];

    /// The name used in files (`conv3x3s1`, `fc`, ...).
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Conv3x3s1 => "conv3x3s1",
            OpClass::Conv1x1 => "conv1x1",
            OpClass::Conv => "conv",
            OpClass::Depthwise => "depthwise",
            OpClass::Grouped => "grouped",
            OpClass::Fc => "fc",
            OpClass::Pool => "pool",
            OpClass::Activation => "activation",
            OpClass::Eltwise => "eltwise",
            OpClass::Copy => "copy",
        }
    }
}

/// The class of an operator `op` with attributes `a` and inputs `ins` (the weight is input 1
/// of a convolution).
pub fn classify(op: &str, a: &Attrs, ins: &[Option<In>]) -> OpClass {
    match op {
        "Conv" => conv_class(a, ins),
        "ConvTranspose" => OpClass::Conv,
        "Gemm" | "MatMul" => OpClass::Fc,
        "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" | "ReduceMean"
        | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ArgMax" | "LpPool" => OpClass::Pool,
        "Reshape" | "Flatten" | "Transpose" | "Concat" | "Split" | "Slice" | "Pad" | "Squeeze"
        | "Unsqueeze" | "Identity" | "Dropout" | "Gather" | "Cast" | "Expand" | "Tile"
        | "Resize" | "Upsample" | "DepthToSpace" | "SpaceToDepth" => OpClass::Copy,
        _ => OpClass::Eltwise,
    }
}

/// Dense, 1x1, 3x3 stride 1, depthwise or grouped, from the weight shape
/// `[Cout, Cin/group, k...]`, `group`, `strides` and `dilations`.
fn conv_class(a: &Attrs, ins: &[Option<In>]) -> OpClass {
    let w: &[usize] = ins
        .get(1)
        .and_then(|x| x.as_ref())
        .map(|x| x.shape.as_slice())
        .unwrap_or(&[]);
    let group = a.int("group", 1).max(1) as usize;
    if group > 1 {
        // one input channel per group (any channel multiplier): depthwise
        return if w.get(1) == Some(&1) {
            OpClass::Depthwise
        } else {
            OpClass::Grouped
        };
    }
    let kernel = w.get(2..).unwrap_or(&[]);
    let strides = a.ints("strides").unwrap_or_default();
    let dilations = a.ints("dilations").unwrap_or_default();
    let unit_stride = strides.iter().chain(&dilations).all(|&s| s == 1);
    if !kernel.is_empty() && kernel.iter().all(|&k| k == 1) {
        OpClass::Conv1x1
    } else if kernel.len() == 2 && kernel.iter().all(|&k| k == 3) && unit_stride {
        OpClass::Conv3x3s1
    } else {
        OpClass::Conv
    }
}

/// Operators an engine can fuse into the convolution or matrix product before them.
const FUSABLE: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
];

/// Marks as [`OpClass::Activation`] the element-wise layers of `graph` that follow a
/// convolution, a fully connected layer or another such activation, and whose input no other
/// layer reads (a chain an engine fuses into one kernel).
pub fn mark_fusable(graph: &mut crate::graph::Graph) {
    for i in 0..graph.layers.len() {
        let l = &graph.layers[i];
        if l.class != OpClass::Eltwise || !FUSABLE.contains(&l.op.as_str()) || l.inputs.len() != 1 {
            continue;
        }
        let Some(t) = graph.tensors.get(&l.inputs[0]) else {
            continue;
        };
        let fusable_producer = t.producer.is_some_and(|p| {
            matches!(
                graph.layers[p].class,
                OpClass::Conv3x3s1
                    | OpClass::Conv1x1
                    | OpClass::Conv
                    | OpClass::Depthwise
                    | OpClass::Grouped
                    | OpClass::Fc
                    | OpClass::Activation
            )
        });
        if fusable_producer && t.consumers.len() == 1 && !graph.outputs.contains(&l.inputs[0]) {
            graph.layers[i].class = OpClass::Activation;
        }
    }
}
