//! ONNX operators as LibTorch calls. Each takes the node, the tensors computed so far and
//! the model's constants, and returns the node's outputs in order.

use crate::{Consts, Step};
use dicesim_plan::attr::Attrs;
use std::collections::HashMap;
use tch::{Kind, Tensor};

type R<T> = Result<T, String>;

fn te(e: tch::TchError) -> String {
    e.to_string()
}

/// Reads the inputs of a node.
struct Ins<'a> {
    node: &'a dicesim_plan::onnx::NodeProto,
    env: &'a HashMap<String, Tensor>,
    consts: &'a Consts,
}

impl<'a> Ins<'a> {
    fn name(&self, i: usize) -> Option<&'a str> {
        self.node
            .input
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }
    fn opt(&self, i: usize) -> R<Option<&'a Tensor>> {
        match self.name(i) {
            None => Ok(None),
            Some(n) => self
                .env
                .get(n)
                .or_else(|| self.consts.tensors.get(n))
                .map(Some)
                .ok_or_else(|| format!("input '{n}' is not available")),
        }
    }
    fn t(&self, i: usize) -> R<&'a Tensor> {
        self.opt(i)?.ok_or_else(|| format!("input {i} is missing"))
    }
    fn ints(&self, i: usize) -> R<Option<Vec<i64>>> {
        match self.name(i) {
            None => Ok(None),
            Some(n) => match self.consts.ints.get(n) {
                Some(v) => Ok(Some(v.clone())),
                None => match self.env.get(n) {
                    Some(t) if t.kind() == Kind::Int64 => {
                        Ok(Some(Vec::<i64>::try_from(&t.flatten(0, -1)).map_err(te)?))
                    }
                    _ => Err(format!("input '{n}' must be a constant integer tensor")),
                },
            },
        }
    }
    fn floats(&self, i: usize) -> R<Option<Vec<f64>>> {
        match self.name(i) {
            None => Ok(None),
            Some(n) => match self.consts.floats.get(n) {
                Some(v) => Ok(Some(v.clone())),
                None => match self.env.get(n) {
                    Some(t) => Ok(Some(
                        Vec::<f64>::try_from(
                            &t.to_dtype(Kind::Double, false, false).flatten(0, -1),
                        )
                        .map_err(te)?,
                    )),
                    None => Err(format!("input '{n}' is not available")),
                },
            },
        }
    }
}

fn norm_axis(a: i64, rank: i64) -> i64 {
    if a < 0 {
        a + rank
    } else {
        a
    }
}

/// Pads `[b0, b1, .., e0, e1, ..]` over the last `k` dims as torch's `[last_b, last_e, ..]`.
fn torch_pads(pads: &[i64]) -> Vec<i64> {
    let k = pads.len() / 2;
    (0..k).rev().flat_map(|i| [pads[i], pads[i + k]]).collect()
}

/// Explicit pads of a conv/pool node, resolving `auto_pad`.
fn spatial_pads(
    a: &Attrs,
    input: &[i64],
    kernel: &[i64],
    strides: &[i64],
    dilations: &[i64],
) -> R<Vec<i64>> {
    let k = kernel.len();
    let auto = a.string("auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" => Ok(a.ints("pads").unwrap_or_else(|| vec![0; 2 * k])),
        "VALID" => Ok(vec![0; 2 * k]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = vec![0; 2 * k];
            for i in 0..k {
                let inp = input[input.len() - k + i];
                let out = (inp + strides[i] - 1) / strides[i];
                let eff = (kernel[i] - 1) * dilations[i] + 1;
                let total = ((out - 1) * strides[i] + eff - inp).max(0);
                let small = total / 2;
                let (b, e) = if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                p[i] = b;
                p[i + k] = e;
            }
            Ok(p)
        }
        o => Err(format!("auto_pad '{o}' is not supported")),
    }
}

/// Symmetric padding for torch, or pads applied up front with `value`.
fn apply_pads(x: &Tensor, pads: &[i64], value: f64, max_sym: &[i64]) -> R<(Tensor, Vec<i64>)> {
    let k = pads.len() / 2;
    let sym = (0..k).all(|i| pads[i] == pads[i + k] && pads[i] <= max_sym[i]);
    if sym {
        Ok((x.shallow_clone(), pads[..k].to_vec()))
    } else {
        let p = x
            .f_pad(torch_pads(pads), "constant", Some(value))
            .map_err(te)?;
        Ok((p, vec![0; k]))
    }
}

fn binary(x: &Tensor, y: &Tensor, op: &str) -> R<Tensor> {
    match op {
        "Add" | "Sum" => x.f_add(y),
        "Sub" => x.f_sub(y),
        "Mul" => x.f_mul(y),
        "Div" => {
            if x.kind() == Kind::Int64 && y.kind() == Kind::Int64 {
                x.f_div_tensor_mode(y, "trunc")
            } else {
                x.f_div(y)
            }
        }
        "Pow" => x.f_pow(y),
        "Max" => x.f_maximum(y),
        "Min" => x.f_minimum(y),
        _ => unreachable!("binary op {op}"),
    }
    .map_err(te)
}

/// Runs one layer: dispatches on the operator to its family's function.
pub fn run_node(
    step: &Step,
    env: &HashMap<String, Tensor>,
    consts: &Consts,
    opset: i64,
) -> R<Vec<Tensor>> {
    let node = &step.node;
    let a = Attrs::new(node, &step.name);
    let ins = Ins { node, env, consts };
    let op = node.op_type();
    match op {
        "Conv" | "Gemm" | "MatMul" => conv(op, &ins, &a),
        "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" => pool(op, &ins, &a),
        "BatchNormalization" | "LRN" => normalization(op, &ins, &a),
        "Relu" | "Sigmoid" | "Tanh" | "Exp" | "Log" | "Sqrt" | "Neg" | "Abs" | "Reciprocal"
        | "Erf" | "Floor" | "Ceil" | "Softplus" | "HardSwish" | "Gelu" => unary(op, &ins, &a),
        "LeakyRelu" | "PRelu" | "Elu" | "HardSigmoid" | "Clip" => activation(op, &ins, &a, opset),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" => {
            elementwise(op, &ins)
        }
        "Concat" | "Split" | "Slice" => slicing(op, &ins, &a, opset),
        "Flatten" | "Reshape" | "Transpose" | "Squeeze" | "Unsqueeze" => reshaping(op, &ins, &a),
        "Softmax" | "LogSoftmax" | "Dropout" | "Identity" => softmax(op, &ins, &a, opset),
        "Resize" | "Upsample" => resize(op, &ins, &a, opset),
        "Pad" => pad(&ins, &a, opset),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "Cast" | "Shape" | "Expand"
        | "Gather" => reduce(op, &ins, &a),
        o => Err(unsupported(o)),
    }
}

fn unsupported(op: &str) -> String {
    format!("operator {op} is not supported by the tch backend")
}

fn one(t: Result<Tensor, tch::TchError>) -> R<Vec<Tensor>> {
    Ok(vec![t.map_err(te)?])
}

/// Convolution and matrix products.
fn conv(op: &str, ins: &Ins<'_>, a: &Attrs<'_>) -> R<Vec<Tensor>> {
    match op {
        "Conv" => {
            let x = ins.t(0)?;
            let w = ins.t(1)?;
            let b = ins.opt(2)?;
            let kernel: Vec<i64> = w.size()[2..].to_vec();
            let k = kernel.len();
            let strides = a.ints("strides").unwrap_or_else(|| vec![1; k]);
            let dil = a.ints("dilations").unwrap_or_else(|| vec![1; k]);
            let pads = spatial_pads(a, &x.size(), &kernel, &strides, &dil)?;
            let (xp, pad) = apply_pads(x, &pads, 0.0, &vec![i64::MAX; k])?;
            one(xp.f_convolution(
                w,
                b,
                strides,
                pad,
                dil,
                false,
                vec![0; k],
                a.int("group", 1),
            ))
        }
        "Gemm" => {
            let mut x = ins.t(0)?.shallow_clone();
            let mut w = ins.t(1)?.shallow_clone();
            if a.int("transA", 0) != 0 {
                x = x.f_tr().map_err(te)?;
            }
            if a.int("transB", 0) != 0 {
                w = w.f_tr().map_err(te)?;
            }
            let mut y = x.f_matmul(&w).map_err(te)?;
            let alpha = a.float("alpha", 1.0) as f64;
            if alpha != 1.0 {
                y = y.f_mul_scalar(alpha).map_err(te)?;
            }
            if let Some(c) = ins.opt(2)? {
                let beta = a.float("beta", 1.0) as f64;
                let c = if beta != 1.0 {
                    c.f_mul_scalar(beta).map_err(te)?
                } else {
                    c.shallow_clone()
                };
                y = y.f_add(&c).map_err(te)?;
            }
            Ok(vec![y])
        }
        "MatMul" => one(ins.t(0)?.f_matmul(ins.t(1)?)),
        o => Err(unsupported(o)),
    }
}

/// Pooling.
fn pool(op: &str, ins: &Ins<'_>, a: &Attrs<'_>) -> R<Vec<Tensor>> {
    match op {
        "MaxPool" | "AveragePool" => {
            let x = ins.t(0)?;
            let kernel = a
                .ints("kernel_shape")
                .ok_or_else(|| a.err("kernel_shape is required"))?;
            let k = kernel.len();
            if k != 2 {
                return Err(format!("{k}-D pooling is not supported (2-D only)"));
            }
            let strides = a.ints("strides").unwrap_or_else(|| vec![1; k]);
            let dil = a.ints("dilations").unwrap_or_else(|| vec![1; k]);
            let pads = spatial_pads(a, &x.size(), &kernel, &strides, &dil)?;
            let ceil = a.int("ceil_mode", 0) != 0;
            let half: Vec<i64> = kernel.iter().map(|k| k / 2).collect();
            if op == "MaxPool" {
                let (xp, pad) = apply_pads(x, &pads, f64::NEG_INFINITY, &half)?;
                one(xp.f_max_pool2d(&kernel, &strides, pad, &dil, ceil))
            } else {
                if dil.iter().any(|&d| d != 1) {
                    return Err("dilated AveragePool is not supported".into());
                }
                let include = a.int("count_include_pad", 0) != 0;
                let (xp, pad) = apply_pads(x, &pads, 0.0, &half)?;
                if pad.iter().all(|&p| p == 0) && pads.iter().any(|&p| p != 0) && !include {
                    // Padded up front: divide by the count of real elements per window.
                    let ones = x.f_ones_like().map_err(te)?;
                    let ones = ones
                        .f_pad(torch_pads(&pads), "constant", Some(0.0))
                        .map_err(te)?;
                    let s = xp
                        .f_avg_pool2d(&kernel, &strides, [0, 0], ceil, true, None)
                        .map_err(te)?;
                    let c = ones
                        .f_avg_pool2d(&kernel, &strides, [0, 0], ceil, true, None)
                        .map_err(te)?;
                    one(s.f_div(&c))
                } else {
                    one(xp.f_avg_pool2d(&kernel, &strides, pad, ceil, include, None))
                }
            }
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let x = ins.t(0)?;
            let dims: Vec<i64> = (2..x.dim() as i64).collect();
            if op == "GlobalAveragePool" {
                one(x.f_mean_dim(dims.as_slice(), true, None))
            } else {
                one(x.f_amax(dims.as_slice(), true))
            }
        }
        o => Err(unsupported(o)),
    }
}

/// Normalizations.
fn normalization(op: &str, ins: &Ins<'_>, a: &Attrs<'_>) -> R<Vec<Tensor>> {
    match op {
        "BatchNormalization" => one(ins.t(0)?.f_batch_norm(
            ins.opt(1)?,
            ins.opt(2)?,
            ins.opt(3)?,
            ins.opt(4)?,
            false,
            0.0,
            a.float("epsilon", 1e-5) as f64,
            false,
        )),
        "LRN" => {
            let x = ins.t(0)?;
            let size = a.int("size", 1);
            let alpha = a.float("alpha", 1e-4) as f64;
            let beta = a.float("beta", 0.75) as f64;
            let bias = a.float("bias", 1.0) as f64;
            let lo = (size - 1) / 2;
            let hi = size - 1 - lo;
            let sq = x.f_square().and_then(|s| s.f_unsqueeze(1)).map_err(te)?;
            let sq = sq
                .f_pad([0, 0, 0, 0, lo, hi], "constant", Some(0.0))
                .map_err(te)?;
            let sum = sq
                .f_avg_pool3d([size, 1, 1], [1, 1, 1], [0, 0, 0], false, true, None)
                .and_then(|s| s.f_squeeze_dim(1))
                .map_err(te)?;
            // avg * size = sum; divisor = (bias + alpha / size * sum) ^ beta
            let div = sum
                .f_mul_scalar(alpha)
                .and_then(|s| s.f_add_scalar(bias))
                .and_then(|s| s.f_pow_tensor_scalar(beta))
                .map_err(te)?;
            one(x.f_div(&div))
        }
        o => Err(unsupported(o)),
    }
}

/// Element-wise functions of one tensor.
fn unary(op: &str, ins: &Ins<'_>, a: &Attrs<'_>) -> R<Vec<Tensor>> {
    match op {
        "Relu" => one(ins.t(0)?.f_relu()),
        "Sigmoid" => one(ins.t(0)?.f_sigmoid()),
        "Tanh" => one(ins.t(0)?.f_tanh()),
        "Exp" => one(ins.t(0)?.f_exp()),
        "Log" => one(ins.t(0)?.f_log()),
        "Sqrt" => one(ins.t(0)?.f_sqrt()),
        "Neg" => one(ins.t(0)?.f_neg()),
        "Abs" => one(ins.t(0)?.f_abs()),
        "Reciprocal" => one(ins.t(0)?.f_reciprocal()),
        "Erf" => one(ins.t(0)?.f_erf()),
        "Floor" => one(ins.t(0)?.f_floor()),
        "Ceil" => one(ins.t(0)?.f_ceil()),
        "Softplus" => one(ins.t(0)?.f_softplus()),
        "HardSwish" => one(ins.t(0)?.f_hardswish()),
        "Gelu" => one(ins.t(0)?.f_gelu(&a.string("approximate", "none"))),
        o => Err(unsupported(o)),
    }
}

/// Activations with parameters.
fn activation(op: &str, ins: &Ins<'_>, a: &Attrs<'_>, opset: i64) -> R<Vec<Tensor>> {
    let node = ins.node;
    match op {
        "LeakyRelu" | "PRelu" | "Elu" => {
            let x = ins.t(0)?;
            let pos = x.f_relu().map_err(te)?;
            let negx = x
                .f_neg()
                .and_then(|t| t.f_relu())
                .and_then(|t| t.f_neg())
                .map_err(te)?;
            let neg = match op {
                "LeakyRelu" => negx.f_mul_scalar(a.float("alpha", 0.01) as f64),
                "PRelu" => negx.f_mul(ins.t(1)?),
                _ => negx
                    .f_exp()
                    .and_then(|t| t.f_sub_scalar(1.0))
                    .and_then(|t| t.f_mul_scalar(a.float("alpha", 1.0) as f64)),
            }
            .map_err(te)?;
            one(pos.f_add(&neg))
        }
        "HardSigmoid" => {
            let alpha = a.float("alpha", 0.2) as f64;
            let beta = a.float("beta", 0.5) as f64;
            one(ins
                .t(0)?
                .f_mul_scalar(alpha)
                .and_then(|t| t.f_add_scalar(beta))
                .and_then(|t| t.f_clamp(0.0, 1.0)))
        }
        "Clip" => {
            let x = ins.t(0)?;
            let (lo, hi) = if opset < 11 || node.input.len() < 2 {
                (
                    a.float("min", f32::NEG_INFINITY) as f64,
                    a.float("max", f32::INFINITY) as f64,
                )
            } else {
                let first =
                    |v: Option<Vec<f64>>, d: f64| v.and_then(|v| v.first().copied()).unwrap_or(d);
                (
                    first(ins.floats(1)?, f64::NEG_INFINITY),
                    first(ins.floats(2)?, f64::INFINITY),
                )
            };
            one(x.f_clamp(lo, hi))
        }
        o => Err(unsupported(o)),
    }
}

/// Element-wise operators of two or more tensors.
fn elementwise(op: &str, ins: &Ins<'_>) -> R<Vec<Tensor>> {
    let node = ins.node;
    match op {
        "Add" | "Sub" | "Mul" | "Div" | "Pow" => one_r(binary(ins.t(0)?, ins.t(1)?, op)),
        "Max" | "Min" | "Sum" | "Mean" => {
            let mut acc = ins.t(0)?.shallow_clone();
            for i in 1..node.input.len() {
                acc = binary(&acc, ins.t(i)?, if op == "Mean" { "Sum" } else { op })?;
            }
            if op == "Mean" {
                acc = acc.f_div_scalar(node.input.len() as f64).map_err(te)?;
            }
            Ok(vec![acc])
        }
        o => Err(unsupported(o)),
    }
}

/// Joining and cutting tensors.
fn slicing(op: &str, ins: &Ins<'_>, a: &Attrs<'_>, opset: i64) -> R<Vec<Tensor>> {
    let node = ins.node;
    match op {
        "Concat" => {
            let ts: Vec<&Tensor> = (0..node.input.len()).map(|i| ins.t(i)).collect::<R<_>>()?;
            let rank = ts.first().map(|t| t.dim() as i64).unwrap_or(1);
            one(Tensor::f_cat(&ts, norm_axis(a.int("axis", 0), rank)))
        }
        "Split" => {
            let x = ins.t(0)?;
            let axis = norm_axis(a.int("axis", 0), x.dim() as i64);
            let len = x.size()[axis as usize];
            let n = node.output.len() as i64;
            let sizes = match a.ints("split").or(ins.ints(1)?) {
                Some(s) => s,
                None => {
                    let part = (len + n - 1) / n;
                    (0..n).map(|i| part.min(len - i * part)).collect()
                }
            };
            x.f_split_with_sizes(sizes, axis).map_err(te)
        }
        "Slice" => {
            let x = ins.t(0)?;
            let rank = x.dim() as i64;
            let (starts, ends, axes, steps) = if opset < 10 {
                (
                    a.ints("starts").unwrap_or_default(),
                    a.ints("ends").unwrap_or_default(),
                    a.ints("axes"),
                    None,
                )
            } else {
                (
                    ins.ints(1)?.ok_or("starts are required")?,
                    ins.ints(2)?.ok_or("ends are required")?,
                    ins.ints(3)?,
                    ins.ints(4)?,
                )
            };
            let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let mut y = x.shallow_clone();
            for (i, &ax) in axes.iter().enumerate() {
                let ax = norm_axis(ax, rank);
                let step = steps.as_ref().map(|s| s[i]).unwrap_or(1);
                if step <= 0 {
                    return Err("Slice with a non-positive step is not supported".into());
                }
                let dim = y.size()[ax as usize];
                let clamp = |v: i64| {
                    let v = if v < 0 { v + dim } else { v };
                    v.clamp(0, dim)
                };
                y = y
                    .f_slice(ax, clamp(starts[i]), clamp(ends[i]), step)
                    .map_err(te)?;
            }
            Ok(vec![y])
        }
        o => Err(unsupported(o)),
    }
}

/// Shape changes.
fn reshaping(op: &str, ins: &Ins<'_>, a: &Attrs<'_>) -> R<Vec<Tensor>> {
    match op {
        "Flatten" => {
            let x = ins.t(0)?;
            let s = x.size();
            let axis = norm_axis(a.int("axis", 1), s.len() as i64) as usize;
            let outer: i64 = s[..axis].iter().product();
            let inner: i64 = s[axis..].iter().product();
            one(x.f_reshape([outer, inner]))
        }
        "Reshape" => {
            let x = ins.t(0)?;
            let mut shape = match ins.ints(1)? {
                Some(s) => s,
                None => a.ints("shape").ok_or("Reshape needs a shape")?,
            };
            let allow_zero = a.int("allowzero", 0) != 0;
            let xs = x.size();
            for (i, d) in shape.iter_mut().enumerate() {
                if *d == 0 && !allow_zero {
                    *d = *xs.get(i).ok_or("Reshape: 0 beyond the input rank")?;
                }
            }
            one(x.f_reshape(shape))
        }
        "Transpose" => {
            let x = ins.t(0)?;
            let perm = a
                .ints("perm")
                .unwrap_or_else(|| (0..x.dim() as i64).rev().collect());
            one(x.f_permute(perm).and_then(|t| t.f_contiguous()))
        }
        "Squeeze" => {
            let x = ins.t(0)?;
            let axes = a.ints("axes").or(ins.ints(1)?);
            match axes {
                Some(ax) => {
                    let r = x.dim() as i64;
                    let ax: Vec<i64> = ax.iter().map(|&d| norm_axis(d, r)).collect();
                    one(x.f_squeeze_dims(ax))
                }
                None => one(x.f_squeeze()),
            }
        }
        "Unsqueeze" => {
            let x = ins.t(0)?;
            let ax = a
                .ints("axes")
                .or(ins.ints(1)?)
                .ok_or("Unsqueeze needs axes")?;
            let out_rank = x.dim() as i64 + ax.len() as i64;
            let mut ax: Vec<i64> = ax.iter().map(|&d| norm_axis(d, out_rank)).collect();
            ax.sort_unstable();
            let mut y = x.shallow_clone();
            for d in ax {
                y = y.f_unsqueeze(d).map_err(te)?;
            }
            Ok(vec![y])
        }
        o => Err(unsupported(o)),
    }
}

/// Softmax, Dropout and Identity.
fn softmax(op: &str, ins: &Ins<'_>, a: &Attrs<'_>, opset: i64) -> R<Vec<Tensor>> {
    let node = ins.node;
    match op {
        "Softmax" | "LogSoftmax" => {
            let x = ins.t(0)?;
            let s = x.size();
            let r = s.len() as i64;
            let f = |t: &Tensor, d: i64| {
                if op == "Softmax" {
                    t.f_softmax(d, None::<Kind>)
                } else {
                    t.f_log_softmax(d, None::<Kind>)
                }
            };
            if opset < 13 {
                // Before opset 13: over the flattened trailing dims from `axis`.
                let axis = norm_axis(a.int("axis", 1), r) as usize;
                let outer: i64 = s[..axis].iter().product();
                let inner: i64 = s[axis..].iter().product();
                one(x
                    .f_reshape([outer, inner])
                    .and_then(|t| f(&t, 1))
                    .and_then(|t| t.f_reshape(&s)))
            } else {
                one(f(x, norm_axis(a.int("axis", -1), r)))
            }
        }
        "Dropout" | "Identity" => {
            let x = ins.t(0)?.shallow_clone();
            let mut v = vec![x];
            if node.output.len() > 1 {
                v.push(
                    ins.t(0)?
                        .f_ones_like()
                        .and_then(|t| t.f_to_dtype(Kind::Bool, false, false))
                        .map_err(te)?,
                );
            }
            Ok(v)
        }
        o => Err(unsupported(o)),
    }
}

/// Nearest-neighbour resizing.
fn resize(op: &str, ins: &Ins<'_>, a: &Attrs<'_>, opset: i64) -> R<Vec<Tensor>> {
    match op {
        "Resize" | "Upsample" => {
            let x = ins.t(0)?;
            let mode = a.string("mode", "nearest");
            if mode != "nearest" {
                return Err(format!(
                    "{op} mode '{mode}' is not supported (nearest only)"
                ));
            }
            let s = x.size();
            if s.len() != 4 {
                return Err(format!("{op} of a {}-D tensor is not supported", s.len()));
            }
            let (scales, sizes) = match (op, opset) {
                ("Upsample", _) => (
                    match a.floats("scales") {
                        Some(v) => Some(v.iter().map(|&x| x as f64).collect()),
                        None => ins.floats(1)?,
                    },
                    None,
                ),
                (_, o) if o < 11 => (ins.floats(1)?, None),
                _ => (ins.floats(2)?.filter(|v| !v.is_empty()), ins.ints(3)?),
            };
            let (out, sh, sw) = match (sizes, scales) {
                (Some(sz), _) => (sz[2..].to_vec(), None, None),
                (None, Some(sc)) if sc.len() == 4 => (
                    vec![
                        (s[2] as f64 * sc[2]).floor() as i64,
                        (s[3] as f64 * sc[3]).floor() as i64,
                    ],
                    Some(sc[2]),
                    Some(sc[3]),
                ),
                _ => return Err(format!("{op}: needs 4 scales or sizes")),
            };
            one(x.f_upsample_nearest2d(out, sh, sw))
        }
        o => Err(unsupported(o)),
    }
}

/// Padding (constant, reflect, edge).
fn pad(ins: &Ins<'_>, a: &Attrs<'_>, opset: i64) -> R<Vec<Tensor>> {
    let x = ins.t(0)?;
    let pads = match a.ints("pads") {
        Some(p) if opset < 11 => p,
        _ => ins.ints(1)?.ok_or("Pad needs pads")?,
    };
    let value = if opset < 11 {
        a.float("value", 0.0) as f64
    } else {
        ins.floats(2)?
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0)
    };
    let mode = a.string("mode", "constant");
    let r = x.dim();
    if pads.len() != 2 * r {
        return Err(format!("Pad: {} pads for rank {r}", pads.len()));
    }
    // Only the trailing dims that are padded, as torch wants for reflect/replicate.
    let first = (0..r)
        .find(|&i| pads[i] != 0 || pads[i + r] != 0)
        .unwrap_or(r);
    let sub: Vec<i64> = pads[first..r]
        .iter()
        .chain(&pads[r + first..])
        .copied()
        .collect();
    let tp = torch_pads(&sub);
    match mode.as_str() {
        "constant" => one(x.f_pad(tp, "constant", Some(value))),
        "reflect" => one(x.f_pad(tp, "reflect", None)),
        "edge" => one(x.f_pad(tp, "replicate", None)),
        m => Err(format!("Pad mode '{m}' is not supported")),
    }
}

/// Reductions, casts and indexing.
fn reduce(op: &str, ins: &Ins<'_>, a: &Attrs<'_>) -> R<Vec<Tensor>> {
    match op {
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
            let x = ins.t(0)?;
            let r = x.dim() as i64;
            let axes = a
                .ints("axes")
                .or(ins.ints(1)?)
                .unwrap_or_else(|| (0..r).collect());
            let axes: Vec<i64> = axes.iter().map(|&d| norm_axis(d, r)).collect();
            let keep = a.int("keepdims", 1) != 0;
            one(match op {
                "ReduceMean" => x.f_mean_dim(axes.as_slice(), keep, None),
                "ReduceSum" => x.f_sum_dim_intlist(axes.as_slice(), keep, None),
                "ReduceMax" => x.f_amax(axes.as_slice(), keep),
                _ => x.f_amin(axes.as_slice(), keep),
            })
        }
        "Cast" => {
            let to = a.int("to", 1);
            let kind = match to as i32 {
                1 => Kind::Float,
                7 | 6 => Kind::Int64,
                11 => Kind::Double,
                9 => Kind::Bool,
                t => return Err(format!("Cast to ONNX type {t} is not supported")),
            };
            one(ins.t(0)?.f_to_dtype(kind, false, false))
        }
        "Shape" => one(Tensor::f_from_slice(&ins.t(0)?.size())),
        "Expand" => {
            let x = ins.t(0)?;
            let shape = ins.ints(1)?.ok_or("Expand needs a shape")?;
            // ONNX broadcasts both ways: the result has the broadcast shape.
            let ones =
                Tensor::f_ones(shape.as_slice(), (x.kind(), tch::Device::Cpu)).map_err(te)?;
            one(x.f_mul(&ones))
        }
        "Gather" => {
            let x = ins.t(0)?;
            let axis = norm_axis(a.int("axis", 0), x.dim() as i64);
            let idx = ins.t(1)?;
            let n = x.size()[axis as usize];
            let fixed = idx
                .f_lt(0)
                .and_then(|neg| idx.f_add_scalar(n).and_then(|w| w.f_where_self(&neg, idx)))
                .map_err(te)?;
            let flat = fixed.f_flatten(0, -1).map_err(te)?;
            let g = x.f_index_select(axis, &flat).map_err(te)?;
            let mut shape = x.size()[..axis as usize].to_vec();
            shape.extend(idx.size());
            shape.extend(&x.size()[axis as usize + 1..]);
            one(g.f_reshape(shape))
        }
        o => Err(unsupported(o)),
    }
}

fn one_r(t: R<Tensor>) -> R<Vec<Tensor>> {
    Ok(vec![t?])
}
