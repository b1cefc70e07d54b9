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
use crate::onnx::{self, dtype, ModelProto, NodeProto, ValueInfoProto};
use crate::ops::{self, In};
use crate::tensor::Const;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    Ok(Model::zoo(name, input_size)?.graph)
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
        if s.len() != dims.len() {
            return Err(format!(
                "--input-shape for '{name}' has rank {} but the model declares rank {}",
                s.len(),
                dims.len()
            ));
        }
        for (i, (g, d)) in s.iter().zip(&dims).enumerate() {
            if let Some(d) = d {
                if *g as i64 != *d {
                    return Err(format!(
                        "--input-shape for '{name}' gives {g} for dimension {i}, but the model fixes it to {d}"
                    ));
                }
            }
        }
        return Ok((s.clone(), dt));
    }
    // An example for the message: the declared dimensions, symbolic ones by name.
    let example: Vec<String> = dims
        .iter()
        .zip(&params)
        .enumerate()
        .map(|(i, (d, p))| match (d, p) {
            (Some(v), _) => v.to_string(),
            (None, _) if i == 0 => "1".into(),
            (None, Some(p)) => format!("<{p}>"),
            (None, None) => "<?>".into(),
        })
        .collect();
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
                    example.join(",")
                ));
            }
        }
    }
    Ok((out, dt))
}

fn analyse(proto: ModelProto, name: &str, input_shapes: &InputShapes) -> Result<Model, String> {
    let g = proto.graph.as_ref().ok_or("the model has no graph")?;
    let opset = proto
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(9);

    // Constants: initializers first.
    let mut consts: HashMap<String, Const> = HashMap::new();
    for t in &g.initializer {
        let tname = t.name.clone().unwrap_or_default();
        consts.insert(tname.clone(), Const::from_proto(&tname, t)?);
    }

    // Activation tensors: shape, dtype, producer.
    let input_names: Vec<&str> = g
        .input
        .iter()
        .filter_map(|vi| vi.name.as_deref())
        .filter(|n| !consts.contains_key(*n))
        .collect();
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
    let mut tensors: BTreeMap<String, TensorInfo> = BTreeMap::new();
    let mut inputs = Vec::new();
    for vi in &g.input {
        let iname = vi.name.clone().unwrap_or_default();
        if consts.contains_key(&iname) {
            continue; // old exporters list initializers as inputs too
        }
        let (shape, dt) = input_shape(vi, input_shapes)?;
        let bytes = shape.iter().product::<usize>() as u64 * dtype::size_of(dt).unwrap_or(4);
        tensors.insert(
            iname.clone(),
            TensorInfo {
                name: iname.clone(),
                shape,
                dtype: dt,
                bytes,
                producer: None,
                consumers: vec![],
            },
        );
        inputs.push(iname);
    }
    if inputs.is_empty() {
        return Err("the graph has no inputs (other than weights)".into());
    }

    let order = topo_order(&g.node, &consts, &inputs)?;

    let mut layers: Vec<Layer> = Vec::new();
    let mut layer_node = Vec::new();
    let mut layer_consts = Vec::new();
    let mut used_names: HashSet<String> = HashSet::new();
    for &ni in &order {
        let node = &g.node[ni];
        let op = node.op_type.clone().unwrap_or_default();
        let mut lname = node
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{op}_{ni}"));
        if used_names.contains(&lname) {
            let base = lname.clone();
            let mut k = 1;
            while used_names.contains(&format!("{base}_{k}")) {
                k += 1;
            }
            lname = format!("{base}_{k}");
        }
        let label = format!("node '{lname}' ({op})");
        let domain = node.domain.as_deref().unwrap_or("");
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(format!(
                "{label}: operator {op} of domain '{domain}' is not supported (only the default ONNX domain)"
            ));
        }
        let a = Attrs::new(node, &label);
        let out_names: Vec<String> = node.output.clone();
        if op == "Constant" {
            let c = constant_node(&a, out_names.first().map(String::as_str).unwrap_or(""))?;
            consts.insert(c.proto.name.clone().unwrap_or_default(), c);
            continue;
        }
        let ins: Vec<Option<In>> = node
            .input
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
            .collect();
        let all_const = ins.iter().flatten().all(|x| x.konst.is_some());
        if op == "Shape"
            || (all_const && ins.iter().flatten().next().is_some())
            || op == "ConstantOfShape"
        {
            if let Some(folded) = ops::fold(&op, &a, &ins, &out_names, opset)? {
                for c in folded {
                    consts.insert(c.proto.name.clone().unwrap_or_default(), c);
                }
                continue;
            }
        }
        let outs = ops::infer(&op, &a, &ins, out_names.len(), opset)?;
        let flops = ops::flops(&op, &a, &ins, &outs);
        let idx = layers.len();
        let mut act_inputs = Vec::new();
        let mut wnames = Vec::new();
        let mut params_bytes = 0;
        let mut input_bytes = 0;
        for i in node.input.iter().filter(|i| !i.is_empty()) {
            if let Some(c) = consts.get(i) {
                if !wnames.contains(i) {
                    params_bytes += c.bytes();
                    wnames.push(i.clone());
                }
            } else if let Some(t) = tensors.get_mut(i) {
                if !act_inputs.contains(i) {
                    input_bytes += t.bytes;
                    t.consumers.push(idx);
                    act_inputs.push(i.clone());
                }
            }
        }
        let mut output_bytes = 0;
        let mut real_outputs = Vec::new();
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
            let bytes = shape.iter().product::<usize>() as u64 * dtype::size_of(dt).unwrap_or(4);
            if tensors.contains_key(oname) || consts.contains_key(oname) {
                return Err(format!(
                    "{label}: output '{oname}' is produced twice in the graph"
                ));
            }
            output_bytes += bytes;
            tensors.insert(
                oname.clone(),
                TensorInfo {
                    name: oname.clone(),
                    shape,
                    dtype: dt,
                    bytes,
                    producer: Some(idx),
                    consumers: vec![],
                },
            );
            real_outputs.push(oname.clone());
        }
        used_names.insert(lname.clone());
        layers.push(Layer {
            name: lname,
            op,
            inputs: act_inputs,
            outputs: real_outputs,
            output_shape: outs.first().map(|o| o.0.clone()).unwrap_or_default(),
            flops,
            params_bytes,
            output_bytes,
            input_bytes,
        });
        layer_node.push(ni);
        layer_consts.push(wnames);
    }

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
    if layers.is_empty() {
        return Err("the graph has no computing nodes".into());
    }
    // A BatchNormalization right after a convolution (its only reader) is folded into the
    // convolution's weights by every inference engine: it costs no arithmetic at run time.
    for i in 0..layers.len() {
        if layers[i].op != "BatchNormalization" {
            continue;
        }
        let Some(t) = layers[i].inputs.first().and_then(|t| tensors.get(t)) else {
            continue;
        };
        let after_conv = t
            .producer
            .is_some_and(|p| matches!(layers[p].op.as_str(), "Conv" | "ConvTranspose"));
        if after_conv && t.consumers.len() == 1 {
            layers[i].flops = 0;
        }
    }
    // Keep only constants that layers read.
    let used: HashSet<&String> = layer_consts.iter().flatten().collect();
    consts.retain(|k, _| used.contains(k));
    let graph = Graph {
        name: name.to_string(),
        layers,
        tensors,
        inputs,
        outputs,
    };
    Ok(Model {
        proto,
        graph,
        layer_node,
        layer_consts,
        consts,
        opset,
    })
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
    let mut indeg: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![vec![]; nodes.len()];
    for (i, d) in deps.iter().enumerate() {
        for &p in d {
            users[p].push(i);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..nodes.len())
        .filter(|&i| indeg[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(std::cmp::Reverse(u));
            }
        }
    }
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
