//! Spatial splits: fused tile partitioning of a run of layers.
//!
//! Each tile computes a block of the run's results (rows, or a rows x columns grid). Walking
//! the run backwards from that block gives the block of every tensor the tile needs (a
//! window layer widens it by its receptive field, a pointwise one keeps it; a tensor read by
//! several layers gets the hull of what they need), so a tile reads its inputs' blocks once,
//! halo included, and exchanges nothing until the run ends. A window layer's padding is kept
//! only where its block touches the border of the feature map; a layer that reads less than
//! its input's block reads a cropped copy.

use super::emit::{At, Emitter};
use super::{part_ranges, Ctx, Shares};
use crate::attr::Attrs;
use crate::model::Model;
use crate::onnx::attrs::ints;
use std::collections::HashMap;

/// `[lo, hi)` along one axis.
type Span = (i64, i64);
/// Rows and columns of an NCHW tensor.
type Region = [Span; 2];

/// Operators that compute each position from the same position of their inputs.
const POINTWISE: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Softplus",
    "Softsign",
    "Exp",
    "Log",
    "Abs",
    "Neg",
    "Sqrt",
    "Reciprocal",
    "Erf",
    "Gelu",
    "Mish",
    "BatchNormalization",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Pow",
    "Concat",
    "Dropout",
    "Identity",
    "Cast",
    "LRN",
];

/// Operators with a sliding window over rows and columns.
const WINDOWED: &[&str] = &["Conv", "MaxPool", "AveragePool"];

/// A window layer's geometry along rows and columns.
#[derive(Debug, Clone, Copy)]
struct Window {
    k: [i64; 2],
    s: [i64; 2],
    d: [i64; 2],
    /// Padding before (top, left) and after (bottom, right).
    pb: [i64; 2],
    pe: [i64; 2],
    /// Whether padding leaves a window's result unchanged (MaxPool ignores it, an
    /// AveragePool without `count_include_pad` leaves it out of the average; a Conv's
    /// windows never overhang its padding).
    pad_neutral: bool,
}

impl Window {
    /// The input block an output block reads (clipped to the input) and the padding that
    /// makes the layer compute exactly that output block from it: `[top, left, bottom,
    /// right]`.
    fn back(&self, out: Region, ins: [i64; 2]) -> (Region, [i64; 4]) {
        let mut want = [(0, 0); 2];
        let mut pads = [0; 4];
        for a in 0..2 {
            let (o0, o1) = out[a];
            let start = o0 * self.s[a] - self.pb[a];
            let end = (o1 - 1) * self.s[a] - self.pb[a] + (self.k[a] - 1) * self.d[a] + 1;
            let (cs, ce) = (start.max(0), end.min(ins[a]));
            want[a] = (cs, ce);
            pads[a] = cs - start;
            // a ceil-mode pool's last window may overhang its padding: pad the whole
            // overhang where padding is neutral (else a tile's block may be narrower than
            // the window); otherwise keep the original padding and ceil mode, which then
            // yield the same count
            pads[a + 2] = if self.pad_neutral {
                end - ce
            } else {
                (end - ce).min(self.pe[a])
            };
        }
        (want, pads)
    }
}

/// How a layer of the run maps output blocks to input blocks.
enum Reach {
    Window(Window),
    Pointwise,
}

/// What one tile computes: the block of each tensor it holds, what each layer reads, the
/// padding of each window layer.
#[derive(Default)]
struct TilePlan {
    need: HashMap<String, Region>,
    wants: HashMap<(usize, String), Region>,
    pads: HashMap<usize, [i64; 4]>,
}

/// Rewrites the split `ctx.spec` (spatial) into tiles.
pub(crate) fn split(ctx: &Ctx, em: &mut Emitter) -> Result<(), String> {
    let reaches = (ctx.spec.layers.iter())
        .map(|&l| Ok((l, reach(ctx.model, l)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let exits = ctx.exits();
    let blocks = exit_blocks(ctx, &exits)?;
    let mut parts: Vec<Vec<String>> = vec![Vec::new(); exits.len()];
    // scatter and gather with the layers around them (group 0): a scatter ends its
    // producer's partition, a gather starts its reader's; each tile has a group of its own
    let io = 0;
    for (t, unit) in ctx.spec.units.iter().enumerate() {
        let at = At {
            unit,
            group: em.new_group(),
        };
        let tile_exits: Vec<(String, Region)> = exits
            .iter()
            .zip(&blocks)
            .map(|(e, b)| (e.clone(), b[t]))
            .collect();
        let plan = plan_tile(ctx, &reaches, &tile_exits)?;
        let avail = emit_tile(ctx, em, &reaches, &plan, (t, at, io))?;
        for (i, (e, block)) in tile_exits.iter().enumerate() {
            parts[i].push(crop_to(em, &avail[e], *block, e, &format!("tile{t}"), at));
        }
    }
    for (e, p) in exits.iter().zip(parts) {
        gather(ctx, em, e, p, io);
    }
    Ok(())
}

/// The block of each exit tensor each tile computes: rows (and columns) in proportion to
/// the shares of the grid's rows (and columns).
fn exit_blocks(ctx: &Ctx, exits: &[String]) -> Result<Vec<Vec<Region>>, String> {
    let (rows, cols) = ctx.spec.grid;
    let (row_shares, col_shares) = axis_shares(&ctx.spec.shares, ctx.spec.grid);
    let mut out = Vec::new();
    for e in exits {
        let sh = &ctx.model.graph.tensors[e].shape;
        if sh.len() != 4 {
            return Err(format!(
                "result '{e}' of the split is not a 4-D feature map"
            ));
        }
        let r =
            part_ranges(&row_shares, rows, sh[2], 1).map_err(|m| format!("rows of '{e}': {m}"))?;
        let c = part_ranges(&col_shares, cols, sh[3], 1)
            .map_err(|m| format!("columns of '{e}': {m}"))?;
        let span = |(a, b): (usize, usize)| (a as i64, b as i64);
        out.push(
            (0..rows * cols)
                .map(|t| [span(r[t / cols]), span(c[t % cols])])
                .collect(),
        );
    }
    Ok(out)
}

/// The shares of the rows and of the columns of a grid: ratios summed per row and column;
/// explicit ends along the one axis the grid divides.
fn axis_shares(shares: &Shares, (rows, cols): (usize, usize)) -> (Shares, Shares) {
    match shares {
        Shares::Ratios(r) => (
            Shares::Ratios(
                (0..rows)
                    .map(|i| r[i * cols..(i + 1) * cols].iter().sum())
                    .collect(),
            ),
            Shares::Ratios(
                (0..cols)
                    .map(|j| (0..rows).map(|i| r[i * cols + j]).sum())
                    .collect(),
            ),
        ),
        Shares::Ends(e) if cols == 1 => (Shares::Ends(e.clone()), Shares::Speed),
        Shares::Ends(e) => (Shares::Speed, Shares::Ends(e.clone())),
        Shares::Speed => (Shares::Speed, Shares::Speed),
    }
}

/// Whether layer `l` of `model` can be in a spatial split (as far as it alone goes: a run
/// must also end in 4-D results with rows to share).
pub fn tileable(model: &Model, l: usize) -> bool {
    reach(model, l).is_ok()
}

/// How layer `l` maps blocks, or why it cannot be in a spatial split.
fn reach(model: &Model, l: usize) -> Result<Reach, String> {
    let layer = &model.graph.layers[l];
    let label = format!("layer '{}' ({})", layer.name, layer.op);
    let op = layer.op.as_str();
    let four_d = |t: &String| model.graph.tensors[t].shape.len() == 4;
    if layer.outputs.len() != 1 || !four_d(&layer.outputs[0]) {
        return Err(format!(
            "{label} cannot be in a spatial split: its result is not one 4-D feature map"
        ));
    }
    if WINDOWED.contains(&op) {
        if layer.inputs.len() != 1 {
            return Err(format!(
                "{label} cannot be in a spatial split: its weights are computed at run time"
            ));
        }
        return window(model, l, &label).map(Reach::Window);
    }
    if !POINTWISE.contains(&op) {
        return Err(format!(
            "{label} cannot be in a spatial split: it needs the whole feature map (only convolution, pooling with a window, and position-wise layers can be tiled)"
        ));
    }
    let a = Attrs::new(model.node(l), &label);
    if op == "Concat" && ![1, -3].contains(&a.int("axis", 1)) {
        return Err(format!(
            "{label} cannot be in a spatial split: it concatenates along rows or columns"
        ));
    }
    Ok(Reach::Pointwise)
}

/// The window of a Conv or pooling layer, padding made explicit.
fn window(model: &Model, l: usize, label: &str) -> Result<Window, String> {
    let node = model.node(l);
    let a = Attrs::new(node, label);
    let weight_dims = || {
        let c = model.consts.get(node.input.get(1)?)?;
        Some(
            c.shape
                .get(2..)?
                .iter()
                .map(|&d| d as i64)
                .collect::<Vec<_>>(),
        )
    };
    let k = a
        .ints("kernel_shape")
        .or_else(weight_dims)
        .unwrap_or_default();
    let pair = |v: Option<Vec<i64>>| v.filter(|v| v.len() == 2).map(|v| [v[0], v[1]]);
    let k = pair(Some(k)).ok_or_else(|| a.err("a spatial split needs a 2-D window"))?;
    let s = pair(a.ints("strides")).unwrap_or([1, 1]);
    let d = pair(a.ints("dilations")).unwrap_or([1, 1]);
    let layer = &model.graph.layers[l];
    let ins = &model.graph.tensors[&layer.inputs[0]].shape;
    let outs = &layer.output_shape;
    let mut w = Window {
        k,
        s,
        d,
        pb: [0; 2],
        pe: [0; 2],
        pad_neutral: layer.op != "AveragePool" || a.int("count_include_pad", 0) == 0,
    };
    match a.string("auto_pad", "NOTSET").as_str() {
        "NOTSET" => {
            let p = a.ints("pads").unwrap_or_else(|| vec![0; 4]);
            if p.len() != 4 {
                return Err(a.err("a spatial split needs 4 pads"));
            }
            (w.pb, w.pe) = ([p[0], p[1]], [p[2], p[3]]);
        }
        "VALID" => {}
        mode => {
            for i in 0..2 {
                let total = ((outs[2 + i] as i64 - 1) * s[i] + (k[i] - 1) * d[i] + 1
                    - ins[2 + i] as i64)
                    .max(0);
                let small = total / 2;
                (w.pb[i], w.pe[i]) = if mode == "SAME_LOWER" {
                    (total - small, small)
                } else {
                    (small, total - small)
                };
            }
        }
    }
    Ok(w)
}

/// Rows and columns of tensor `t`.
fn extent(ctx: &Ctx, t: &str) -> [i64; 2] {
    let sh = &ctx.model.graph.tensors[t].shape;
    [sh[2] as i64, sh[3] as i64]
}

/// The hull of two blocks.
fn hull(a: Region, b: Region) -> Region {
    [
        (a[0].0.min(b[0].0), a[0].1.max(b[0].1)),
        (a[1].0.min(b[1].0), a[1].1.max(b[1].1)),
    ]
}

/// Walks the run backwards from the tile's exit blocks.
fn plan_tile(
    ctx: &Ctx,
    reaches: &[(usize, Reach)],
    exits: &[(String, Region)],
) -> Result<TilePlan, String> {
    let mut p = TilePlan::default();
    for (e, b) in exits {
        p.need.insert(e.clone(), *b);
    }
    for (l, reach) in reaches.iter().rev() {
        let layer = &ctx.model.graph.layers[*l];
        let Some(&out) = p.need.get(&layer.outputs[0]) else {
            continue; // nothing this tile computes reads it
        };
        let reads: Vec<(String, Region)> = match reach {
            Reach::Window(w) => {
                let (want, pads) = w.back(out, extent(ctx, &layer.inputs[0]));
                p.pads.insert(*l, pads);
                vec![(layer.inputs[0].clone(), want)]
            }
            Reach::Pointwise => pointwise_reads(ctx, *l, out)?,
        };
        for (t, want) in reads {
            p.wants.insert((*l, t.clone()), want);
            let n = p.need.get(&t).map_or(want, |&h| hull(h, want));
            p.need.insert(t, n);
        }
    }
    Ok(p)
}

/// The blocks a pointwise layer reads for output block `out`: the same block of inputs the
/// size of its result; inputs of one row and column (per-channel factors) whole.
fn pointwise_reads(ctx: &Ctx, l: usize, out: Region) -> Result<Vec<(String, Region)>, String> {
    let layer = &ctx.model.graph.layers[l];
    let osh = &layer.output_shape;
    let mut reads = Vec::new();
    for t in &layer.inputs {
        let sh = &ctx.model.graph.tensors[t].shape;
        if sh.len() == 4 && sh[2..] == osh[2..] {
            reads.push((t.clone(), out));
        } else if sh.len() == 4 && sh[2] == 1 && sh[3] == 1 && ctx.producer_inside(t) {
            reads.push((t.clone(), [(0, 1), (0, 1)]));
        } else if !(sh.len() < 3 || (sh.len() == 4 && sh[2] == 1 && sh[3] == 1)) {
            return Err(format!(
                "layer '{}' ({}) cannot be in a spatial split: its input '{t}' of shape {sh:?} is broadcast along rows or columns",
                layer.name, layer.op
            ));
        }
    }
    Ok(reads)
}

/// Emits tile `t` (its layers `at`, the scatter slices of its inputs in group `io` where
/// the inputs are made): returns the name and block of every tensor it holds.
fn emit_tile(
    ctx: &Ctx,
    em: &mut Emitter,
    reaches: &[(usize, Reach)],
    plan: &TilePlan,
    (t, at, io): (usize, At, u32),
) -> Result<HashMap<String, (String, Region)>, String> {
    let mut avail: HashMap<String, (String, Region)> = HashMap::new();
    for x in entries(ctx) {
        if let Some(&block) = plan.need.get(&x) {
            let full = [(0, extent(ctx, &x)[0]), (0, extent(ctx, &x)[1])];
            let name = if block == full {
                x.clone()
            } else {
                let out = em.fresh(&format!("{x}.tile{t}"));
                let bounds = [block[0], block[1]];
                em.slice(
                    &format!("{x}.scatter{t}"),
                    &x,
                    &out,
                    &[2, 3],
                    &bounds,
                    At {
                        unit: ctx.scatter_unit(&x, t),
                        group: io,
                    },
                );
                out
            };
            avail.insert(x, (name, block));
        }
    }
    for (l, reach) in reaches {
        let layer = &ctx.model.graph.layers[*l];
        let Some(&block) = plan.need.get(&layer.outputs[0]) else {
            continue;
        };
        let mut node = ctx.model.node(*l).clone();
        for inp in node.input.iter_mut() {
            if let Some(&want) = plan.wants.get(&(*l, inp.clone())) {
                *inp = crop_to(
                    em,
                    &avail[inp.as_str()],
                    want,
                    inp,
                    &format!("{}.tile{t}", layer.name),
                    at,
                );
            }
        }
        let out = em.fresh(&format!("{}.tile{t}", layer.outputs[0]));
        node.output = vec![out.clone()];
        node.name = Some(em.fresh(&format!("{}.tile{t}", layer.name)));
        if let Reach::Window(_) = reach {
            node.attribute
                .retain(|a| !matches!(a.name.as_deref(), Some("pads" | "auto_pad")));
            node.attribute.push(ints("pads", &plan.pads[l]));
        }
        em.push(node, at);
        avail.insert(layer.outputs[0].clone(), (out, block));
    }
    Ok(avail)
}

/// Activations the run reads from outside it, in the order first read.
fn entries(ctx: &Ctx) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for &l in &ctx.spec.layers {
        for t in &ctx.model.graph.layers[l].inputs {
            if !ctx.producer_inside(t) && !out.contains(t) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// `held` (a tensor's name in the tile and its block) cut to block `want`: the same name
/// when it already is that block, else a Slice run `at`.
fn crop_to(
    em: &mut Emitter,
    held: &(String, Region),
    want: Region,
    tensor: &str,
    reader: &str,
    at: At,
) -> String {
    let (name, have) = held;
    if *have == want {
        return name.clone();
    }
    let out = em.fresh(&format!("{tensor}.crop.{reader}"));
    let bounds = [
        (want[0].0 - have[0].0, want[0].1 - have[0].0),
        (want[1].0 - have[1].0, want[1].1 - have[1].0),
    ];
    em.slice(
        &format!("{tensor}.crop.{reader}"),
        name,
        &out,
        &[2, 3],
        &bounds,
        at,
    );
    out
}

/// Joins the tiles' blocks of `e` (row by row: columns first, then the rows) under the name
/// `e`, on the unit that reads it, in group `io`.
fn gather(ctx: &Ctx, em: &mut Emitter, e: &str, parts: Vec<String>, io: u32) {
    let (rows, cols) = ctx.spec.grid;
    let at = At {
        unit: ctx.gather_unit(e),
        group: io,
    };
    if rows == 1 || cols == 1 {
        let axis = if rows == 1 { 3 } else { 2 };
        return em.concat(&format!("{e}.gather"), parts, axis, e, at);
    }
    let mut row_names = Vec::new();
    for (r, chunk) in parts.chunks(cols).enumerate() {
        let out = em.fresh(&format!("{e}.row{r}"));
        em.concat(&format!("{e}.gather.row{r}"), chunk.to_vec(), 3, &out, at);
        row_names.push(out);
    }
    em.concat(&format!("{e}.gather"), row_names, 2, e, at);
}
