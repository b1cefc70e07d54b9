//! Horizontal splits: one layer, or a run of layers, computed in parts on several units at
//! once (DeepThings' fused tile partitioning, AutoDiCE's `lop` and `lip`).
//!
//! A split is a rewrite of the model: its layers are replaced by one copy per part (weights
//! cut, padding adjusted to the tile), with Slice nodes that scatter the inputs and Concat
//! or Sum nodes that gather the outputs under their original names. The rewritten model
//! computes what the original does; partitions, sub-models, the simulator and the workers
//! treat the parts as ordinary layers, each mapped to its part's unit. Scatter slices run on
//! the unit that produces their input (so only the slice travels), gathers on the unit of
//! the first layer that reads the result.

mod channels;
mod emit;
pub mod parse;
mod spatial;

pub use spatial::tileable;

use crate::error::PlanError;
use crate::mapping::Mapping;
use crate::model::{InputShapes, Model};
use emit::Emitter;
use std::collections::HashSet;

/// How a split divides its layers' work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// Tiles of the feature map (rows, or a rows x columns grid), each with the halo the
    /// run's receptive field needs.
    Spatial,
    /// A layer's filters (output channels, or a Gemm's output features).
    OutChannels,
    /// A layer's input channels (or a Gemm's inner dimension); the partial results are added.
    InChannels,
}

impl SplitKind {
    /// The name in mapping files.
    pub fn name(self) -> &'static str {
        match self {
            SplitKind::Spatial => "spatial",
            SplitKind::OutChannels => "out_channels",
            SplitKind::InChannels => "in_channels",
        }
    }
}

/// How much of the work each part gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Shares {
    /// In proportion to the units' speed, once [`Hybrid::set_ratios`] has said it; equal
    /// parts where nothing knows the units (`dicesim split` without a platform).
    Speed,
    /// In proportion to these numbers, one per unit.
    Ratios(Vec<f64>),
    /// Where each part ends (exclusive; the last may exceed the extent: "the rest", as
    /// AutoDiCE's 65535).
    Ends(Vec<usize>),
}

/// One horizontal split of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    /// Layers of the original graph, ascending.
    pub layers: Vec<usize>,
    /// The kind.
    pub kind: SplitKind,
    /// Units of the parts, `"<device>.<unit>"`.
    pub units: Vec<String>,
    /// Each part's share.
    pub shares: Shares,
    /// Rows x columns of tiles (spatial); `units` fills it row by row.
    pub grid: (usize, usize),
    /// What names it in errors (e.g. `mapping.toml: [[split]] 1`).
    pub label: String,
}

/// A mapping with horizontal splits: every layer of the original graph on a unit or in one
/// split.
#[derive(Debug, Clone, PartialEq)]
pub struct Hybrid {
    /// A unit for every layer of the original graph; a split layer stands on its split's
    /// first unit (where the split's results are gathered when nothing else reads them).
    pub base: Mapping,
    /// The splits, in file order; no layer is in two.
    pub splits: Vec<SplitSpec>,
}

impl Hybrid {
    /// A mapping without splits.
    pub fn vertical(base: Mapping) -> Hybrid {
        Hybrid {
            base,
            splits: Vec::new(),
        }
    }

    /// Every unit named, in order of first use (the base's, then the splits').
    pub fn units(&self) -> Vec<String> {
        let mut out = self.base.units.clone();
        for u in self.splits.iter().flat_map(|s| &s.units) {
            if !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }

    /// Sets every [`Shares::Speed`] split's ratios to `speed(split, unit)` per unit (e.g.
    /// the inverse of the split's layers' time on the unit).
    pub fn set_ratios(&mut self, speed: impl Fn(&SplitSpec, &str) -> f64) {
        for s in self.splits.iter_mut() {
            if s.shares == Shares::Speed {
                let r: Vec<f64> = s.units.iter().map(|u| speed(s, u)).collect();
                // relative to the fastest, as a user would write them
                let top = r.iter().copied().fold(0.0, f64::max);
                let r = r
                    .iter()
                    .map(|x| if top > 0.0 { x / top } else { 1.0 })
                    .collect();
                s.shares = Shares::Ratios(r);
            }
        }
    }
}

/// The model with `hybrid`'s splits written into it and the mapping of its layers. Without
/// splits, a copy of `model` and the base mapping.
pub fn apply(model: &Model, hybrid: &Hybrid) -> Result<(Model, Mapping), PlanError> {
    if hybrid.splits.is_empty() {
        return Ok((model.clone(), hybrid.base.clone()));
    }
    let mut proto = model.static_proto();
    let graph = proto.graph.as_mut().expect("checked when loading");
    let mut em = Emitter::new(model.opset, taken_names(graph));
    let mut replaced: HashSet<usize> = HashSet::new();
    let mut inserts: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for spec in &hybrid.splits {
        let ctx = Ctx::new(model, hybrid, spec);
        let first = em.nodes.len();
        match spec.kind {
            SplitKind::Spatial => spatial::split(&ctx, &mut em),
            _ => channels::split(&ctx, &mut em),
        }
        .map_err(|m| PlanError::Mapping(format!("{}: {m}", spec.label)))?;
        replaced.extend(spec.layers.iter().map(|&l| model.layer_node[l]));
        inserts.push((model.layer_node[spec.layers[0]], first..em.nodes.len()));
    }
    let old = std::mem::take(&mut graph.node);
    for (i, node) in old.into_iter().enumerate() {
        for (_, r) in inserts.iter().filter(|(at, _)| *at == i) {
            graph.node.extend(em.nodes[r.clone()].iter().cloned());
        }
        if !replaced.contains(&i) {
            graph.node.push(node);
        }
    }
    graph.initializer.append(&mut em.inits);
    let name = model.graph.name.clone();
    let new = Model::analyse(proto, &name, &InputShapes::new()).map_err(|e| {
        PlanError::Model(format!("{name}: the model with its horizontal splits: {e}"))
    })?;
    let mapping = new_mapping(model, &hybrid.base, &new, &em)?;
    Ok((new, mapping))
}

/// Node and tensor names of `graph` (new names must differ).
fn taken_names(graph: &crate::onnx::GraphProto) -> HashSet<String> {
    let mut taken = HashSet::new();
    for n in &graph.node {
        taken.extend(n.name.clone());
        taken.extend(n.input.iter().chain(&n.output).cloned());
    }
    taken.extend(graph.initializer.iter().filter_map(|t| t.name.clone()));
    taken.extend(graph.input.iter().filter_map(|t| t.name.clone()));
    taken
}

/// The unit and partition group of every layer of the rewritten model: emitted layers by
/// the emitter's record, the others as in the base mapping (group 0).
fn new_mapping(
    old: &Model,
    base: &Mapping,
    new: &Model,
    em: &Emitter,
) -> Result<Mapping, PlanError> {
    let mut units = Vec::with_capacity(new.graph.layers.len());
    let mut groups = Vec::with_capacity(new.graph.layers.len());
    for l in &new.graph.layers {
        let (unit, group) = match em.units.get(&l.name) {
            Some((u, g)) => (u.clone(), *g),
            None => {
                let i = old.graph.layer_index(&l.name).ok_or_else(|| {
                    PlanError::Model(format!("horizontal split: layer '{}' has no unit", l.name))
                })?;
                (base.unit_of(i).to_string(), 0)
            }
        };
        units.push(unit);
        groups.push(group);
    }
    let mut mapping = Mapping::from_assignment(&units);
    mapping.groups = groups;
    Ok(mapping)
}

/// What a split's rewrite reads: the model, the units of the layers around the split.
pub(crate) struct Ctx<'a> {
    /// The original model.
    pub model: &'a Model,
    /// The split.
    pub spec: &'a SplitSpec,
    base: &'a Mapping,
    splits: &'a [SplitSpec],
    inside: Vec<bool>,
}

impl<'a> Ctx<'a> {
    fn new(model: &'a Model, hybrid: &'a Hybrid, spec: &'a SplitSpec) -> Ctx<'a> {
        let mut inside = vec![false; model.graph.layers.len()];
        for &l in &spec.layers {
            inside[l] = true;
        }
        Ctx {
            model,
            spec,
            base: &hybrid.base,
            splits: &hybrid.splits,
            inside,
        }
    }

    /// Whether layer `l` is in the split.
    pub fn inside(&self, l: usize) -> bool {
        self.inside[l]
    }

    /// Whether activation `t` is produced by a layer of the split.
    pub fn producer_inside(&self, t: &str) -> bool {
        let info = self.model.graph.tensors.get(t);
        info.and_then(|i| i.producer)
            .is_some_and(|p| self.inside[p])
    }

    /// The unit where activation `t` is produced (a result of another split: where that
    /// split gathers it); `None` for a graph input.
    pub fn producer_unit(&self, t: &str) -> Option<&str> {
        let p = self.model.graph.tensors.get(t)?.producer?;
        let other = (self.splits.iter())
            .find(|s| !std::ptr::eq(*s, self.spec) && s.layers.binary_search(&p).is_ok());
        Some(match other {
            Some(s) => self.gathered_at(s, t),
            None => self.base.unit_of(p),
        })
    }

    /// Where another split `s` gathers its result `t` (as its rewrite does: at the first
    /// reader outside `s`; a channel split looks at the first reader only), else `s`'s
    /// first unit.
    fn gathered_at(&'a self, s: &'a SplitSpec, t: &str) -> &'a str {
        let outside = |c: &usize| s.layers.binary_search(c).is_err();
        let readers = &self.model.graph.tensors[t].consumers;
        let reader = match s.kind {
            SplitKind::Spatial => readers.iter().find(|c| outside(c)),
            _ => readers.first().filter(|c| outside(c)),
        };
        reader.map_or(&s.units[0], |&c| self.base.unit_of(c))
    }

    /// The unit that gathers the split's result `t`: that of the first layer outside the
    /// split reading it, else the split's first unit.
    pub fn gather_unit(&self, t: &str) -> &str {
        let g = &self.model.graph;
        (g.tensors[t].consumers.iter())
            .find(|&&c| !self.inside[c])
            .map(|&c| self.base.unit_of(c))
            .unwrap_or(&self.spec.units[0])
    }

    /// The unit that scatters `t` to part `p`: its producer's, or the part's own unit for a
    /// graph input.
    pub fn scatter_unit(&self, t: &str, p: usize) -> &str {
        self.producer_unit(t).unwrap_or(&self.spec.units[p])
    }

    /// Tensors produced inside the split and read outside it (or graph outputs), in the
    /// order of their producers.
    pub fn exits(&self) -> Vec<String> {
        let g = &self.model.graph;
        let mut out = Vec::new();
        for &l in &self.spec.layers {
            for t in &g.layers[l].outputs {
                let info = &g.tensors[t];
                let read_outside = info.consumers.iter().any(|&c| !self.inside[c]);
                if read_outside || g.outputs.contains(t) {
                    out.push(t.clone());
                }
            }
        }
        out
    }
}

/// The parts' ranges `[start, end)` over `extent` items for `n` parts, each a multiple of
/// `align` items (a group of a grouped convolution).
pub(crate) fn part_ranges(
    shares: &Shares,
    n: usize,
    extent: usize,
    align: usize,
) -> Result<Vec<(usize, usize)>, String> {
    let blocks = extent / align;
    let ends: Vec<usize> = match shares {
        Shares::Ends(e) => e.iter().map(|&x| (x / align).min(blocks)).collect(),
        Shares::Ratios(r) => cumulative(r, blocks),
        Shares::Speed => cumulative(&vec![1.0; n], blocks),
    };
    if ends.len() != n {
        return Err(format!("{} shares for {n} units", ends.len()));
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for (i, &e) in ends.iter().enumerate() {
        let e = if i + 1 == n { blocks } else { e };
        if e <= start {
            return Err(format!(
                "part {i} would be empty ({extent} to share among {n} parts{})",
                if align > 1 {
                    format!(" in groups of {align}")
                } else {
                    String::new()
                }
            ));
        }
        out.push((start * align, e * align));
        start = e;
    }
    Ok(out)
}

/// Rounded cumulative ends of `blocks` shared in proportion to `ratios`.
fn cumulative(ratios: &[f64], blocks: usize) -> Vec<usize> {
    let total: f64 = ratios.iter().sum();
    let mut acc = 0.0;
    ratios
        .iter()
        .map(|r| {
            acc += r;
            ((acc / total) * blocks as f64).round() as usize
        })
        .collect()
}
