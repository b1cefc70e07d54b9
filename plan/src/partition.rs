//! Partitions: the sub-graphs that a mapping induces, one per (unit, connected piece), split
//! further where partitions would wait on each other in a cycle; and the edges between them.

use serde::Serialize;

/// A tensor crossing a partition boundary (or a graph input/output).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PortTensor {
    /// Tensor name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Size in bytes.
    pub bytes: u64,
}

/// One partition: layers that run as one sub-model on one compute unit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Partition {
    /// Index in [`Plan::partitions`] (which is a topological order of partitions).
    pub id: usize,
    /// Compute unit, `"<device>.<unit>"`.
    pub unit: String,
    /// Layer indices into [`crate::graph::Graph::layers`], ascending (topological).
    pub layers: Vec<usize>,
    /// Tensors it reads from outside (graph inputs or other partitions' outputs).
    pub inputs: Vec<PortTensor>,
    /// Tensors it produces that are read outside it (by other partitions or as graph outputs).
    pub outputs: Vec<PortTensor>,
}

/// Producer -> consumer: one tensor sent from one partition to another.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Edge {
    /// Producing partition id.
    pub from: usize,
    /// Consuming partition id.
    pub to: usize,
    /// Tensor name.
    pub tensor: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Partitions of a mapped graph, their edges, in a topological order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Partitions in topological order.
    pub partitions: Vec<Partition>,
    /// Edges between partitions, sorted by (from, to, tensor).
    pub edges: Vec<Edge>,
    /// Graph inputs: (tensor, consuming partition ids).
    pub graph_inputs: Vec<(PortTensor, Vec<usize>)>,
    /// Graph outputs: (tensor, producing partition id).
    pub graph_outputs: Vec<(PortTensor, usize)>,
}

use crate::error::PlanError;
use crate::graph::{Graph, Layer};
use crate::mapping::Mapping;
use std::collections::BTreeSet;

impl Plan {
    /// Partitions `graph` under `mapping`.
    ///
    /// Layers are visited in topological order; a layer joins a partition of its unit and
    /// partition group ([`Mapping::groups`]; preferring one that holds one of its producers,
    /// then the most recent one) unless that would make partitions wait on each other in a
    /// cycle, in which case it starts a new partition. So a unit holding non-adjacent layers gets as few sub-models as the data
    /// flow allows, and the partition graph is always acyclic.
    pub fn build(graph: &Graph, mapping: &Mapping) -> Result<Plan, PlanError> {
        let n = graph.layers.len();
        if mapping.layer_unit.len() != n {
            return Err(PlanError::Mapping(format!(
                "the mapping covers {} layers but the model has {n}",
                mapping.layer_unit.len()
            )));
        }
        let grouping = Grouping::of(graph, mapping);
        let order = grouping.topo_order();
        let mut new_id = vec![0; order.len()];
        for (i, &p) in order.iter().enumerate() {
            new_id[p] = i;
        }
        let part_of: Vec<usize> = grouping.part_of.iter().map(|&p| new_id[p]).collect();
        let mut partitions: Vec<Partition> = order
            .iter()
            .enumerate()
            .map(|(i, &p)| Partition {
                id: i,
                unit: mapping.units[grouping.part_unit[p].0].clone(),
                layers: vec![],
                inputs: vec![],
                outputs: vec![],
            })
            .collect();
        for (l, &p) in part_of.iter().enumerate() {
            partitions[p].layers.push(l);
        }
        let graph_inputs = graph_inputs(graph, &part_of);
        let graph_outputs = graph_outputs(graph, &part_of)?;
        let mut edges = Vec::new();
        for part in partitions.iter_mut() {
            add_ports(graph, &part_of, part, &mut edges);
        }
        edges.sort_by(|a, b| (a.from, a.to, &a.tensor).cmp(&(b.from, b.to, &b.tensor)));
        Ok(Plan {
            partitions,
            edges,
            graph_inputs,
            graph_outputs,
        })
    }

    /// Partition ids that consume the outputs of partition `p`.
    pub fn successors(&self, p: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .edges
            .iter()
            .filter(|e| e.from == p)
            .map(|e| e.to)
            .collect();
        v.dedup();
        v
    }
}

/// Whether partition `from` reaches partition `to` following edges (`preds` reversed).
fn reaches(preds: &[Vec<usize>], from: usize, to: usize) -> bool {
    // Walk backwards from `to` over predecessors looking for `from`.
    let mut seen = vec![false; preds.len()];
    let mut stack = vec![to];
    while let Some(x) = stack.pop() {
        if x == from {
            return true;
        }
        for &q in &preds[x] {
            if !seen[q] {
                seen[q] = true;
                stack.push(q);
            }
        }
    }
    false
}

/// Layers grouped into partitions, numbered in order of creation.
struct Grouping {
    /// For each layer, its partition.
    part_of: Vec<usize>,
    /// For each partition, its unit (an index into [`Mapping::units`]) and group.
    part_unit: Vec<(usize, u32)>,
    /// For each partition, the partitions with an edge into it.
    preds: Vec<Vec<usize>>,
}

impl Grouping {
    /// Visits the layers in topological order, placing each as [`Plan::build`] describes.
    fn of(graph: &Graph, mapping: &Mapping) -> Grouping {
        let n = graph.layers.len();
        let mut g = Grouping {
            part_of: vec![usize::MAX; n],
            part_unit: Vec::new(),
            preds: Vec::new(),
        };
        for (l, layer) in graph.layers.iter().enumerate() {
            let u = (mapping.layer_unit[l], mapping.group_of(l));
            let producers = g.producer_parts(graph, layer);
            let p = match g.joinable(u, &producers) {
                Some(p) => p,
                None => g.new_partition(u),
            };
            for &q in &producers {
                if q != p && !g.preds[p].contains(&q) {
                    g.preds[p].push(q);
                }
            }
            g.part_of[l] = p;
        }
        g
    }

    /// The distinct partitions producing `layer`'s inputs, ascending.
    fn producer_parts(&self, graph: &Graph, layer: &Layer) -> Vec<usize> {
        let mut producers: Vec<usize> = layer
            .inputs
            .iter()
            .filter_map(|t| graph.tensors.get(t).and_then(|t| t.producer))
            .map(|p| self.part_of[p])
            .collect();
        producers.sort_unstable();
        producers.dedup();
        producers
    }

    /// A partition of unit `u` that a layer reading from `producers` can join without a
    /// cycle: first one of the producers, then the most recent one.
    fn joinable(&self, u: (usize, u32), producers: &[usize]) -> Option<usize> {
        let mut candidates: Vec<usize> = producers
            .iter()
            .copied()
            .filter(|&p| self.part_unit[p] == u)
            .collect();
        candidates.extend(
            (0..self.part_unit.len())
                .rev()
                .filter(|&p| self.part_unit[p] == u && !producers.contains(&p)),
        );
        candidates.into_iter().find(|&p| {
            producers
                .iter()
                .all(|&q| q == p || !reaches(&self.preds, p, q))
        })
    }

    fn new_partition(&mut self, u: (usize, u32)) -> usize {
        self.part_unit.push(u);
        self.preds.push(Vec::new());
        self.part_unit.len() - 1
    }

    /// Topological order of the partitions, ties by their first layer.
    fn topo_order(&self) -> Vec<usize> {
        let np = self.part_unit.len();
        let preds = &self.preds;
        let first_layer: Vec<usize> = (0..np)
            .map(|p| self.part_of.iter().position(|&x| x == p).unwrap())
            .collect();
        let mut indeg: Vec<usize> = preds.iter().map(|v| v.len()).collect();
        let mut ready: BTreeSet<(usize, usize)> = (0..np)
            .filter(|&p| indeg[p] == 0)
            .map(|p| (first_layer[p], p))
            .collect();
        let mut order = Vec::with_capacity(np);
        while let Some(&(fl, p)) = ready.iter().next() {
            ready.remove(&(fl, p));
            order.push(p);
            for q in 0..np {
                if preds[q].contains(&p) {
                    indeg[q] -= 1;
                    if indeg[q] == 0 {
                        ready.insert((first_layer[q], q));
                    }
                }
            }
        }
        debug_assert_eq!(
            order.len(),
            np,
            "partition graph is acyclic by construction"
        );
        order
    }
}

/// Tensor `name` as a port.
fn port(graph: &Graph, name: &str) -> PortTensor {
    let t = &graph.tensors[name];
    PortTensor {
        name: name.to_string(),
        shape: t.shape.clone(),
        bytes: t.bytes,
    }
}

/// Each graph input with the partitions reading it.
fn graph_inputs(graph: &Graph, part_of: &[usize]) -> Vec<(PortTensor, Vec<usize>)> {
    let mut graph_inputs = Vec::new();
    for name in &graph.inputs {
        let mut consumers: Vec<usize> = graph.tensors[name]
            .consumers
            .iter()
            .map(|&c| part_of[c])
            .collect();
        consumers.sort_unstable();
        consumers.dedup();
        graph_inputs.push((port(graph, name), consumers));
    }
    graph_inputs
}

/// Each graph output with the partition producing it.
fn graph_outputs(graph: &Graph, part_of: &[usize]) -> Result<Vec<(PortTensor, usize)>, PlanError> {
    let mut graph_outputs = Vec::new();
    for name in &graph.outputs {
        let producer = graph.tensors[name].producer.map(|l| part_of[l]);
        match producer {
            Some(p) => graph_outputs.push((port(graph, name), p)),
            None => {
                return Err(PlanError::Model(format!(
                    "graph output '{name}' is a graph input passed through; nothing to run"
                )))
            }
        }
    }
    Ok(graph_outputs)
}

/// Fills `part`'s inputs and outputs, in layer order, and adds the edges out of it.
fn add_ports(graph: &Graph, part_of: &[usize], part: &mut Partition, edges: &mut Vec<Edge>) {
    let id = part.id;
    for &l in &part.layers {
        for t in &graph.layers[l].inputs {
            let info = &graph.tensors[t];
            let outside = info.producer.is_none_or(|pl| part_of[pl] != id);
            if outside && !part.inputs.iter().any(|x| &x.name == t) {
                part.inputs.push(port(graph, t));
            }
        }
        for t in &graph.layers[l].outputs {
            let info = &graph.tensors[t];
            let mut to: Vec<usize> = info
                .consumers
                .iter()
                .map(|&c| part_of[c])
                .filter(|&q| q != id)
                .collect();
            to.sort_unstable();
            to.dedup();
            let is_graph_out = graph.outputs.contains(t);
            if !to.is_empty() || is_graph_out {
                part.outputs.push(port(graph, t));
            }
            for q in to {
                edges.push(Edge {
                    from: id,
                    to: q,
                    tensor: t.clone(),
                    bytes: info.bytes,
                });
            }
        }
    }
}
