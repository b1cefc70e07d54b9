//! Writing one ONNX sub-model per partition, and `plan.json`.

use crate::error::PlanError;
use crate::model::Model;
use crate::onnx::{self, ModelProto, ValueInfoProto};
use crate::partition::{Plan, PortTensor};
use serde::Serialize;
use std::path::Path;

fn value_info(model: &Model, t: &PortTensor) -> ValueInfoProto {
    onnx::tensor_value_info(&t.name, &t.shape, model.graph.tensors[&t.name].dtype)
}

/// Builds the ONNX sub-model of partition `p`. Weights are shared with `model` (their bytes
/// are reference-counted, not copied).
pub fn sub_model(model: &Model, plan: &Plan, p: usize) -> ModelProto {
    let part = &plan.partitions[p];
    let mut nodes = Vec::with_capacity(part.layers.len());
    let mut inits = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &l in &part.layers {
        let mut node = model.node(l).clone();
        node.name = Some(model.graph.layers[l].name.clone());
        nodes.push(node);
        for c in &model.layer_consts[l] {
            if seen.insert(c.as_str()) {
                inits.push(model.consts[c].proto.clone());
            }
        }
    }
    let mut input: Vec<ValueInfoProto> = part.inputs.iter().map(|t| value_info(model, t)).collect();
    // Before IR version 4 every initializer must also be a graph input (as Caffe2-era models
    // such as the ONNX Model Zoo's list them); checkers and runtimes reject the model otherwise.
    if model.proto.ir_version.unwrap_or(0) < 4 {
        input.extend(inits.iter().map(|t| {
            let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            onnx::tensor_value_info(
                t.name.as_deref().unwrap_or(""),
                &shape,
                t.data_type.unwrap_or(1),
            )
        }));
    }
    let graph = onnx::GraphProto {
        node: nodes,
        name: Some(format!("{}_part{p}", model.graph.name)),
        initializer: inits,
        doc_string: Some(format!(
            "dicesim partition {p} of {} on {}",
            model.graph.name, part.unit
        )),
        input,
        output: part.outputs.iter().map(|t| value_info(model, t)).collect(),
        ..Default::default()
    };
    ModelProto {
        ir_version: model.proto.ir_version,
        opset_import: model.proto.opset_import.clone(),
        producer_name: Some("dicesim".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..Default::default()
    }
}

/// `plan.json`: what each sub-model is, where its tensors come from and go.
#[derive(Debug, Serialize)]
pub struct PlanFile {
    /// Model name.
    pub model: String,
    /// Partitions in topological order.
    pub partitions: Vec<PlanPartition>,
    /// Producer -> consumer edges.
    pub edges: Vec<crate::partition::Edge>,
    /// Partition ids in topological order.
    pub order: Vec<usize>,
    /// Graph inputs and the partitions that read them.
    pub graph_inputs: Vec<PlanPort>,
    /// Graph outputs and the partition that produces each.
    pub graph_outputs: Vec<PlanPort>,
}

/// One partition in `plan.json`.
#[derive(Debug, Serialize)]
pub struct PlanPartition {
    /// Id (index in topological order).
    pub id: usize,
    /// Compute unit `"<device>.<unit>"`.
    pub unit: String,
    /// Sub-model file name, relative to `plan.json`.
    pub file: String,
    /// Layer names.
    pub layers: Vec<String>,
    /// FLOPs of its layers.
    pub flops: u64,
    /// Weight bytes of its layers.
    pub params_bytes: u64,
    /// Input tensors.
    pub inputs: Vec<PlanTensor>,
    /// Output tensors.
    pub outputs: Vec<PlanTensor>,
}

/// A tensor in `plan.json`.
#[derive(Debug, Serialize)]
pub struct PlanTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type name (`float32`, ...).
    pub dtype: &'static str,
    /// Bytes.
    pub bytes: u64,
}

/// A graph input or output in `plan.json`.
#[derive(Debug, Serialize)]
pub struct PlanPort {
    /// The tensor.
    #[serde(flatten)]
    pub tensor: PlanTensor,
    /// Partitions involved (consumers of an input; the producer of an output).
    pub partitions: Vec<usize>,
}

/// Sub-model file name of partition `p`.
pub fn part_file_name(p: usize) -> String {
    format!("part{p}.onnx")
}

impl PlanFile {
    /// Describes `plan` for `model`.
    pub fn new(model: &Model, plan: &Plan) -> PlanFile {
        let g = &model.graph;
        let tensor = |t: &PortTensor| PlanTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: onnx::dtype::name(g.tensors[&t.name].dtype),
            bytes: t.bytes,
        };
        PlanFile {
            model: g.name.clone(),
            partitions: plan
                .partitions
                .iter()
                .map(|p| PlanPartition {
                    id: p.id,
                    unit: p.unit.clone(),
                    file: part_file_name(p.id),
                    layers: p.layers.iter().map(|&l| g.layers[l].name.clone()).collect(),
                    flops: sum(p.layers.iter().map(|&l| g.layers[l].flops)),
                    params_bytes: sum(p.layers.iter().map(|&l| g.layers[l].params_bytes)),
                    inputs: p.inputs.iter().map(tensor).collect(),
                    outputs: p.outputs.iter().map(tensor).collect(),
                })
                .collect(),
            edges: plan.edges.clone(),
            order: (0..plan.partitions.len()).collect(),
            graph_inputs: plan
                .graph_inputs
                .iter()
                .map(|(t, c)| PlanPort {
                    tensor: tensor(t),
                    partitions: c.clone(),
                })
                .collect(),
            graph_outputs: plan
                .graph_outputs
                .iter()
                .map(|(t, p)| PlanPort {
                    tensor: tensor(t),
                    partitions: vec![*p],
                })
                .collect(),
        }
    }
}

/// Writes `part<i>.onnx` for every partition and `plan.json` into `dir` (created if needed).
pub fn write_split(model: &Model, plan: &Plan, dir: &Path) -> Result<PlanFile, PlanError> {
    std::fs::create_dir_all(dir).map_err(|e| PlanError::io(dir, e))?;
    for p in 0..plan.partitions.len() {
        let sub = sub_model(model, plan, p);
        onnx::save_model(&sub, &dir.join(part_file_name(p)))?;
    }
    let pf = PlanFile::new(model, plan);
    let path = dir.join("plan.json");
    let json = serde_json::to_string_pretty(&pf).expect("plan serialises");
    std::fs::write(&path, json + "\n").map_err(|e| PlanError::io(&path, e))?;
    Ok(pf)
}

/// A saturating sum (per-layer counts saturate at `u64::MAX`).
fn sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}
