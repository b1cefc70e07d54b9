//! Per-operator shape inference, constant folding and cost (FLOPs).
//!
//! FLOP rules (a multiply-add counts as 2):
//! - Conv: `2 * N * Cout * prod(out spatial) * Cin/group * prod(kernel)`, plus one per output
//!   element for a bias; ConvTranspose likewise over the input positions.
//! - Gemm `2*M*N*K` (+ `M*N` with C); MatMul `2*batch*M*N*K`.
//! - MaxPool/AveragePool: kernel size per output element; global pools and reductions: one
//!   per input element.
//! - BatchNormalization and InstanceNormalization: 2 per element (a BatchNormalization that
//!   only reads a convolution's output: 0, since engines fold it into the convolution); LRN: `2*size + 3` per
//!   element; Softmax/LogSoftmax: 3 per element.
//! - Every other element-wise operator (activations, arithmetic, Clip, Resize): 1 per output
//!   element; Sum/Mean/Max/Min of n inputs: n-1 per element.
//! - Pure data movement (Reshape, Flatten, Transpose, Concat, Split, Slice, Pad, Squeeze,
//!   Unsqueeze, Identity, Dropout, Gather, Cast, Expand, Tile): 0.
//!
//! Overflow: every tensor the analysis keeps has an extent (elements, a zero dimension
//! counted as 1) within `model::MAX_TENSOR_BYTES`, so products of its dimensions fit. What a
//! model sets freely (attributes, constant values) is combined with dimensions in i128 or
//! checked arithmetic, and a result that is not a valid dimension is an error naming the
//! node. Costs saturate.

use crate::attr::Attrs;
use crate::onnx::dtype;
use crate::tensor::{checked_numel, dim_i64, extent, Const, Values, MAX_DECODED_ELEMS};

/// What shape inference knows of one input.
#[derive(Debug, Clone)]
pub struct In<'a> {
    /// Static shape.
    pub shape: Vec<usize>,
    /// ONNX element type.
    pub dtype: i32,
    /// The value, when the input is a constant.
    pub konst: Option<&'a Const>,
}

/// Operators dicesim can analyse (besides `Constant`, which is always folded).
pub const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "ArgMax",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Div",
    "Dropout",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LRN",
    "LeakyRelu",
    "Less",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mish",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Selu",
    "Shape",
    "Sigmoid",
    "Sin",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Upsample",
    "Where",
];

const UNARY_SAME: &[&str] = &[
    "Abs",
    "BatchNormalization",
    "Ceil",
    "Celu",
    "Clip",
    "Cos",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LRN",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "Mish",
    "Neg",
    "Not",
    "Reciprocal",
    "Relu",
    "Selu",
    "Sigmoid",
    "Sin",
    "Softmax",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Tanh",
    "ThresholdedRelu",
];

const BROADCAST: &[&str] = &[
    "Add", "And", "Div", "Equal", "Greater", "Less", "Max", "Mean", "Min", "Mul", "Or", "PRelu",
    "Pow", "Sub", "Sum", "Where",
];

type Shape = Vec<usize>;

/// Elements of a shape, saturating (a hostile shape must not overflow).
fn numel(s: &[usize]) -> u64 {
    s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}

/// `a * b * c + d`, saturating.
fn mac(a: u64, b: u64, c: u64, d: u64) -> u64 {
    a.saturating_mul(b).saturating_mul(c).saturating_add(d)
}

/// A computed dimension as a size; negative or beyond a usize is an error naming the node
/// (sizes beyond `model::MAX_TENSOR_BYTES` are refused after inference).
fn to_dim(v: i128, a: &Attrs, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| a.err(format!("{what} would be {v}, not a valid size")))
}

/// Elements of a shape whose count must fit (an error naming the node otherwise).
fn count(s: &[usize], a: &Attrs) -> Result<usize, String> {
    checked_numel(s).ok_or_else(|| a.err(format!("shape {s:?} has too many elements")))
}

fn norm_axis(axis: i64, rank: usize, a: &Attrs) -> Result<usize, String> {
    let r = rank as i64;
    let ax = if axis < 0 { axis + r } else { axis };
    if ax < 0 || ax >= r {
        return Err(a.err(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(ax as usize)
}

/// Numpy-style multidirectional broadcasting of shapes.
pub fn broadcast(shapes: &[&[usize]], a: &Attrs) -> Result<Shape, String> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(a.err(format!(
                    "input shapes {:?} cannot be broadcast together",
                    shapes
                )));
            }
        }
    }
    Ok(out)
}

fn input<'x, 'a>(ins: &'x [Option<In<'a>>], i: usize, a: &Attrs) -> Result<&'x In<'a>, String> {
    ins.get(i)
        .and_then(|x| x.as_ref())
        .ok_or_else(|| a.err(format!("input {i} is missing")))
}

fn opt_input<'x, 'a>(ins: &'x [Option<In<'a>>], i: usize) -> Option<&'x In<'a>> {
    ins.get(i).and_then(|x| x.as_ref())
}

/// Integer values of a constant input, with an error naming what is needed.
fn const_ints(ins: &[Option<In>], i: usize, what: &str, a: &Attrs) -> Result<Vec<i64>, String> {
    let x = input(ins, i, a)?;
    x.konst.and_then(|c| c.ints()).ok_or_else(|| {
        a.err(format!(
            "{what} (input {i}) must be a constant known before running (an initializer, a Constant or a foldable Shape chain)"
        ))
    })
}

fn opt_const_ints(ins: &[Option<In>], i: usize) -> Option<Vec<i64>> {
    opt_input(ins, i)
        .and_then(|x| x.konst)
        .and_then(|c| c.ints())
}

fn opt_const_floats(ins: &[Option<In>], i: usize) -> Option<Vec<f64>> {
    opt_input(ins, i)
        .and_then(|x| x.konst)
        .and_then(|c| c.floats())
}

/// A convolution or pooling window: the kernel and its attributes.
struct Window {
    kernel: Vec<usize>,
    strides: Vec<i64>,
    dil: Vec<i64>,
    pads: Vec<i64>,
    auto_pad: String,
}

impl Window {
    /// Output spatial sizes of this convolution or pooling window over `in_sp`.
    fn out(&self, a: &Attrs, in_sp: &[usize], ceil_mode: bool) -> Result<Shape, String> {
        let Window {
            kernel,
            strides,
            dil,
            pads,
            auto_pad,
        } = self;
        let n = in_sp.len();
        if kernel.len() != n {
            return Err(a.err(format!(
                "a {}-d kernel does not fit {n} spatial dimensions",
                kernel.len()
            )));
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // i128: a kernel, stride, dilation or pad may be any i64 (or usize)
            let s = i128::from(strides[i].max(1));
            let d = i128::from(dil[i].max(1));
            let ek = (kernel[i] as i128 - 1) * d + 1;
            let x = in_sp[i] as i128;
            let pads = (i128::from(pads[i]), i128::from(pads[i + n]));
            let o = match auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => (x + s - 1) / s,
                "VALID" => {
                    if x < ek {
                        0
                    } else {
                        (x - ek) / s + 1
                    }
                }
                _ => padded_out(x, ek, s, pads, ceil_mode),
            };
            if o <= 0 {
                return Err(a.err(format!(
                    "spatial size {x} is too small for kernel {} (stride {s}, dilation {d})",
                    kernel[i]
                )));
            }
            out.push(to_dim(o, a, "an output size")?);
        }
        Ok(out)
    }
}

/// Output size along one axis of `x` elements with explicit pads `(pb, pe)`, effective
/// kernel extent `ek` and stride `s`.
fn padded_out(x: i128, ek: i128, s: i128, (pb, pe): (i128, i128), ceil_mode: bool) -> i128 {
    let span = x + pb + pe - ek;
    if span < 0 {
        0
    } else if ceil_mode {
        let mut o = (span + s - 1) / s + 1;
        // The last window must start inside the input or the left padding
        // (the rule PyTorch and ONNX Runtime use).
        if (o - 1) * s >= x + pb {
            o -= 1;
        }
        o
    } else {
        span / s + 1
    }
}

fn window_attrs(a: &Attrs, kernel: Vec<usize>) -> Result<Window, String> {
    let n = kernel.len();
    let strides = a.ints("strides").unwrap_or_else(|| vec![1; n]);
    let dil = a.ints("dilations").unwrap_or_else(|| vec![1; n]);
    let pads = a.ints("pads").unwrap_or_else(|| vec![0; 2 * n]);
    if strides.len() != n || dil.len() != n || pads.len() != 2 * n {
        return Err(a.err(format!(
            "strides/dilations/pads lengths ({}, {}, {}) do not fit a {n}-d kernel",
            strides.len(),
            dil.len(),
            pads.len()
        )));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(a.err("negative pads are not supported"));
    }
    Ok(Window {
        kernel,
        strides,
        dil,
        pads,
        auto_pad: a.string("auto_pad", "NOTSET"),
    })
}

fn need_rank(x: &In, min: usize, a: &Attrs, what: &str) -> Result<(), String> {
    if x.shape.len() < min {
        return Err(a.err(format!(
            "{what} has shape {:?}; expected rank >= {min}",
            x.shape
        )));
    }
    Ok(())
}

fn axes_of(ins: &[Option<In>], a: &Attrs, input_idx: usize) -> Option<Vec<i64>> {
    a.ints("axes").or_else(|| opt_const_ints(ins, input_idx))
}

/// Infers output shapes and types of one layer. `opset` is the model's default-domain opset.
pub fn infer(
    op: &str,
    a: &Attrs,
    ins: &[Option<In>],
    n_outputs: usize,
    opset: i64,
) -> Result<Vec<(Shape, i32)>, String> {
    let n = OpNode {
        op,
        a,
        ins,
        n_outputs,
        opset,
    };
    match op {
        _ if UNARY_SAME.contains(&op) => infer_unary(&n),
        _ if BROADCAST.contains(&op) => infer_broadcasting(&n),
        "Conv" => infer_conv(&n),
        "ConvTranspose" => infer_conv_transpose(&n),
        "MaxPool" | "AveragePool" => infer_pool(&n),
        "GlobalAveragePool" | "GlobalMaxPool" => infer_global_pool(&n),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => infer_reduce(&n),
        "ArgMax" => infer_arg_max(&n),
        "Gemm" => infer_gemm(&n),
        "MatMul" => infer_mat_mul(&n),
        "Concat" => infer_concat(&n),
        "Split" => infer_split(&n),
        "Slice" => infer_slice(&n),
        "Flatten" => infer_flatten(&n),
        "Reshape" => infer_reshape_op(&n),
        "Transpose" => infer_transpose(&n),
        "Squeeze" => infer_squeeze(&n),
        "Unsqueeze" => infer_unsqueeze_op(&n),
        "Resize" | "Upsample" => infer_resize(&n),
        "Pad" => infer_pad(&n),
        "Gather" => infer_gather(&n),
        "Cast" => infer_cast(&n),
        "Expand" => infer_expand(&n),
        "Tile" => infer_tile(&n),
        "Shape" | "ConstantOfShape" | "Range" => Err(
            a.err("its input must be static (known before running); dicesim folds it when it is")
        ),
        _ => Err(a.err(format!(
            "unsupported operator {op}; dicesim supports: {}",
            SUPPORTED.join(", ")
        ))),
    }
}

/// One node as shape inference sees it.
#[derive(Clone, Copy)]
struct OpNode<'x, 'a> {
    op: &'x str,
    a: &'x Attrs<'x>,
    ins: &'x [Option<In<'a>>],
    n_outputs: usize,
    opset: i64,
}

/// Output shapes and element types.
type Outs = Vec<(Shape, i32)>;

/// One output of `s`, of input 0's element type (float when input 0 is absent).
fn first(ins: &[Option<In>], s: Shape) -> Result<Outs, String> {
    let dt = opt_input(ins, 0).map(|x| x.dtype).unwrap_or(dtype::FLOAT);
    Ok(vec![(s, dt)])
}

fn infer_unary(n: &OpNode) -> Result<Outs, String> {
    let OpNode {
        op,
        a,
        ins,
        n_outputs,
        opset,
        ..
    } = *n;
    let x = input(ins, 0, a)?;
    let mut outs = vec![(x.shape.clone(), x.dtype)];
    if op == "Dropout" && n_outputs > 1 {
        // The mask is of the input's type before Dropout-12, bool since.
        let mask = if opset < 12 { x.dtype } else { dtype::BOOL };
        outs.push((x.shape.clone(), mask));
    }
    if op == "BatchNormalization" && n_outputs > 1 {
        return Err(a.err("BatchNormalization in training mode (several outputs) is not supported; export the model in eval mode"));
    }
    Ok(outs)
}

fn infer_broadcasting(n: &OpNode) -> Result<Outs, String> {
    let OpNode {
        op, a, ins, opset, ..
    } = *n;
    let present: Vec<&In> = ins.iter().flatten().collect();
    if present.is_empty() {
        return Err(a.err("no inputs"));
    }
    if opset < 7 && a.int("broadcast", 0) == 1 {
        return Err(a.err("legacy broadcast attribute (opset < 7) is not supported; convert the model to opset 9 or later"));
    }
    let shapes: Vec<&[usize]> = present.iter().map(|x| x.shape.as_slice()).collect();
    let s = broadcast(&shapes, a)?;
    let dt = match op {
        "Equal" | "Greater" | "Less" | "And" | "Or" => dtype::BOOL,
        "Where" => present.get(1).map(|x| x.dtype).unwrap_or(dtype::FLOAT),
        _ => present[0].dtype,
    };
    Ok(vec![(s, dt)])
}

fn infer_conv(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let w = input(ins, 1, a)?;
    need_rank(x, 3, a, "input X")?;
    if w.shape.len() != x.shape.len() {
        return Err(a.err(format!(
            "weight shape {:?} does not match input shape {:?}",
            w.shape, x.shape
        )));
    }
    let g = a.int("group", 1).max(1) as usize;
    if w.shape[1].checked_mul(g) != Some(x.shape[1]) {
        return Err(a.err(format!(
            "input has {} channels but weight {:?} with group {g} expects {}",
            x.shape[1],
            w.shape,
            w.shape[1] as u128 * g as u128
        )));
    }
    let kernel: Vec<usize> = w.shape[2..].to_vec();
    let win = window_attrs(a, kernel)?;
    let sp = win.out(a, &x.shape[2..], false)?;
    let mut s = vec![x.shape[0], w.shape[0]];
    s.extend(sp);
    first(ins, s)
}

fn infer_conv_transpose(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let w = input(ins, 1, a)?;
    need_rank(x, 3, a, "input X")?;
    if w.shape.len() != x.shape.len() {
        return Err(a.err(format!(
            "weight shape {:?} does not match input shape {:?}",
            w.shape, x.shape
        )));
    }
    let g = a.int("group", 1).max(1) as usize;
    let n = x.shape.len() - 2;
    let win = window_attrs(a, w.shape[2..].to_vec())?;
    let cout = w.shape[1].checked_mul(g);
    let mut s = vec![x.shape[0], cout.ok_or_else(|| a.err("group is too large"))?];
    if let Some(os) = a.ints("output_shape") {
        let os = &os[os.len().saturating_sub(n)..];
        for &d in os {
            s.push(to_dim(d.into(), a, "output_shape")?);
        }
    } else {
        let out_pad = a.ints("output_padding").unwrap_or_default();
        for i in 0..n {
            let pad = i128::from(out_pad.get(i).copied().unwrap_or(0));
            s.push(transposed_size(&win, i, x.shape[2 + i], pad, a)?);
        }
    }
    first(ins, s)
}

/// Output size of a transposed convolution along spatial axis `i` of input size `x`.
fn transposed_size(
    win: &Window,
    i: usize,
    x: usize,
    out_pad: i128,
    a: &Attrs,
) -> Result<usize, String> {
    let n = win.kernel.len();
    // i128: the attributes may be any i64
    let (x, st) = (x as i128, i128::from(win.strides[i]));
    let o = if win.auto_pad.starts_with("SAME") {
        x * st
    } else {
        st * (x - 1) + out_pad + (win.kernel[i] as i128 - 1) * i128::from(win.dil[i]) + 1
            - i128::from(win.pads[i])
            - i128::from(win.pads[i + n])
    };
    if o <= 0 {
        return Err(a.err("output size would be empty"));
    }
    to_dim(o, a, "an output size")
}

fn infer_pool(n: &OpNode) -> Result<Outs, String> {
    let OpNode {
        a, ins, n_outputs, ..
    } = *n;
    let x = input(ins, 0, a)?;
    need_rank(x, 3, a, "input X")?;
    let k: Vec<usize> = a
        .ints("kernel_shape")
        .ok_or_else(|| a.err("attribute kernel_shape is missing"))?
        .iter()
        .map(|&k| k.max(1) as usize)
        .collect();
    if k.len() != x.shape.len() - 2 {
        return Err(a.err(format!(
            "kernel_shape {k:?} does not fit input shape {:?}",
            x.shape
        )));
    }
    let win = window_attrs(a, k)?;
    let sp = win.out(a, &x.shape[2..], a.int("ceil_mode", 0) == 1)?;
    let mut s = vec![x.shape[0], x.shape[1]];
    s.extend(sp);
    let mut outs = vec![(s.clone(), x.dtype)];
    if n_outputs > 1 {
        outs.push((s, dtype::INT64));
    }
    Ok(outs)
}

fn infer_global_pool(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    need_rank(x, 3, a, "input X")?;
    let mut s = x.shape[..2].to_vec();
    s.extend(std::iter::repeat_n(1, x.shape.len() - 2));
    first(ins, s)
}

fn infer_reduce(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let keep = a.int("keepdims", 1) == 1;
    let axes = axes_of(ins, a, 1);
    let r = x.shape.len();
    let axes: Vec<usize> = match axes {
        Some(v) if !v.is_empty() => v
            .iter()
            .map(|&ax| norm_axis(ax, r, a))
            .collect::<Result<_, _>>()?,
        _ => (0..r).collect(),
    };
    let mut s = Vec::new();
    for (i, &d) in x.shape.iter().enumerate() {
        if axes.contains(&i) {
            if keep {
                s.push(1);
            }
        } else {
            s.push(d);
        }
    }
    first(ins, s)
}

fn infer_arg_max(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let ax = norm_axis(a.int("axis", 0), x.shape.len(), a)?;
    let mut s = x.shape.clone();
    if a.int("keepdims", 1) == 1 {
        s[ax] = 1;
    } else {
        s.remove(ax);
    }
    Ok(vec![(s, dtype::INT64)])
}

fn infer_gemm(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let am = input(ins, 0, a)?;
    let b = input(ins, 1, a)?;
    if am.shape.len() != 2 || b.shape.len() != 2 {
        return Err(a.err(format!(
            "Gemm needs 2-d inputs, got {:?} and {:?} (insert a Flatten before it)",
            am.shape, b.shape
        )));
    }
    let (m, k) = if a.int("transA", 0) == 1 {
        (am.shape[1], am.shape[0])
    } else {
        (am.shape[0], am.shape[1])
    };
    let (kb, n) = if a.int("transB", 0) == 1 {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != kb {
        return Err(a.err(format!(
            "inner dimensions differ: A {:?} and B {:?} (transA/transB considered)",
            am.shape, b.shape
        )));
    }
    first(ins, vec![m, n])
}

fn infer_mat_mul(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let am = input(ins, 0, a)?;
    let b = input(ins, 1, a)?;
    let (mut sa, mut sb) = (am.shape.clone(), b.shape.clone());
    let (a1, b1) = (sa.len() == 1, sb.len() == 1);
    if a1 {
        sa.insert(0, 1);
    }
    if b1 {
        sb.push(1);
    }
    if sa.len() < 2 || sb.len() < 2 || sa[sa.len() - 1] != sb[sb.len() - 2] {
        return Err(a.err(format!(
            "shapes {:?} and {:?} cannot be multiplied",
            am.shape, b.shape
        )));
    }
    let batch = broadcast(&[&sa[..sa.len() - 2], &sb[..sb.len() - 2]], a)?;
    let mut s = batch;
    if !a1 {
        s.push(sa[sa.len() - 2]);
    }
    if !b1 {
        s.push(sb[sb.len() - 1]);
    }
    first(ins, s)
}

fn infer_concat(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let present: Vec<&In> = ins.iter().flatten().collect();
    let x = present.first().ok_or_else(|| a.err("no inputs"))?;
    let r = x.shape.len();
    let ax = norm_axis(a.int("axis", 1), r, a)?;
    let mut s = x.shape.clone();
    s[ax] = 0;
    for y in &present {
        if y.shape.len() != r
            || y.shape
                .iter()
                .enumerate()
                .any(|(i, &d)| i != ax && d != x.shape[i])
        {
            return Err(a.err(format!(
                "inputs {:?} and {:?} cannot be concatenated on axis {ax}",
                x.shape, y.shape
            )));
        }
        s[ax] = (s[ax].checked_add(y.shape[ax]))
            .ok_or_else(|| a.err("the concatenated size overflows"))?;
    }
    first(ins, s)
}

fn infer_split(n: &OpNode) -> Result<Outs, String> {
    let OpNode {
        a, ins, n_outputs, ..
    } = *n;
    let x = input(ins, 0, a)?;
    let ax = norm_axis(a.int("axis", 0), x.shape.len(), a)?;
    let d = x.shape[ax];
    let sizes: Vec<usize> = if let Some(v) = a.ints("split").or_else(|| opt_const_ints(ins, 1)) {
        v.iter().map(|&s| s.max(0) as usize).collect()
    } else {
        if a.has("num_outputs") && a.int("num_outputs", 1) != n_outputs as i64 {
            return Err(a.err(format!(
                "num_outputs {} differs from the node's {n_outputs} outputs",
                a.int("num_outputs", 1)
            )));
        }
        let n = n_outputs.max(1);
        let chunk = d.div_ceil(n);
        (0..n)
            .map(|i| chunk.min(d.saturating_sub(i.saturating_mul(chunk))))
            .collect()
    };
    let total = (sizes.iter()).try_fold(0usize, |t, &s| t.checked_add(s));
    if total != Some(d) || sizes.len() != n_outputs {
        return Err(a.err(format!(
            "split sizes {sizes:?} do not divide dimension {d} into {n_outputs} outputs"
        )));
    }
    Ok(sizes
        .iter()
        .map(|&sz| {
            let mut s = x.shape.clone();
            s[ax] = sz;
            (s, x.dtype)
        })
        .collect())
}

fn infer_slice(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, opset, .. } = *n;
    let x = input(ins, 0, a)?;
    let (starts, ends, axes, steps) = if opset < 10 {
        (
            a.ints("starts")
                .ok_or_else(|| a.err("attribute starts is missing"))?,
            a.ints("ends")
                .ok_or_else(|| a.err("attribute ends is missing"))?,
            a.ints("axes"),
            None,
        )
    } else {
        (
            const_ints(ins, 1, "starts", a)?,
            const_ints(ins, 2, "ends", a)?,
            opt_const_ints(ins, 3),
            opt_const_ints(ins, 4),
        )
    };
    let s = slice_shape(
        &x.shape,
        &starts,
        &ends,
        axes.as_deref(),
        steps.as_deref(),
        a,
    )?;
    first(ins, s.into_iter().map(|(n, _, _)| n).collect())
}

fn infer_flatten(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let r = x.shape.len() as i64;
    let mut ax = a.int("axis", 1);
    if ax < 0 {
        ax += r;
    }
    if ax < 0 || ax > r {
        return Err(a.err(format!("axis {ax} out of range for rank {r}")));
    }
    let (l, rr) = x.shape.split_at(ax as usize);
    first(ins, vec![count(l, a)?, count(rr, a)?])
}

fn infer_reshape_op(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, opset, .. } = *n;
    let x = input(ins, 0, a)?;
    let target = if opset < 5 {
        a.ints("shape")
            .ok_or_else(|| a.err("attribute shape is missing"))?
    } else {
        const_ints(ins, 1, "the target shape", a)?
    };
    first(
        ins,
        reshape(&x.shape, &target, a.int("allowzero", 0) == 1, a)?,
    )
}

fn infer_transpose(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let r = x.shape.len();
    let perm = a
        .ints("perm")
        .unwrap_or_else(|| (0..r as i64).rev().collect());
    let mut seen = vec![false; r];
    if perm.len() != r
        || perm
            .iter()
            .any(|&p| p < 0 || p as usize >= r || std::mem::replace(&mut seen[p as usize], true))
    {
        return Err(a.err(format!("perm {perm:?} is not a permutation of rank {r}")));
    }
    first(ins, perm.iter().map(|&p| x.shape[p as usize]).collect())
}

fn infer_squeeze(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let r = x.shape.len();
    let s = match axes_of(ins, a, 1) {
        Some(axes) => {
            let axes: Vec<usize> = axes
                .iter()
                .map(|&ax| norm_axis(ax, r, a))
                .collect::<Result<_, _>>()?;
            for &ax in &axes {
                if x.shape[ax] != 1 {
                    return Err(a.err(format!("cannot squeeze axis {ax} of shape {:?}", x.shape)));
                }
            }
            x.shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
        None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
    };
    first(ins, s)
}

fn infer_unsqueeze_op(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let axes = axes_of(ins, a, 1).ok_or_else(|| a.err("axes are missing"))?;
    first(ins, unsqueeze(&x.shape, &axes, a)?)
}

fn infer_resize(n: &OpNode) -> Result<Outs, String> {
    let OpNode {
        op, a, ins, opset, ..
    } = *n;
    let x = input(ins, 0, a)?;
    let r = x.shape.len();
    // Resize-10 and Upsample-9: (X, scales); Resize-11+: (X, roi, scales, sizes).
    let (scales, sizes) = if op == "Upsample" && opset < 9 {
        (
            a.floats("scales")
                .map(|v| v.iter().map(|&f| f as f64).collect()),
            None,
        )
    } else if op == "Upsample" || opset < 11 {
        (opt_const_floats(ins, 1), None)
    } else {
        (opt_const_floats(ins, 2), opt_const_ints(ins, 3))
    };
    let s: Shape = match (sizes, scales) {
        (Some(sz), _) if !sz.is_empty() => {
            if let Some(axes) = a.ints("axes").filter(|axes| axes.len() == sz.len()) {
                let mut s = x.shape.clone();
                for (&ax, &d) in axes.iter().zip(&sz) {
                    s[norm_axis(ax, r, a)?] = to_dim(d.into(), a, "a size")?;
                }
                s
            } else if sz.len() == r {
                (sz.iter())
                    .map(|&d| to_dim(d.into(), a, "a size"))
                    .collect::<Result<_, _>>()?
            } else {
                return Err(a.err(format!("sizes {sz:?} do not fit rank {r}")));
            }
        }
        (_, Some(sc)) if !sc.is_empty() => {
            if sc.len() != r {
                return Err(a.err(format!("scales {sc:?} do not fit rank {r}")));
            }
            x.shape
                .iter()
                .zip(&sc)
                .map(|(&d, &f)| (d as f64 * f).floor() as usize)
                .collect()
        }
        _ => return Err(a.err("scales or sizes must be constants known before running")),
    };
    first(ins, s)
}

fn infer_pad(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, opset, .. } = *n;
    let x = input(ins, 0, a)?;
    let r = x.shape.len();
    let pads = if opset < 11 {
        a.ints("pads")
            .or_else(|| a.ints("paddings"))
            .ok_or_else(|| a.err("attribute pads is missing"))?
    } else {
        const_ints(ins, 1, "pads", a)?
    };
    let axes: Vec<usize> = match opt_const_ints(ins, 3) {
        Some(ax) => ax
            .iter()
            .map(|&v| norm_axis(v, r, a))
            .collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(a.err(format!("pads {pads:?} do not fit rank {r}")));
    }
    let mut s = x.shape.clone();
    let n = axes.len();
    for (i, &ax) in axes.iter().enumerate() {
        let v = s[ax] as i128 + i128::from(pads[i]) + i128::from(pads[i + n]);
        if v < 0 {
            return Err(a.err("padding would make a dimension negative"));
        }
        s[ax] = to_dim(v, a, "a padded size")?;
    }
    first(ins, s)
}

fn infer_gather(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let idx = input(ins, 1, a)?;
    need_rank(x, 1, a, "input data")?;
    let ax = norm_axis(a.int("axis", 0), x.shape.len(), a)?;
    let mut s = x.shape[..ax].to_vec();
    s.extend(&idx.shape);
    s.extend(&x.shape[ax + 1..]);
    first(ins, s)
}

fn infer_cast(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    Ok(vec![(
        x.shape.clone(),
        a.int("to", dtype::FLOAT as i64) as i32,
    )])
}

fn infer_expand(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let shape = const_ints(ins, 1, "the target shape", a)?;
    let t: Shape = shape.iter().map(|&d| d.max(0) as usize).collect();
    first(ins, broadcast(&[&x.shape, &t], a)?)
}

fn infer_tile(n: &OpNode) -> Result<Outs, String> {
    let OpNode { a, ins, .. } = *n;
    let x = input(ins, 0, a)?;
    let reps = const_ints(ins, 1, "repeats", a)?;
    if reps.len() != x.shape.len() {
        return Err(a.err("repeats do not fit the input rank"));
    }
    let s = (x.shape.iter().zip(&reps))
        .map(|(&d, &r)| to_dim(d as i128 * i128::from(r.max(0)), a, "a tiled size"))
        .collect::<Result<_, _>>()?;
    first(ins, s)
}

/// Output shape of Reshape.
pub fn reshape(inp: &[usize], target: &[i64], allowzero: bool, a: &Attrs) -> Result<Shape, String> {
    let total = numel(inp);
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(a.err("more than one -1 in the target shape"));
                }
                out.push(1);
            }
            0 if !allowzero => out.push(*inp.get(i).ok_or_else(|| {
                a.err(format!(
                    "target shape {target:?} copies dimension {i} that input {inp:?} lacks"
                ))
            })?),
            t if t < 0 => return Err(a.err(format!("invalid target dimension {t}"))),
            t => out.push(t as usize),
        }
    }
    let Some(known) = checked_numel(&out).map(|k| k as u64) else {
        return Err(a.err(format!("cannot reshape {inp:?} to {target:?}")));
    };
    if let Some(i) = infer_at {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(a.err(format!("cannot reshape {inp:?} to {target:?}")));
        }
        out[i] = (total / known) as usize;
    } else if known != total {
        return Err(a.err(format!(
            "cannot reshape {inp:?} ({total} elements) to {target:?}"
        )));
    }
    Ok(out)
}

fn unsqueeze(inp: &[usize], axes: &[i64], a: &Attrs) -> Result<Shape, String> {
    let r = inp.len() + axes.len();
    let mut ax: Vec<usize> = axes
        .iter()
        .map(|&x| norm_axis(x, r, a))
        .collect::<Result<_, _>>()?;
    ax.sort_unstable();
    let mut out = Vec::with_capacity(r);
    let mut it = inp.iter();
    for i in 0..r {
        if ax.binary_search(&i).is_ok() {
            out.push(1);
        } else {
            out.push(*it.next().ok_or_else(|| a.err("bad unsqueeze axes"))?);
        }
    }
    Ok(out)
}

/// Per axis of a slice: (length, start, step).
fn slice_shape(
    inp: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
    a: &Attrs,
) -> Result<Vec<(usize, i64, i64)>, String> {
    let r = inp.len();
    let mut out: Vec<(usize, i64, i64)> = inp.iter().map(|&d| (d, 0, 1)).collect();
    if starts.len() != ends.len() {
        return Err(a.err("starts and ends differ in length"));
    }
    for i in 0..starts.len() {
        let ax = match axes {
            Some(v) => norm_axis(*v.get(i).ok_or_else(|| a.err("axes too short"))?, r, a)?,
            None => i,
        };
        if ax >= r {
            return Err(a.err("more starts than input dimensions"));
        }
        let step = steps.and_then(|s| s.get(i).copied()).unwrap_or(1);
        if step == 0 {
            return Err(a.err("a step of 0"));
        }
        // i128: starts, ends and steps may be any i64
        let (d, step) = (inp[ax] as i128, i128::from(step));
        let clampi = |v: i128, lo: i128, hi: i128| v.max(lo).min(hi);
        let mut s = i128::from(starts[i]);
        let mut e = i128::from(ends[i]);
        if s < 0 {
            s += d;
        }
        if e < 0 {
            e += d;
        }
        let len = if step > 0 {
            s = clampi(s, 0, d);
            e = clampi(e, 0, d);
            if e > s {
                (e - s + step - 1) / step
            } else {
                0
            }
        } else {
            s = clampi(s, 0, d - 1);
            e = clampi(e, -1, d - 1);
            if s > e {
                (s - e + (-step) - 1) / (-step)
            } else {
                0
            }
        };
        // within [0, d]: d and s fit a usize and an i64
        out[ax] = (len as usize, s as i64, step as i64);
    }
    Ok(out)
}

/// Shape of input `i`, empty when absent.
fn shape_at(ins: &[Option<In>], i: usize) -> Vec<usize> {
    opt_input(ins, i)
        .map(|x| x.shape.clone())
        .unwrap_or_default()
}

/// FLOPs of one layer, following the rules in the module documentation.
pub fn flops(op: &str, a: &Attrs, ins: &[Option<In>], outs: &[(Shape, i32)]) -> u64 {
    let out = outs.first().map(|o| numel(&o.0)).unwrap_or(0);
    let in0 = ins
        .first()
        .and_then(|x| x.as_ref())
        .map(|x| numel(&x.shape))
        .unwrap_or(0);
    let has = |i: usize| ins.get(i).map(|x| x.is_some()).unwrap_or(false);
    match op {
        "Conv" => {
            let w = shape_at(ins, 1);
            let per_out = numel(w.get(1..).unwrap_or(&[]));
            mac(2, out, per_out, if has(2) { out } else { 0 })
        }
        "ConvTranspose" => {
            let w = shape_at(ins, 1);
            // weight [Cin, Cout/group, k...]: each input element feeds Cout/group * k MACs
            let per_in = numel(w.get(1..).unwrap_or(&[]));
            mac(2, in0, per_in, if has(2) { out } else { 0 })
        }
        "Gemm" => {
            let am = shape_at(ins, 0);
            let k = if a.int("transA", 0) == 1 {
                am.first()
            } else {
                am.get(1)
            }
            .copied()
            .unwrap_or(0) as u64;
            mac(2, out, k, if has(2) { out } else { 0 })
        }
        "MatMul" => {
            let am = shape_at(ins, 0);
            let k = am.last().copied().unwrap_or(0) as u64;
            mac(2, out, k, 0)
        }
        "MaxPool" | "AveragePool" => {
            let k = (a.ints("kernel_shape").unwrap_or_default().iter())
                .fold(1u64, |p, &k| p.saturating_mul(k.max(1) as u64));
            out.saturating_mul(k)
        }
        "GlobalAveragePool" | "GlobalMaxPool" | "ReduceMean" | "ReduceSum" | "ReduceMax"
        | "ReduceMin" | "ArgMax" => in0,
        "BatchNormalization" | "InstanceNormalization" => out.saturating_mul(2),
        "LRN" => {
            let size = a.int("size", 1).clamp(1, i64::MAX / 4) as u64;
            out.saturating_mul(2 * size + 3)
        }
        "Softmax" | "LogSoftmax" => out.saturating_mul(3),
        "Sum" | "Mean" | "Max" | "Min" => {
            let n = ins.iter().flatten().count() as u64;
            out.saturating_mul(n.saturating_sub(1).max(1))
        }
        "Reshape" | "Flatten" | "Transpose" | "Concat" | "Split" | "Slice" | "Pad" | "Squeeze"
        | "Unsqueeze" | "Identity" | "Dropout" | "Gather" | "Cast" | "Expand" | "Tile" => 0,
        _ => out,
    }
}

/// Tries to fold a node whose inputs are all constants (or, for `Shape`, whose input shape is
/// static). Returns `Ok(None)` when the node is left as a layer.
pub fn fold(
    op: &str,
    a: &Attrs,
    ins: &[Option<In>],
    out_names: &[String],
    opset: i64,
) -> Result<Option<Vec<Const>>, String> {
    let name0 = out_names.first().map(String::as_str).unwrap_or("");
    if op == "Shape" {
        return fold_shape(a, ins, name0).map(|c| Some(vec![c]));
    }
    let consts: Vec<Option<&Const>> = ins
        .iter()
        .map(|x| x.as_ref().and_then(|x| x.konst))
        .collect();
    if ins.iter().flatten().any(|x| x.konst.is_none()) {
        return Ok(None);
    }
    // Shape-only operators keep the bytes: fold even large (undecoded) weights.
    if matches!(
        op,
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Dropout"
    ) {
        let c = consts[0].ok_or_else(|| a.err("input 0 is missing"))?;
        return fold_reshaping(op, a, ins, c, out_names, opset);
    }
    if op == "ConstantOfShape" {
        return fold_constant_of_shape(a, ins, name0).map(|c| Some(vec![c]));
    }
    // Everything else needs decoded values, and makes them: only small ones fold.
    if !small_decoded(consts.iter().flatten().copied()) {
        return Ok(None);
    }
    if op == "Range" {
        return fold_range(a, &consts, name0);
    }
    let outs = infer(op, a, ins, out_names.len().max(1), opset)?;
    if outs
        .iter()
        .any(|(s, _)| extent(s) > MAX_DECODED_ELEMS as u64)
    {
        return Ok(None);
    }
    let n = FoldNode {
        op,
        a,
        ins,
        consts: &consts,
        name0,
        opset,
    };
    match op {
        "Cast" => fold_cast(&n),
        "Gather" => fold_gather(&n),
        "Concat" => fold_concat(&n),
        "Slice" if opset >= 10 => fold_slice(&n),
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Equal" => fold_arithmetic(&n),
        "Neg" => fold_neg(&n),
        "Transpose" => fold_transpose(&n),
        _ => Ok(None),
    }
}

/// Whether every constant is decoded and within [`MAX_DECODED_ELEMS`] (a zero dimension
/// counted as 1): folding their values then stays small, and index arithmetic cannot overflow.
fn small_decoded<'c>(mut consts: impl Iterator<Item = &'c Const>) -> bool {
    consts.all(|c| {
        !matches!(c.values, Values::Opaque) && extent(&c.shape) <= MAX_DECODED_ELEMS as u64
    })
}

/// Shape of a static-shaped input, sliced by `start`/`end` (Shape-15).
fn fold_shape(a: &Attrs, ins: &[Option<In>], name0: &str) -> Result<Const, String> {
    let x = input(ins, 0, a)?;
    let r = x.shape.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(a.int("start", 0));
    let end = clampi(a.int("end", r));
    let v: Vec<i64> = x.shape[start..end.max(start)]
        .iter()
        .map(|&d| dim_i64(d))
        .collect();
    let n = v.len();
    Ok(Const::from_ints(name0, vec![n], v))
}

/// An operator that only changes the shape: the constant `c` with its new shape and name.
fn fold_reshaping(
    op: &str,
    a: &Attrs,
    ins: &[Option<In>],
    c: &Const,
    out_names: &[String],
    opset: i64,
) -> Result<Option<Vec<Const>>, String> {
    let name0 = out_names.first().map(String::as_str).unwrap_or("");
    let outs = infer(op, a, ins, out_names.len(), opset)?;
    let mut k = c.clone();
    k.shape = outs[0].0.clone();
    k.proto.dims = k.shape.iter().map(|&d| dim_i64(d)).collect();
    k.proto.name = Some(name0.to_string());
    if op == "Dropout" && out_names.len() > 1 {
        return Ok(None);
    }
    Ok(Some(vec![k]))
}

/// A node whose inputs are all constants, as folding sees it.
#[derive(Clone, Copy)]
struct FoldNode<'x, 'a> {
    op: &'x str,
    a: &'x Attrs<'x>,
    ins: &'x [Option<In<'a>>],
    consts: &'x [Option<&'a Const>],
    name0: &'x str,
    opset: i64,
}

impl<'x, 'a> FoldNode<'x, 'a> {
    /// Constant input `i`, if present.
    fn nth(&self, i: usize) -> Option<&'a Const> {
        self.consts.get(i).copied().flatten()
    }

    /// Constant input `i`; when it is missing, an error saying `missing`.
    fn need(&self, i: usize, missing: &str) -> Result<&'a Const, String> {
        self.nth(i).ok_or_else(|| self.a.err(missing))
    }

    /// Checks ranks and dimensions as shape inference does, before values are sliced.
    fn check_shapes(&self) -> Result<(), String> {
        infer(self.op, self.a, self.ins, 1, self.opset).map(|_| ())
    }

    /// The folded result: one constant named as the node's first output (`None` for a
    /// value type dicesim does not fold).
    fn one(&self, dt: i32, shape: Vec<usize>, values: Values) -> Option<Vec<Const>> {
        Const::from_values(self.name0, dt, shape, values).map(|k| vec![k])
    }
}

fn fold_cast(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    let x = n.need(0, "input missing")?;
    let to = n.a.int("to", 1) as i32;
    let values = match (to, &x.values) {
        (dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16, _) => Values::Float(x.floats().unwrap()),
        (dtype::BOOL, _) => Values::Int(
            x.floats()
                .unwrap_or_default()
                .iter()
                .map(|&f| (f != 0.0) as i64)
                .collect(),
        ),
        (_, Values::Float(v)) => Values::Int(v.iter().map(|&f| f as i64).collect()),
        (_, v) => v.clone(),
    };
    Ok(n.one(to, x.shape.clone(), values))
}

fn fold_gather(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    n.check_shapes()?;
    let x = n.need(0, "input 0 is missing")?;
    let idx = n.need(1, "indices missing")?;
    let ax = norm_axis(n.a.int("axis", 0), x.shape.len(), n.a)?;
    let ind = idx.ints().unwrap();
    let d = x.shape[ax] as i64;
    let outer: usize = x.shape[..ax].iter().product();
    let inner: usize = x.shape[ax + 1..].iter().product();
    let mut picks = Vec::new();
    for &i in &ind {
        let j = if i < 0 { i + d } else { i };
        if j < 0 || j >= d {
            return Err(n.a.err(format!("index {i} out of range for dimension {d}")));
        }
        picks.push(j as usize);
    }
    let mut shape = x.shape[..ax].to_vec();
    shape.extend(&idx.shape);
    shape.extend(&x.shape[ax + 1..]);
    let values = gather_values(&x.values, outer, x.shape[ax], inner, &picks);
    Ok(n.one(x.dtype, shape, values))
}

fn fold_concat(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    n.check_shapes()?;
    let parts: Vec<&Const> = n.consts.iter().flatten().copied().collect();
    let x = parts[0];
    let ax = norm_axis(n.a.int("axis", 0), x.shape.len(), n.a)?;
    let outer: usize = x.shape[..ax].iter().product();
    let mut shape = x.shape.clone();
    shape[ax] = parts.iter().map(|p| p.shape[ax]).sum();
    let is_int = parts.iter().all(|p| matches!(p.values, Values::Int(_)));
    let mut ints = Vec::new();
    let mut fl = Vec::new();
    for o in 0..outer {
        for p in &parts {
            let inner: usize = p.shape[ax..].iter().product();
            if is_int {
                ints.extend_from_slice(&p.ints().unwrap()[o * inner..(o + 1) * inner]);
            } else {
                fl.extend_from_slice(&p.floats().unwrap()[o * inner..(o + 1) * inner]);
            }
        }
    }
    let values = if is_int {
        Values::Int(ints)
    } else {
        Values::Float(fl)
    };
    Ok(n.one(x.dtype, shape, values))
}

fn fold_slice(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    let x = n.need(0, "input 0 is missing")?;
    let (starts, ends) = (
        n.nth(1).and_then(|k| k.ints()),
        n.nth(2).and_then(|k| k.ints()),
    );
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return Ok(None);
    };
    let axes = n.nth(3).and_then(|k| k.ints());
    let steps = n.nth(4).and_then(|k| k.ints());
    let spec = slice_shape(
        &x.shape,
        &starts,
        &ends,
        axes.as_deref(),
        steps.as_deref(),
        n.a,
    )?;
    let shape: Vec<usize> = spec.iter().map(|s| s.0).collect();
    let src_strides = strides_of(&x.shape);
    let total = count(&shape, n.a)?;
    let mut flat = Vec::with_capacity(total);
    for lin in 0..total {
        let mut rem = lin;
        let mut off = 0i64;
        for d in (0..shape.len()).rev() {
            let i = (rem % shape[d]) as i64;
            rem /= shape[d];
            off += (spec[d].1 + i * spec[d].2) * src_strides[d] as i64;
        }
        flat.push(off as usize);
    }
    let values = pick_values(&x.values, &flat);
    Ok(n.one(x.dtype, shape, values))
}

fn fold_arithmetic(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    let (x, y) = match (n.nth(0), n.nth(1)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Ok(None),
    };
    let shape = broadcast(&[&x.shape, &y.shape], n.a)?;
    let ix = bcast_indices(&x.shape, &shape);
    let iy = bcast_indices(&y.shape, &shape);
    let values = match (&x.values, &y.values) {
        (Values::Int(p), Values::Int(q)) => Values::Int(
            ix.iter()
                .zip(&iy)
                .map(|(&i, &j)| int_op(n.op, p[i], q[j]))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| n.a.err("division by zero in a constant"))?,
        ),
        _ => {
            let (p, q) = (x.floats().unwrap(), y.floats().unwrap());
            Values::Float(
                ix.iter()
                    .zip(&iy)
                    .map(|(&i, &j)| float_op(n.op, p[i], q[j]))
                    .collect(),
            )
        }
    };
    let dt = if n.op == "Equal" {
        dtype::BOOL
    } else {
        x.dtype
    };
    let values = if n.op == "Equal" {
        match values {
            Values::Float(v) => Values::Int(v.iter().map(|&f| f as i64).collect()),
            v => v,
        }
    } else {
        values
    };
    Ok(n.one(dt, shape, values))
}

fn fold_neg(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    let x = n.need(0, "input 0 is missing")?;
    let values = match &x.values {
        Values::Int(v) => Values::Int(v.iter().map(|&i| i.wrapping_neg()).collect()),
        Values::Float(v) => Values::Float(v.iter().map(|&f| -f).collect()),
        Values::Opaque => return Ok(None),
    };
    Ok(n.one(x.dtype, x.shape.clone(), values))
}

/// Range over integer scalars: at most [`MAX_DECODED_ELEMS`] values (an error beyond: a
/// Range cannot be a layer, its length must be known).
fn fold_range(
    a: &Attrs,
    consts: &[Option<&Const>],
    name0: &str,
) -> Result<Option<Vec<Const>>, String> {
    let scalar = |i: usize| match consts.get(i).copied().flatten().map(|c| &c.values) {
        Some(Values::Int(v)) => v.first().map(|&x| i128::from(x)),
        _ => None,
    };
    let (Some(s0), Some(l0), Some(d0)) = (scalar(0), scalar(1), scalar(2)) else {
        return Ok(None);
    };
    if d0 == 0 {
        return Err(a.err("delta is 0"));
    }
    // i128: start, limit and delta may be any i64; the values stay within them
    let len = ((l0 - s0) as f64 / d0 as f64).ceil().max(0.0) as i128;
    if len > MAX_DECODED_ELEMS as i128 {
        return Err(a.err(format!(
            "Range of {len} values: dicesim folds at most {MAX_DECODED_ELEMS}"
        )));
    }
    let v: Vec<i64> = (0..len).map(|i| (s0 + i * d0) as i64).collect();
    let dt = consts[0].map(|c| c.dtype).unwrap_or(dtype::INT64);
    Ok(Const::from_values(name0, dt, vec![v.len()], Values::Int(v)).map(|k| vec![k]))
}

fn fold_transpose(n: &FoldNode) -> Result<Option<Vec<Const>>, String> {
    let x = n.need(0, "input 0 is missing")?;
    let r = x.shape.len();
    let perm: Vec<usize> =
        n.a.ints("perm")
            .unwrap_or_else(|| (0..r as i64).rev().collect())
            .iter()
            .map(|&p| p as usize)
            .collect();
    if perm.len() != r || perm.iter().any(|&p| p >= r) {
        return Err(n.a.err("bad perm"));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st = strides_of(&x.shape);
    let total = count(&shape, n.a)?;
    let mut flat = Vec::with_capacity(total);
    for lin in 0..total {
        let mut rem = lin;
        let mut off = 0;
        for d in (0..r).rev() {
            let i = rem % shape[d];
            rem /= shape[d];
            off += i * st[perm[d]];
        }
        flat.push(off);
    }
    Ok(n.one(x.dtype, shape, pick_values(&x.values, &flat)))
}

/// ConstantOfShape over a constant shape. Small results are decoded like any constant;
/// larger ones keep only their bytes. These are weights: the "light" models of the ONNX
/// Model Zoo make every weight with ConstantOfShape from a shape initializer.
fn fold_constant_of_shape(a: &Attrs, ins: &[Option<In>], name: &str) -> Result<Const, String> {
    let shape = const_ints(ins, 0, "the shape", a)?;
    let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let fill_error = || {
        a.err(format!(
            "a constant of shape {shape:?} is larger than the {} MiB dicesim folds: refused",
            crate::tensor::MAX_FOLD_BYTES >> 20
        ))
    };
    let (dt, val) = match a.tensor("value") {
        Some(t) => {
            let c = Const::from_proto(name, t)?;
            (c.dtype, c.values)
        }
        None => (dtype::FLOAT, Values::Float(vec![0.0])),
    };
    let one = match val {
        Values::Int(v) => Values::Int(vec![v.first().copied().unwrap_or(0)]),
        Values::Float(v) => Values::Float(vec![v.first().copied().unwrap_or(0.0)]),
        Values::Opaque => Values::Opaque,
    };
    let element = Const::from_values(name, dt, vec![], one).ok_or_else(|| {
        a.err(format!(
            "a value of type {} is not supported (only integer, float and double values)",
            dtype::name(dt)
        ))
    })?;
    element.filled(shape.clone()).ok_or_else(fill_error)
}

fn int_op(op: &str, x: i64, y: i64) -> Option<i64> {
    Some(match op {
        "Add" => x.wrapping_add(y),
        "Sub" => x.wrapping_sub(y),
        "Mul" => x.wrapping_mul(y),
        "Div" => x.checked_div(y)?,
        "Max" => x.max(y),
        "Min" => x.min(y),
        "Equal" => (x == y) as i64,
        _ => return None,
    })
}

fn float_op(op: &str, x: f64, y: f64) -> f64 {
    match op {
        "Add" => x + y,
        "Sub" => x - y,
        "Mul" => x * y,
        "Div" => x / y,
        "Max" => x.max(y),
        "Min" => x.min(y),
        "Equal" => (x == y) as i64 as f64,
        _ => f64::NAN,
    }
}

fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1].saturating_mul(shape[i + 1]);
    }
    st
}

/// For each element of `out` (row-major), the flat index into a tensor of shape `inp`
/// broadcast to `out`.
fn bcast_indices(inp: &[usize], out: &[usize]) -> Vec<usize> {
    let off = out.len() - inp.len();
    let st = strides_of(inp);
    let n: usize = out.iter().product();
    (0..n)
        .map(|lin| {
            let mut rem = lin;
            let mut idx = 0;
            for d in (0..out.len()).rev() {
                let i = rem % out[d];
                rem /= out[d];
                if d >= off && inp[d - off] != 1 {
                    idx += i * st[d - off];
                }
            }
            idx
        })
        .collect()
}

fn pick_values(v: &Values, flat: &[usize]) -> Values {
    match v {
        Values::Int(x) => Values::Int(flat.iter().map(|&i| x[i]).collect()),
        Values::Float(x) => Values::Float(flat.iter().map(|&i| x[i]).collect()),
        Values::Opaque => Values::Opaque,
    }
}

fn gather_values(v: &Values, outer: usize, d: usize, inner: usize, picks: &[usize]) -> Values {
    let mut flat = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in picks {
            for i in 0..inner {
                flat.push((o * d + p) * inner + i);
            }
        }
    }
    pick_values(v, &flat)
}
