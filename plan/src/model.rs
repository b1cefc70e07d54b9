//! Loading a model: ONNX protobuf -> analysed [`Graph`] (constants folded, shapes inferred,
//! per-layer cost), keeping what the sub-model writer needs.
//!
//! An initializer that is also listed in `graph.input` (every one is, before IR version 4:
//! Caffe2 exports, the ONNX Model Zoo's "light" models that make weights with
//! ConstantOfShape from shape initializers) is a constant with its stored value, as ONNX
//! Runtime and tract use it: it is folded like any initializer and is not a graph input of
//! the [`Graph`]. `--input-shape` (an [`InputShapes`] entry) naming one is an error that
//! says so, rather than an override that would silently be ignored.

use crate::attr::Attrs;
use crate::error::PlanError;
use crate::graph::{Graph, Layer, TensorInfo};
use crate::onnx::{self, dtype, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::ops::{self, In};
use crate::tensor::{extent, Const, MAX_FOLD_BYTES};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::Path;

/// Shapes given by the user for graph inputs with symbolic dimensions.
pub type InputShapes = BTreeMap<String, Vec<usize>>;

/// An analysed model: the ONNX protobuf, its graph, and the constants its layers read.
#[derive(Debug, Clone)]
pub struct Model {
    /// The model as read.
    pub proto: ModelProto,
    /// The analysed graph.
    pub graph: Graph,
    /// For each layer, the index of its node in `proto.graph.node`.
    pub layer_node: Vec<usize>,
    /// For each layer, the names of the constant inputs (weights) it reads.
    pub layer_consts: Vec<Vec<String>>,
    /// Constants read by layers, by tensor name (initializers and folded values).
    pub consts: HashMap<String, Const>,
    /// The default-domain opset version.
    pub opset: i64,
}

/// Reads and analyses an ONNX model file.
pub fn load_graph(path: &Path, input_shapes: &InputShapes) -> Result<Graph, PlanError> {
    Ok(Model::load(path, input_shapes)?.graph)
}

/// Builds and analyses a zoo model.
pub fn zoo_graph(name: &str, input_size: usize) -> Result<Graph, PlanError> {
    Ok(Model::zoo_for_analysis(name, input_size)?.graph)
}

impl Model {
    /// Reads and analyses an ONNX model file; the model name is the file stem.
    pub fn load(path: &Path, input_shapes: &InputShapes) -> Result<Model, PlanError> {
        let proto = onnx::load_model(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Model::analyse(proto, &name, input_shapes).map_err(|e| match e {
            PlanError::Model(m) => PlanError::Model(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Builds and analyses a zoo model.
    pub fn zoo(name: &str, input_size: usize) -> Result<Model, PlanError> {
        let proto = crate::zoo::build(name, input_size)?;
        Model::analyse(proto, name, &InputShapes::new())
    }

    /// Builds and analyses a zoo model whose weights are zeros: its graph, costs and shapes
    /// without computing its random weights (what the simulator needs).
    pub fn zoo_for_analysis(name: &str, input_size: usize) -> Result<Model, PlanError> {
        let proto = crate::zoo::build_for_analysis(name, input_size)?;
        Model::analyse(proto, name, &InputShapes::new())
    }

    /// Analyses a decoded model.
    pub fn analyse(
        proto: ModelProto,
        name: &str,
        input_shapes: &InputShapes,
    ) -> Result<Model, PlanError> {
        analyse(proto, name, input_shapes).map_err(PlanError::Model)
    }

    /// The model with every graph input pinned to the static shape dicesim analysed (a
    /// symbolic batch fixed to 1, other symbolic dimensions as given with `--input-shape`),
    /// output shapes and intermediate shape hints dropped, nodes named as their layers: what
    /// an engine that needs static shapes and unique names (tract) runs as the reference.
    pub fn static_proto(&self) -> ModelProto {
        let mut proto = self.proto.clone();
        if let Some(g) = proto.graph.as_mut() {
            for vi in g.input.iter_mut() {
                let name = vi.name.clone().unwrap_or_default();
                let Some(t) = self.graph.tensors.get(&name) else {
                    continue; // a weight listed as an input
                };
                if let Some(onnx::type_proto::Value::TensorType(tt)) =
                    vi.r#type.as_mut().and_then(|t| t.value.as_mut())
                {
                    tt.shape = Some(onnx::static_shape(&t.shape));
                }
            }
            for vi in g.output.iter_mut() {
                if let Some(onnx::type_proto::Value::TensorType(tt)) =
                    vi.r#type.as_mut().and_then(|t| t.value.as_mut())
                {
                    tt.shape = None;
                }
            }
            g.value_info.clear();
            // Node names as the layers' (unique): engines such as tract refuse duplicates.
            let mut names: Vec<Option<String>> = vec![None; g.node.len()];
            for (l, &ni) in self.layer_node.iter().enumerate() {
                names[ni] = Some(self.graph.layers[l].name.clone());
            }
            for (i, (node, name)) in g.node.iter_mut().zip(names).enumerate() {
                node.name = Some(name.unwrap_or_else(|| format!("dicesim.folded.{i}")));
            }
        }
        proto
    }

    /// The ONNX node of layer `i`.
    pub fn node(&self, i: usize) -> &NodeProto {
        &self
            .proto
            .graph
            .as_ref()
            .expect("checked when loading")
            .node[self.layer_node[i]]
    }
}

/// Declared dimensions (`None` where not a positive value), their symbolic names, and the
/// element type.
type DeclaredShape = (Vec<Option<i64>>, Vec<Option<String>>, i32);

fn value_shape(vi: &ValueInfoProto) -> Option<DeclaredShape> {
    let t = match vi.r#type.as_ref()?.value.as_ref()? {
        onnx::type_proto::Value::TensorType(t) => t,
        _ => return None,
    };
    let shape = t.shape.as_ref()?;
    let mut dims = Vec::new();
    let mut params = Vec::new();
    for d in &shape.dim {
        match &d.value {
            Some(onnx::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                dims.push(Some(*v));
                params.push(None);
            }
            Some(onnx::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                dims.push(None);
                params.push(Some(p.clone()));
            }
            _ => {
                dims.push(None);
                params.push(None);
            }
        }
    }
    Some((dims, params, t.elem_type.unwrap_or(dtype::FLOAT)))
}

/// The static shape and element type dicesim uses for graph input `vi`: the shape given with
/// `--input-shape` (checked against the declared one), else the declared shape with a
/// symbolic batch fixed to 1.
fn input_shape(
    vi: &ValueInfoProto,
    input_shapes: &InputShapes,
) -> Result<(Vec<usize>, i32), String> {
    let name = vi.name.clone().unwrap_or_default();
    let Some((dims, params, dt)) = value_shape(vi) else {
        return match input_shapes.get(&name) {
            Some(s) => Ok((s.clone(), dtype::FLOAT)),
            None => Err(format!(
                "graph input '{name}' has no tensor shape; give one with --input-shape {name}=1,3,224,224 (or [model] input_shapes in a scenario)"
            )),
        };
    };
    if let Some(s) = input_shapes.get(&name) {
        check_given_shape(&name, s, &dims)?;
        return Ok((s.clone(), dt));
    }
    Ok((pinned_shape(&name, &dims, &params)?, dt))
}

/// Checks a shape given with `--input-shape` against the rank and fixed dimensions the model
/// declares.
fn check_given_shape(name: &str, given: &[usize], dims: &[Option<i64>]) -> Result<(), String> {
    if given.len() != dims.len() {
        return Err(format!(
            "--input-shape for '{name}' has rank {} but the model declares rank {}",
            given.len(),
            dims.len()
        ));
    }
    for (i, (g, d)) in given.iter().zip(dims).enumerate() {
        if let Some(d) = d {
            if i64::try_from(*g) != Ok(*d) {
                return Err(format!(
                    "--input-shape for '{name}' gives {g} for dimension {i}, but the model fixes it to {d}"
                ));
            }
        }
    }
    Ok(())
}

/// The declared shape with a symbolic batch dimension fixed to 1; any other dimension that is
/// not a fixed value is an error asking for `--input-shape`.
fn pinned_shape(
    name: &str,
    dims: &[Option<i64>],
    params: &[Option<String>],
) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        match d {
            Some(v) => out.push(*v as usize),
            None if i == 0 => out.push(1), // a symbolic batch dimension is fixed to 1
            None => {
                let what = params[i]
                    .as_ref()
                    .map(|p| format!("symbolic dimension '{p}'"))
                    .unwrap_or_else(|| "an unknown dimension".into());
                return Err(format!(
                    "graph input '{name}' has {what} at index {i}; give the shape with --input-shape {name}={} (or [model] input_shapes = {{ {name} = [...] }} in a scenario)",
                    shape_example(dims, params)
                ));
            }
        }
    }
    Ok(out)
}

/// An example shape for an error message: the declared dimensions, symbolic ones by name.
fn shape_example(dims: &[Option<i64>], params: &[Option<String>]) -> String {
    let example: Vec<String> = dims
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (d, p))| match (d, p) {
            (Some(v), _) => v.to_string(),
            (None, _) if i == 0 => "1".into(),
            (None, Some(p)) => format!("<{p}>"),
            (None, None) => "<?>".into(),
        })
        .collect();
    example.join(",")
}

/// Largest tensor the analysis accepts [bytes]: 1 TiB, more than any machine dicesim plans
/// for has; a larger shape is malformed (or overflows), and is refused with a message
/// before anything would allocate it.
pub const MAX_TENSOR_BYTES: u64 = 1 << 40;

/// Bytes of a tensor of `shape` and element type `dt` (4 per element for a type of no fixed
/// size), saturating: a shape too large to count is one [`check_size`] refuses.
fn tensor_bytes(shape: &[usize], dt: i32) -> u64 {
    (shape.iter()).fold(dtype::size_of(dt).unwrap_or(4), |b, &d| {
        b.saturating_mul(d as u64)
    })
}

/// Refuses a tensor larger than [`MAX_TENSOR_BYTES`]; `label` names where it comes from.
/// A zero-sized tensor is measured by its extent (a zero dimension counted as 1): its other
/// dimensions still enter products and strides.
fn check_size(label: &str, name: &str, shape: &[usize], dt: i32) -> Result<(), String> {
    let elem = dtype::size_of(dt).unwrap_or(4).max(1);
    let bytes = extent(shape).saturating_mul(elem);
    if bytes <= MAX_TENSOR_BYTES {
        return Ok(());
    }
    Err(format!(
        "{label}: tensor '{name}' of shape {shape:?} would take more than {} GiB (limit {} GiB): \
         refused (a malformed shape?)",
        bytes.min(u64::MAX - 1) >> 30,
        MAX_TENSOR_BYTES >> 30
    ))
}

/// An activation tensor without readers yet.
fn tensor_info(name: &str, shape: Vec<usize>, dt: i32, producer: Option<usize>) -> TensorInfo {
    TensorInfo {
        name: name.to_string(),
        bytes: tensor_bytes(&shape, dt),
        shape,
        dtype: dt,
        producer,
        consumers: vec![],
    }
}

fn analyse(proto: ModelProto, name: &str, input_shapes: &InputShapes) -> Result<Model, String> {
    let g = proto.graph.as_ref().ok_or("the model has no graph")?;
    let opset = default_opset(&proto);
    let consts = initializers(g)?;
    check_input_shape_names(g, &consts, input_shapes)?;
    let (tensors, inputs) = graph_inputs(g, &consts, input_shapes)?;
    let order = topo_order(&g.node, &consts, &inputs)?;
    let mut an = Analysis::new(consts, tensors, opset);
    for &ni in &order {
        an.add_node(ni, &g.node[ni])?;
    }
    let outputs = graph_outputs(g, &an.consts, &an.tensors)?;
    if an.layers.is_empty() {
        return Err("the graph has no computing nodes".into());
    }
    an.free_folded_batch_norms();
    Ok(an.into_model(proto, name, inputs, outputs))
}

/// The default-domain opset version (9 when the model imports none).
fn default_opset(proto: &ModelProto) -> i64 {
    proto
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(9)
}

/// The graph's initializers, by name.
fn initializers(g: &GraphProto) -> Result<HashMap<String, Const>, String> {
    let mut consts: HashMap<String, Const> = HashMap::new();
    for t in &g.initializer {
        let tname = t.name.clone().unwrap_or_default();
        consts.insert(tname.clone(), Const::from_proto(&tname, t)?);
    }
    Ok(consts)
}

/// Graph inputs that are not initializers: the model's real inputs.
fn input_names<'g>(g: &'g GraphProto, consts: &HashMap<String, Const>) -> Vec<&'g str> {
    g.input
        .iter()
        .filter_map(|vi| vi.name.as_deref())
        .filter(|n| !consts.contains_key(*n))
        .collect()
}

/// Every `--input-shape` name must be a real graph input (not an initializer listed as one).
fn check_input_shape_names(
    g: &GraphProto,
    consts: &HashMap<String, Const>,
    input_shapes: &InputShapes,
) -> Result<(), String> {
    let input_names = input_names(g, consts);
    for k in input_shapes.keys() {
        let listed = g
            .input
            .iter()
            .any(|vi| vi.name.as_deref() == Some(k.as_str()));
        if listed && consts.contains_key(k) {
            return Err(format!(
                "--input-shape names '{k}', an initializer (a constant) that the model also lists as a graph input, as models before IR version 4 list every weight; dicesim uses its stored value, so its shape cannot be set; the graph inputs are: {}",
                input_names.join(", ")
            ));
        }
        if !input_names.contains(&k.as_str()) {
            return Err(format!(
                "--input-shape names '{k}', but the graph inputs are: {}",
                input_names.join(", ")
            ));
        }
    }
    Ok(())
}

/// The graph inputs' tensors and names, in the order the model lists them.
fn graph_inputs(
    g: &GraphProto,
    consts: &HashMap<String, Const>,
    input_shapes: &InputShapes,
) -> Result<(BTreeMap<String, TensorInfo>, Vec<String>), String> {
    let mut tensors: BTreeMap<String, TensorInfo> = BTreeMap::new();
    let mut inputs = Vec::new();
    for vi in &g.input {
        let iname = vi.name.clone().unwrap_or_default();
        if consts.contains_key(&iname) {
            continue; // old exporters list initializers as inputs too
        }
        let (shape, dt) = input_shape(vi, input_shapes)?;
        check_size("graph input", &iname, &shape, dt)?;
        tensors.insert(iname.clone(), tensor_info(&iname, shape, dt, None));
        inputs.push(iname);
    }
    if inputs.is_empty() {
        return Err("the graph has no inputs (other than weights)".into());
    }
    Ok((tensors, inputs))
}

/// The graph outputs' names; each must be computed by a layer.
fn graph_outputs(
    g: &GraphProto,
    consts: &HashMap<String, Const>,
    tensors: &BTreeMap<String, TensorInfo>,
) -> Result<Vec<String>, String> {
    let mut outputs = Vec::new();
    for vi in &g.output {
        let oname = vi.name.clone().unwrap_or_default();
        if consts.contains_key(&oname) {
            return Err(format!("graph output '{oname}' is a constant; dicesim needs outputs computed from the inputs"));
        }
        if !tensors.contains_key(&oname) {
            return Err(format!(
                "graph output '{oname}' is not produced by any node"
            ));
        }
        outputs.push(oname);
    }
    Ok(outputs)
}

/// A node's inputs as shape inference sees them (`None` for an omitted optional input or a
/// tensor not known yet).
fn node_inputs<'c>(
    node: &NodeProto,
    consts: &'c HashMap<String, Const>,
    tensors: &BTreeMap<String, TensorInfo>,
) -> Vec<Option<In<'c>>> {
    node.input
        .iter()
        .map(|i| {
            if i.is_empty() {
                None
            } else if let Some(c) = consts.get(i) {
                Some(In {
                    shape: c.shape.clone(),
                    dtype: c.dtype,
                    konst: Some(c),
                })
            } else {
                tensors.get(i).map(|t| In {
                    shape: t.shape.clone(),
                    dtype: t.dtype,
                    konst: None,
                })
            }
        })
        .collect()
}

/// Whether to try folding a node into constants: Shape and ConstantOfShape always (they
/// need only shapes), any other node when it has inputs and all are constants.
fn may_fold(op: &str, ins: &[Option<In>]) -> bool {
    let all_const = ins.iter().flatten().all(|x| x.konst.is_some());
    op == "Shape" || (all_const && ins.iter().flatten().next().is_some()) || op == "ConstantOfShape"
}

/// Only nodes of the default ONNX domain are understood.
fn check_domain(node: &NodeProto, op: &str, label: &str) -> Result<(), String> {
    let domain = node.domain.as_deref().unwrap_or("");
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Err(format!(
            "{label}: operator {op} of domain '{domain}' is not supported (only the default ONNX domain)"
        ));
    }
    Ok(())
}

/// What a layer reads: activation inputs, weight names, and their bytes.
#[derive(Default)]
struct LayerInputs {
    activations: Vec<String>,
    weights: Vec<String>,
    params_bytes: u64,
    input_bytes: u64,
}

/// What a layer writes: its non-empty outputs and their bytes.
struct LayerOutputs {
    names: Vec<String>,
    bytes: u64,
}

/// The analysis in progress: nodes are added in topological order; constant ones fold into
/// `consts`, the others become layers.
struct Analysis {
    consts: HashMap<String, Const>,
    tensors: BTreeMap<String, TensorInfo>,
    layers: Vec<Layer>,
    layer_node: Vec<usize>,
    layer_consts: Vec<Vec<String>>,
    used_names: HashSet<String>,
    opset: i64,
    /// Bytes made by folding ConstantOfShape so far (at most [`MAX_FOLD_BYTES`] in all).
    filled_bytes: u64,
}

impl Analysis {
    fn new(
        consts: HashMap<String, Const>,
        tensors: BTreeMap<String, TensorInfo>,
        opset: i64,
    ) -> Analysis {
        Analysis {
            consts,
            tensors,
            layers: Vec::new(),
            layer_node: Vec::new(),
            layer_consts: Vec::new(),
            used_names: HashSet::new(),
            opset,
            filled_bytes: 0,
        }
    }

    /// Adds node `ni`: a constant, values folded from constants, or a layer.
    fn add_node(&mut self, ni: usize, node: &NodeProto) -> Result<(), String> {
        let op = node.op_type.clone().unwrap_or_default();
        let lname = self.layer_name(node, ni, &op);
        let label = format!("node '{lname}' ({op})");
        check_domain(node, &op, &label)?;
        let a = Attrs::new(node, &label);
        let out_names = &node.output;
        if op == "Constant" {
            let c = constant_node(&a, out_names.first().map(String::as_str).unwrap_or(""))?;
            return self.add_consts(&label, vec![c]);
        }
        let ins = node_inputs(node, &self.consts, &self.tensors);
        if may_fold(&op, &ins) {
            if op == "ConstantOfShape" {
                count_fill(&mut self.filled_bytes, &label, fill_bytes(&a, &ins))?;
            }
            if let Some(folded) = ops::fold(&op, &a, &ins, out_names, self.opset)? {
                return self.add_consts(&label, folded);
            }
        }
        let outs = ops::infer(&op, &a, &ins, out_names.len(), self.opset)?;
        for (k, (shape, dt)) in outs.iter().enumerate() {
            let oname = out_names.get(k).map(String::as_str).unwrap_or("");
            check_size(&label, oname, shape, *dt)?;
        }
        let flops = ops::flops(&op, &a, &ins, &outs);
        let class = crate::opclass::classify(&op, &a, &ins);
        let idx = self.layers.len();
        let reads = self.connect_inputs(node, idx);
        let writes = self.add_outputs(out_names, &outs, idx, &label)?;
        self.used_names.insert(lname.clone());
        self.layers.push(Layer {
            name: lname,
            op,
            class,
            inputs: reads.activations,
            outputs: writes.names,
            output_shape: outs.first().map(|o| o.0.clone()).unwrap_or_default(),
            flops,
            params_bytes: reads.params_bytes,
            output_bytes: writes.bytes,
            input_bytes: reads.input_bytes,
        });
        self.layer_node.push(ni);
        self.layer_consts.push(reads.weights);
        Ok(())
    }

    /// The node's name, else `<op>_<index>`; a name already taken gets the first free suffix
    /// `_1`, `_2`, ...
    fn layer_name(&self, node: &NodeProto, ni: usize, op: &str) -> String {
        let lname = node
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{op}_{ni}"));
        if !self.used_names.contains(&lname) {
            return lname;
        }
        let mut k = 1;
        while self.used_names.contains(&format!("{lname}_{k}")) {
            k += 1;
        }
        format!("{lname}_{k}")
    }

    /// Adds constants (a Constant node's value, folded values), refusing any whose extent
    /// exceeds [`MAX_TENSOR_BYTES`], as for activations.
    fn add_consts(&mut self, label: &str, folded: Vec<Const>) -> Result<(), String> {
        for c in folded {
            let name = c.proto.name.clone().unwrap_or_default();
            check_size(label, &name, &c.shape, c.dtype)?;
            self.consts.insert(name, c);
        }
        Ok(())
    }

    /// Records layer `idx` as a reader of its activation inputs; sums the bytes of its
    /// distinct activations and weights.
    fn connect_inputs(&mut self, node: &NodeProto, idx: usize) -> LayerInputs {
        let mut r = LayerInputs::default();
        for i in node.input.iter().filter(|i| !i.is_empty()) {
            if let Some(c) = self.consts.get(i) {
                if !r.weights.contains(i) {
                    r.params_bytes = r.params_bytes.saturating_add(c.bytes());
                    r.weights.push(i.clone());
                }
            } else if let Some(t) = self.tensors.get_mut(i) {
                if !r.activations.contains(i) {
                    r.input_bytes = r.input_bytes.saturating_add(t.bytes);
                    t.consumers.push(idx);
                    r.activations.push(i.clone());
                }
            }
        }
        r
    }

    /// Adds the tensors layer `idx` writes, with the inferred shapes `outs`.
    fn add_outputs(
        &mut self,
        out_names: &[String],
        outs: &[(Vec<usize>, i32)],
        idx: usize,
        label: &str,
    ) -> Result<LayerOutputs, String> {
        let mut w = LayerOutputs {
            names: Vec::new(),
            bytes: 0,
        };
        for (k, oname) in out_names.iter().enumerate() {
            if oname.is_empty() {
                continue;
            }
            let (shape, dt) = outs.get(k).cloned().ok_or_else(|| {
                format!(
                    "{label}: has {} outputs, dicesim infers only {}",
                    out_names.len(),
                    outs.len()
                )
            })?;
            if self.tensors.contains_key(oname) || self.consts.contains_key(oname) {
                return Err(format!(
                    "{label}: output '{oname}' is produced twice in the graph"
                ));
            }
            let t = tensor_info(oname, shape, dt, Some(idx));
            w.bytes = w.bytes.saturating_add(t.bytes);
            self.tensors.insert(oname.clone(), t);
            w.names.push(oname.clone());
        }
        Ok(w)
    }

    /// A BatchNormalization right after a convolution (its only reader) is folded into the
    /// convolution's weights by every inference engine: it costs no arithmetic at run time.
    fn free_folded_batch_norms(&mut self) {
        let layers = &mut self.layers;
        for i in 0..layers.len() {
            if layers[i].op != "BatchNormalization" {
                continue;
            }
            let Some(t) = layers[i].inputs.first().and_then(|t| self.tensors.get(t)) else {
                continue;
            };
            let after_conv = t
                .producer
                .is_some_and(|p| matches!(layers[p].op.as_str(), "Conv" | "ConvTranspose"));
            if after_conv && t.consumers.len() == 1 {
                layers[i].flops = 0;
            }
        }
    }

    /// The model, keeping only the constants that layers read.
    fn into_model(
        mut self,
        proto: ModelProto,
        name: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
    ) -> Model {
        let used: HashSet<&String> = self.layer_consts.iter().flatten().collect();
        self.consts.retain(|k, _| used.contains(k));
        let mut graph = Graph {
            name: name.to_string(),
            layers: self.layers,
            tensors: self.tensors,
            inputs,
            outputs,
        };
        crate::opclass::mark_fusable(&mut graph);
        Model {
            proto,
            graph,
            layer_node: self.layer_node,
            layer_consts: self.layer_consts,
            consts: self.consts,
            opset: self.opset,
        }
    }
}

/// Counts the bytes a ConstantOfShape fold would make against [`MAX_FOLD_BYTES`] for the
/// model (`filled`: the bytes so far), before they are made.
fn count_fill(filled: &mut u64, label: &str, bytes: u64) -> Result<(), String> {
    *filled = filled.saturating_add(bytes);
    if *filled <= MAX_FOLD_BYTES {
        return Ok(());
    }
    Err(format!(
        "{label}: a constant of {} MiB would bring the constants made by ConstantOfShape beyond the {} MiB dicesim folds in a model: refused",
        bytes >> 20,
        MAX_FOLD_BYTES >> 20
    ))
}

/// Bytes a ConstantOfShape over `ins` fills (its shape input, the type of its `value`).
fn fill_bytes(a: &Attrs, ins: &[Option<In>]) -> u64 {
    let shape = ins.first().and_then(Option::as_ref).and_then(|x| x.konst);
    let shape: Vec<usize> = (shape.and_then(Const::ints).unwrap_or_default().iter())
        .map(|&d| d.max(0) as usize)
        .collect();
    let dt = a.tensor("value").and_then(|t| t.data_type);
    let elem = dtype::size_of(dt.unwrap_or(dtype::FLOAT)).unwrap_or(4);
    extent(&shape).saturating_mul(elem)
}

fn constant_node(a: &Attrs, out: &str) -> Result<Const, String> {
    if let Some(t) = a.tensor("value") {
        return Const::from_proto(out, t);
    }
    if a.has("value_float") {
        return Ok(Const::from_floats(
            out,
            vec![],
            vec![a.float("value_float", 0.0) as f64],
        ));
    }
    if let Some(v) = a.floats("value_floats") {
        return Ok(Const::from_floats(
            out,
            vec![v.len()],
            v.iter().map(|&f| f as f64).collect(),
        ));
    }
    if a.has("value_int") {
        return Ok(Const::from_ints(out, vec![], vec![a.int("value_int", 0)]));
    }
    if let Some(v) = a.ints("value_ints") {
        return Ok(Const::from_ints(out, vec![v.len()], v));
    }
    Err(a.err("Constant without a supported value attribute (value, value_float(s), value_int(s))"))
}

/// Nodes in a topological order: the file's order when it is one (ONNX requires it), else
/// Kahn's algorithm preferring lower indices.
fn topo_order(
    nodes: &[NodeProto],
    consts: &HashMap<String, Const>,
    inputs: &[String],
) -> Result<Vec<usize>, String> {
    let deps = node_deps(nodes, consts, inputs)?;
    let (order, indeg) = kahn_lowest_first(&deps);
    if order.len() != nodes.len() {
        let stuck: Vec<String> = (0..nodes.len())
            .filter(|&i| indeg[i] > 0)
            .take(5)
            .map(|i| nodes[i].name.clone().unwrap_or_else(|| format!("#{i}")))
            .collect();
        return Err(format!(
            "the graph has a cycle through nodes {}",
            stuck.join(", ")
        ));
    }
    Ok(order)
}

/// For each node, the nodes producing its inputs; an input that no node, constant or graph
/// input provides is an error.
fn node_deps(
    nodes: &[NodeProto],
    consts: &HashMap<String, Const>,
    inputs: &[String],
) -> Result<Vec<Vec<usize>>, String> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() {
                producer.insert(o.as_str(), i);
            }
        }
    }
    let known: HashSet<&str> = consts
        .keys()
        .map(String::as_str)
        .chain(inputs.iter().map(String::as_str))
        .collect();
    let mut deps: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let nm = n.name.clone().unwrap_or_else(|| format!("#{i}"));
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&p) = producer.get(inp.as_str()) {
                deps[i].push(p);
            } else if !known.contains(inp.as_str()) {
                return Err(format!(
                    "node '{nm}' ({}) reads '{inp}', which no node, initializer or graph input provides",
                    n.op_type.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    Ok(deps)
}

/// Kahn's algorithm taking the lowest ready index first; also returns the in-degrees left
/// (non-zero for nodes on or behind a cycle).
fn kahn_lowest_first(deps: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
    let n = deps.len();
    let mut indeg: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![vec![]; n];
    for (i, d) in deps.iter().enumerate() {
        for &p in d {
            users[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    (order, indeg)
}
