//! Channel splits of single layers (AutoDiCE's `lop` and `lip`).
//!
//! `out_channels`: each part computes some of the layer's filters (a Conv's output channels,
//! a Gemm's or MatMul's output features) from the whole input, with its slice of the
//! weights and bias; the parts are concatenated. A grouped or depthwise convolution is cut
//! between groups, and each part reads only its groups' input channels. `in_channels`: each
//! part reads some input channels (a Gemm's or MatMul's inner dimension) with the matching
//! weights; the partial results are added (Sum), the bias once.

use super::emit::{At, Emitter};
use super::{part_ranges, Ctx, SplitKind};
use crate::attr::Attrs;
use crate::onnx::attrs::int;
use crate::onnx::NodeProto;
use crate::tensor::Const;

/// Rewrites every layer of the split `ctx.spec` (a channel kind) into parts.
pub(crate) fn split(ctx: &Ctx, em: &mut Emitter) -> Result<(), String> {
    for &l in &ctx.spec.layers {
        let layer = &ctx.model.graph.layers[l];
        let label = format!("layer '{}' ({})", layer.name, layer.op);
        let node = ctx.model.node(l);
        let a = Attrs::new(node, &label);
        let g = Groups::new(em, ctx.spec.units.len());
        let parts = match (layer.op.as_str(), ctx.spec.kind) {
            ("Conv", SplitKind::OutChannels) => conv_out(ctx, em, l, &a, &g)?,
            ("Conv", _) => conv_in(ctx, em, l, &a, &g)?,
            ("Gemm" | "MatMul", kind) => matrix(ctx, em, l, &a, (kind, &g))?,
            _ => {
                return Err(format!(
                    "{label} cannot be split by {}: only Conv, Gemm and MatMul with constant weights can",
                    ctx.spec.kind.name()
                ))
            }
        };
        gather(ctx, em, l, parts, g.io);
    }
    Ok(())
}

/// The partition groups of one layer's split: its scatter and gather, each part.
struct Groups {
    io: u32,
    parts: Vec<u32>,
}

impl Groups {
    fn new(em: &mut Emitter, n: usize) -> Groups {
        // scatter and gather with the layers around them (group 0): a scatter ends its
        // producer's partition, a gather starts its reader's
        let io = 0;
        let parts = (0..n).map(|_| em.new_group()).collect();
        Groups { io, parts }
    }

    /// Where part `i` runs.
    fn at<'s>(&self, ctx: &'s Ctx, i: usize) -> At<'s> {
        At {
            unit: &ctx.spec.units[i],
            group: self.parts[i],
        }
    }
}

/// What the parts of one layer produced and how to join them.
struct Parts {
    outputs: Vec<String>,
    /// `Some(axis)`: concatenate along it; `None`: add.
    concat_axis: Option<i64>,
}

/// The constant input `i` of `node` (a weight), or why the layer cannot be split.
fn weight<'m>(ctx: &'m Ctx, node: &NodeProto, i: usize, a: &Attrs) -> Result<&'m Const, String> {
    let name = node.input.get(i).filter(|s| !s.is_empty());
    name.and_then(|n| ctx.model.consts.get(n)).ok_or_else(|| {
        a.err(format!(
            "cannot be split by {}: its weights are computed at run time",
            ctx.spec.kind.name()
        ))
    })
}

/// The layer's optional constant bias (input 2), or an error when it is computed.
fn bias<'m>(ctx: &'m Ctx, node: &NodeProto, a: &Attrs) -> Result<Option<&'m Const>, String> {
    match node.input.get(2).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(_) => weight(ctx, node, 2, a).map(Some),
    }
}

/// `node` renamed as part `i`, writing a fresh output; returns it and the output's name.
fn part_node(em: &mut Emitter, node: &NodeProto, layer: &str, i: usize) -> (NodeProto, String) {
    let mut nd = node.clone();
    let out = em.fresh(&format!("{}.part{i}", node.output[0]));
    nd.output = vec![out.clone()];
    nd.name = Some(em.fresh(&format!("{layer}.part{i}")));
    (nd, out)
}

/// A slice of activation `x` along `axis` for part `i` of `layer`, made where `x` is
/// produced, in group `io`.
fn scatter(
    ctx: &Ctx,
    em: &mut Emitter,
    x: &str,
    (layer, i, io): (&str, usize, u32),
    axis: i64,
    r: (usize, usize),
) -> String {
    let out = em.fresh(&format!("{x}.{layer}.part{i}"));
    let bounds = [(r.0 as i64, r.1 as i64)];
    em.slice(
        &format!("{layer}.scatter{i}"),
        x,
        &out,
        &[axis],
        &bounds,
        At {
            unit: ctx.scatter_unit(x, i),
            group: io,
        },
    );
    out
}

fn set_int(node: &mut NodeProto, name: &str, v: i64) {
    node.attribute.retain(|a| a.name.as_deref() != Some(name));
    node.attribute.push(int(name, v));
}

/// A convolution's filters in parts (between groups when grouped).
fn conv_out(ctx: &Ctx, em: &mut Emitter, l: usize, a: &Attrs, g: &Groups) -> Result<Parts, String> {
    let node = ctx.model.node(l);
    let lname = &ctx.model.graph.layers[l].name;
    let (w, b) = (weight(ctx, node, 1, a)?, bias(ctx, node, a)?);
    let groups = a.int("group", 1).max(1) as usize;
    let (m, cg) = (w.shape[0], w.shape[1]);
    let per_group = m / groups;
    let align = if groups > 1 { per_group } else { 1 };
    let ranges =
        part_ranges(&ctx.spec.shares, ctx.spec.units.len(), m, align).map_err(|e| a.err(e))?;
    let mut outputs = Vec::new();
    for (i, &(m0, m1)) in ranges.iter().enumerate() {
        let (mut nd, out) = part_node(em, node, lname, i);
        nd.input[1] = em.weight_slice(w, 0, (m0, m1), &format!("{}.part{i}", node.input[1]))?;
        if let Some(b) = b {
            nd.input[2] = em.weight_slice(b, 0, (m0, m1), &format!("{}.part{i}", node.input[2]))?;
        }
        if groups > 1 {
            let (g0, g1) = (m0 / per_group, m1 / per_group);
            let x = &node.input[0];
            nd.input[0] = scatter(ctx, em, x, (lname, i, g.io), 1, (g0 * cg, g1 * cg));
            set_int(&mut nd, "group", (g1 - g0) as i64);
        }
        em.push(nd, g.at(ctx, i));
        outputs.push(out);
    }
    Ok(Parts {
        outputs,
        concat_axis: Some(1),
    })
}

/// A convolution's input channels in parts, the results added.
fn conv_in(ctx: &Ctx, em: &mut Emitter, l: usize, a: &Attrs, g: &Groups) -> Result<Parts, String> {
    let node = ctx.model.node(l);
    let lname = &ctx.model.graph.layers[l].name;
    let w = weight(ctx, node, 1, a)?;
    bias(ctx, node, a)?;
    let groups = a.int("group", 1);
    if groups != 1 {
        return Err(a.err(format!(
            "cannot be split by in_channels: it is a grouped or depthwise convolution (group = {groups}), each filter reads only its group's channels (use out_channels)"
        )));
    }
    let ranges =
        part_ranges(&ctx.spec.shares, ctx.spec.units.len(), w.shape[1], 1).map_err(|e| a.err(e))?;
    let mut outputs = Vec::new();
    for (i, &r) in ranges.iter().enumerate() {
        let (mut nd, out) = part_node(em, node, lname, i);
        nd.input[0] = scatter(ctx, em, &node.input[0], (lname, i, g.io), 1, r);
        nd.input[1] = em.weight_slice(w, 1, r, &format!("{}.part{i}", node.input[1]))?;
        if i > 0 {
            nd.input.truncate(2); // the bias once
        }
        em.push(nd, g.at(ctx, i));
        outputs.push(out);
    }
    Ok(Parts {
        outputs,
        concat_axis: None,
    })
}

/// Where a Gemm or MatMul's dimensions lie: the axes of A and B that hold the inner
/// dimension, the axis of B that holds the output features.
struct MatrixAxes {
    a_inner: i64,
    b_inner: usize,
    b_out: usize,
    out_rank: usize,
}

fn matrix_axes(ctx: &Ctx, l: usize, a: &Attrs, b: &Const) -> Result<MatrixAxes, String> {
    let layer = &ctx.model.graph.layers[l];
    let a_rank = ctx.model.graph.tensors[&layer.inputs[0]].shape.len() as i64;
    if b.shape.len() != 2 {
        return Err(a.err("cannot be split: its weight matrix is not 2-D"));
    }
    let (ta, tb) = (a.int("transA", 0) != 0, a.int("transB", 0) != 0);
    Ok(MatrixAxes {
        a_inner: if layer.op == "Gemm" && ta {
            0
        } else {
            a_rank - 1
        },
        b_inner: if tb { 1 } else { 0 },
        b_out: if tb { 0 } else { 1 },
        out_rank: layer.output_shape.len(),
    })
}

/// A Gemm or MatMul with constant B in parts: output features (concatenated) or the inner
/// dimension (added).
fn matrix(
    ctx: &Ctx,
    em: &mut Emitter,
    l: usize,
    a: &Attrs,
    (kind, g): (SplitKind, &Groups),
) -> Result<Parts, String> {
    let node = ctx.model.node(l);
    let lname = &ctx.model.graph.layers[l].name;
    let b = weight(ctx, node, 1, a)?;
    let ax = matrix_axes(ctx, l, a, b)?;
    let c = gemm_bias(ctx, node, a)?;
    let split_axis = if kind == SplitKind::OutChannels {
        ax.b_out
    } else {
        ax.b_inner
    };
    let ranges = part_ranges(
        &ctx.spec.shares,
        ctx.spec.units.len(),
        b.shape[split_axis],
        1,
    )
    .map_err(|e| a.err(e))?;
    let mut outputs = Vec::new();
    for (i, &r) in ranges.iter().enumerate() {
        let (mut nd, out) = part_node(em, node, lname, i);
        nd.input[1] = em.weight_slice(b, split_axis, r, &format!("{}.part{i}", node.input[1]))?;
        if kind == SplitKind::InChannels {
            nd.input[0] = scatter(ctx, em, &node.input[0], (lname, i, g.io), ax.a_inner, r);
            if i > 0 {
                nd.input.truncate(2);
            }
        } else if let Some(c) =
            c.filter(|c| c.shape.last() == Some(&b.shape[ax.b_out]) && c.shape.last() != Some(&1))
        {
            let axis = c.shape.len() - 1;
            nd.input[2] = em.weight_slice(c, axis, r, &format!("{}.part{i}", node.input[2]))?;
        }
        em.push(nd, g.at(ctx, i));
        outputs.push(out);
    }
    let concat_axis = (kind == SplitKind::OutChannels).then_some(ax.out_rank as i64 - 1);
    Ok(Parts {
        outputs,
        concat_axis,
    })
}

/// A Gemm's constant C (MatMul has none).
fn gemm_bias<'m>(ctx: &'m Ctx, node: &NodeProto, a: &Attrs) -> Result<Option<&'m Const>, String> {
    if node.op_type.as_deref() == Some("Gemm") {
        bias(ctx, node, a)
    } else {
        Ok(None)
    }
}

/// Joins layer `l`'s parts under its output's name, where the result is read: on the unit
/// of its first reader (the split's first unit when that reader is in the split too), in
/// group `io`.
fn gather(ctx: &Ctx, em: &mut Emitter, l: usize, parts: Parts, io: u32) {
    let g = &ctx.model.graph;
    let out = &g.layers[l].outputs[0];
    let unit = match g.tensors[out].consumers.first() {
        Some(&c) if !ctx.inside(c) => ctx.gather_unit(out),
        _ => &ctx.spec.units[0],
    };
    let at = At { unit, group: io };
    let name = format!("{out}.gather");
    match parts.concat_axis {
        Some(axis) => em.concat(&name, parts.outputs, axis, out, at),
        None => em.op(&name, "Sum", parts.outputs, out, vec![], at),
    }
}
