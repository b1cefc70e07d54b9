//! A small ONNX graph builder for the zoo: it emits nodes, initializers with deterministic
//! random weights, and the static shape of every tensor (NCHW, batch 1).
//!
//! Naming: a node is named by the torchvision module path that produces it; a second call of
//! the same module gets `_1`, a third `_2` (like torch.fx). A node's output tensor is
//! `<node>_out`; weights are `<node>.weight` / `<node>.bias` (BatchNorm adds
//! `.running_mean` / `.running_var`); constant operands that are not parameters are
//! `<node>.min`, `<node>.max` (Clip), `<node>.scales` and `<node>.sizes` (Resize).
//!
//! Shape errors (an input size too small for the network) do not abort the build at once:
//! the first one is remembered, shapes are clamped to 1 so that building can go on, and
//! [`Builder::finish`] returns it.

use crate::error::PlanError;
use crate::onnx::attrs::{float, int, ints, string};
use crate::onnx::{
    dtype, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

/// ONNX opset of every zoo model.
pub const OPSET: i64 = 13;
/// ONNX IR version of every zoo model.
pub const IR_VERSION: i64 = 8;

/// A convolution's hyper-parameters (square kernel, symmetric padding).
#[derive(Debug, Clone, Copy)]
pub struct Conv {
    out: i64,
    k: i64,
    stride: i64,
    pad: i64,
    groups: i64,
    dilation: i64,
    bias: bool,
}

impl Conv {
    /// `out` channels, `k`x`k` kernel, stride 1, no padding, no groups, no bias.
    pub fn new(out: i64, k: i64) -> Self {
        Conv {
            out,
            k,
            stride: 1,
            pad: 0,
            groups: 1,
            dilation: 1,
            bias: false,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: i64) -> Self {
        self.stride = s;
        self
    }
    /// Sets the padding on every side.
    pub fn pad(mut self, p: i64) -> Self {
        self.pad = p;
        self
    }
    /// Sets the group count.
    pub fn groups(mut self, g: i64) -> Self {
        self.groups = g;
        self
    }
    /// Sets the dilation.
    #[allow(dead_code)]
    pub fn dilation(mut self, d: i64) -> Self {
        self.dilation = d;
        self
    }
    /// Gives the convolution a bias.
    pub fn bias(mut self) -> Self {
        self.bias = true;
        self
    }
}

/// A pooling window (square), with pads `[top, left, bottom, right]`.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    k: i64,
    stride: i64,
    pads: [i64; 4],
    ceil: bool,
}

impl Pool {
    /// A `k`x`k` window with stride `k`, no padding, floor mode.
    pub fn new(k: i64) -> Self {
        Pool {
            k,
            stride: k,
            pads: [0; 4],
            ceil: false,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: i64) -> Self {
        self.stride = s;
        self
    }
    /// Pads every side by `p`.
    pub fn pad(mut self, p: i64) -> Self {
        self.pads = [p; 4];
        self
    }
    /// Sets `[top, left, bottom, right]` pads.
    pub fn pads(mut self, pads: [i64; 4]) -> Self {
        self.pads = pads;
        self
    }
    /// Rounds the output size up (PyTorch `ceil_mode=True`).
    pub fn ceil(mut self) -> Self {
        self.ceil = true;
        self
    }
}

/// Builds one zoo model.
pub struct Builder {
    model: String,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    shapes: HashMap<String, Vec<i64>>,
    /// Intermediate tensors, in creation order (for `value_info`).
    tensors: Vec<String>,
    node_names: HashSet<String>,
    err: Option<String>,
    /// Weights are zeros (allocated, never written: the pages stay untouched), for a graph
    /// that is only analysed; otherwise seeded uniform values.
    zero_weights: bool,
}

/// The graph input's name.
pub const INPUT: &str = "input";

impl Builder {
    /// Starts model `model` with input `input` of shape `[1, 3, size, size]`.
    pub fn new(model: &str, size: usize) -> (Self, String) {
        let mut b = Builder {
            model: model.to_string(),
            nodes: Vec::new(),
            inits: Vec::new(),
            shapes: HashMap::new(),
            tensors: Vec::new(),
            node_names: HashSet::new(),
            err: None,
            zero_weights: false,
        };
        b.shapes
            .insert(INPUT.to_string(), vec![1, 3, size as i64, size as i64]);
        (b, INPUT.to_string())
    }

    /// Weights as zeros instead of seeded random values: a model only analysed (its graph,
    /// FLOPs and bytes), built without computing hundreds of MB of random numbers.
    pub fn with_zero_weights(mut self) -> Self {
        self.zero_weights = true;
        self
    }

    /// The shape of tensor `t`.
    pub fn shape(&self, t: &str) -> &[i64] {
        &self.shapes[t]
    }

    /// The channel count (dimension 1) of tensor `t`.
    pub fn channels(&self, t: &str) -> i64 {
        self.shapes[t][1]
    }

    fn fail(&mut self, msg: String) {
        if self.err.is_none() {
            self.err = Some(msg);
        }
    }

    /// `base`, or `base_1`, `base_2`, ... if taken.
    fn unique(&self, base: &str) -> String {
        if !self.node_names.contains(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !self.node_names.contains(n))
            .expect("an unbounded range always yields a free name")
    }

    /// Adds a node with one output of shape `shape`; returns the output tensor.
    fn node(
        &mut self,
        name: &str,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
        shape: Vec<i64>,
    ) -> String {
        let name = self.unique(name);
        let out = format!("{name}_out");
        self.node_names.insert(name.clone());
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs,
            ..Default::default()
        });
        self.shapes.insert(out.clone(), shape);
        self.tensors.push(out.clone());
        out
    }

    /// The name the next node based on `base` will get (to name its weights).
    fn next_name(&self, base: &str) -> String {
        self.unique(base)
    }

    fn seed(&self, tensor: &str) -> u64 {
        let mut h = Fnv1a::new();
        h.write(self.model.as_bytes());
        h.write(b"/");
        h.write(tensor.as_bytes());
        h.finish()
    }

    /// Adds a float initializer of shape `dims` with values uniform in `[lo, hi)`.
    fn init_uniform(&mut self, name: &str, dims: &[i64], lo: f64, hi: f64) -> String {
        let n: i64 = dims.iter().product();
        let raw = if self.zero_weights {
            // calloc'd: the kernel maps zero pages lazily, so nothing is touched
            Bytes::from(vec![0u8; n as usize * 4])
        } else {
            uniform_f32_le(self.seed(name), n as usize, lo, hi)
        };
        self.inits.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(dtype::FLOAT),
            name: Some(name.to_string()),
            raw_data: Some(raw),
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a float initializer with the given values.
    fn init_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.inits.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(dtype::FLOAT),
            name: Some(name.to_string()),
            raw_data: Some(Bytes::from(raw)),
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds an int64 initializer with the given values.
    fn init_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.inits.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(dtype::INT64),
            name: Some(name.to_string()),
            raw_data: Some(Bytes::from(raw)),
            ..Default::default()
        });
        name.to_string()
    }

    /// Output size of a window `k` with stride `s` over `n` padded by `p0` before and `p1`
    /// after.
    fn window_out(
        &mut self,
        node: &str,
        n: i64,
        (k, s): (i64, i64),
        (p0, p1): (i64, i64),
        ceil: bool,
    ) -> i64 {
        let span = n + p0 + p1 - k;
        if span < 0 {
            self.fail(format!(
                "model {}: the input size is too small: node {node} gets a {n}-wide feature \
                 map, narrower than its {k}-wide window",
                self.model
            ));
            return 1;
        }
        if ceil {
            let mut o = (span + s - 1) / s + 1;
            // PyTorch (and ONNX since opset 19): the last window must start inside the
            // input or its left padding.
            if (o - 1) * s >= n + p0 {
                o -= 1;
            }
            o
        } else {
            span / s + 1
        }
    }

    /// Conv2d: weight `[out, in/groups, k, k]` He-uniform, optional bias.
    pub fn conv(&mut self, name: &str, x: &str, c: Conv) -> String {
        let name = self.next_name(name);
        let sh = self.shape(x).to_vec();
        let cin = sh[1];
        if cin % c.groups != 0 || c.out % c.groups != 0 {
            self.fail(format!(
                "model {}: node {name}: channels {cin} -> {} not divisible by {} groups",
                self.model, c.out, c.groups
            ));
        }
        let fan_in = cin / c.groups * c.k * c.k;
        let ke = c.dilation * (c.k - 1) + 1;
        let h = self.window_out(&name, sh[2], (ke, c.stride), (c.pad, c.pad), false);
        let w = self.window_out(&name, sh[3], (ke, c.stride), (c.pad, c.pad), false);
        let bound = (6.0 / fan_in as f64).sqrt();
        let wname = self.init_uniform(
            &format!("{name}.weight"),
            &[c.out, cin / c.groups, c.k, c.k],
            -bound,
            bound,
        );
        let mut inputs = vec![x.to_string(), wname];
        if c.bias {
            let bb = 1.0 / (fan_in as f64).sqrt();
            inputs.push(self.init_uniform(&format!("{name}.bias"), &[c.out], -bb, bb));
        }
        let attrs = vec![
            ints("dilations", &[c.dilation, c.dilation]),
            int("group", c.groups),
            ints("kernel_shape", &[c.k, c.k]),
            ints("pads", &[c.pad; 4]),
            ints("strides", &[c.stride, c.stride]),
        ];
        self.node(&name, "Conv", inputs, attrs, vec![1, c.out, h, w])
    }

    /// BatchNormalization (inference) with random statistics near identity: gamma
    /// `U(0.8, 1.2)`.
    pub fn batchnorm(&mut self, name: &str, x: &str, eps: f32) -> String {
        self.batchnorm_gamma(name, x, eps, (0.8, 1.2))
    }

    /// BatchNormalization closing a residual branch: gamma `U(0.2, 0.3)`. In eval mode
    /// BatchNorm does not normalise, so with gamma near 1 every residual add would roughly
    /// double the activations' variance (ResNet-101 logits reached 1e7); a small gamma on
    /// the branch keeps them in range, in the spirit of torchvision's
    /// `zero_init_residual`.
    pub fn batchnorm_residual(&mut self, name: &str, x: &str, eps: f32) -> String {
        self.batchnorm_gamma(name, x, eps, (0.2, 0.3))
    }

    fn batchnorm_gamma(&mut self, name: &str, x: &str, eps: f32, gamma: (f64, f64)) -> String {
        let name = self.next_name(name);
        let c = self.channels(x);
        let inputs = vec![
            x.to_string(),
            self.init_uniform(&format!("{name}.weight"), &[c], gamma.0, gamma.1),
            self.init_uniform(&format!("{name}.bias"), &[c], -0.1, 0.1),
            self.init_uniform(&format!("{name}.running_mean"), &[c], -0.1, 0.1),
            self.init_uniform(&format!("{name}.running_var"), &[c], 0.8, 1.2),
        ];
        let shape = self.shape(x).to_vec();
        self.node(
            &name,
            "BatchNormalization",
            inputs,
            vec![float("epsilon", eps)],
            shape,
        )
    }

    fn unary(&mut self, name: &str, op: &str, x: &str, attrs: Vec<AttributeProto>) -> String {
        let shape = self.shape(x).to_vec();
        self.node(name, op, vec![x.to_string()], attrs, shape)
    }

    /// Relu.
    pub fn relu(&mut self, name: &str, x: &str) -> String {
        self.unary(name, "Relu", x, vec![])
    }

    /// LeakyRelu with slope `alpha`.
    pub fn leaky_relu(&mut self, name: &str, x: &str, alpha: f32) -> String {
        self.unary(name, "LeakyRelu", x, vec![float("alpha", alpha)])
    }

    /// Sigmoid.
    pub fn sigmoid(&mut self, name: &str, x: &str) -> String {
        self.unary(name, "Sigmoid", x, vec![])
    }

    /// Clip to `[min, max]`, bounds as scalar initializer inputs (opset 11+ style).
    pub fn clip(&mut self, name: &str, x: &str, min: f32, max: f32) -> String {
        let name = self.next_name(name);
        let lo = self.init_f32(&format!("{name}.min"), &[], &[min]);
        let hi = self.init_f32(&format!("{name}.max"), &[], &[max]);
        let shape = self.shape(x).to_vec();
        self.node(&name, "Clip", vec![x.to_string(), lo, hi], vec![], shape)
    }

    /// ReLU6 as Clip(0, 6).
    pub fn relu6(&mut self, name: &str, x: &str) -> String {
        self.clip(name, x, 0.0, 6.0)
    }

    /// SiLU as `x * sigmoid(x)`: nodes `<name>.sigmoid` and `<name>.mul`.
    pub fn silu(&mut self, name: &str, x: &str) -> String {
        let s = self.sigmoid(&format!("{name}.sigmoid"), x);
        self.mul(&format!("{name}.mul"), x, &s)
    }

    fn binary(&mut self, name: &str, op: &str, a: &str, b: &str) -> String {
        let sa = self.shape(a).to_vec();
        let sb = self.shape(b).to_vec();
        // Multidirectional broadcasting of equal-rank shapes (all the zoo needs).
        let shape = if sa.len() == sb.len()
            && sa
                .iter()
                .zip(&sb)
                .all(|(x, y)| x == y || *x == 1 || *y == 1)
        {
            sa.iter().zip(&sb).map(|(x, y)| *x.max(y)).collect()
        } else {
            self.fail(format!(
                "model {}: node {name}: shapes {sa:?} and {sb:?} do not broadcast",
                self.model
            ));
            sa
        };
        self.node(name, op, vec![a.to_string(), b.to_string()], vec![], shape)
    }

    /// Elementwise Add.
    pub fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.binary(name, "Add", a, b)
    }

    /// Elementwise Mul (with broadcasting).
    pub fn mul(&mut self, name: &str, a: &str, b: &str) -> String {
        self.binary(name, "Mul", a, b)
    }

    /// Concat along channels.
    pub fn concat(&mut self, name: &str, xs: &[String]) -> String {
        let mut shape = self.shape(&xs[0]).to_vec();
        shape[1] = xs.iter().map(|x| self.channels(x)).sum();
        for x in xs {
            let s = self.shape(x);
            if s[2..] != shape[2..] {
                let msg = format!(
                    "model {}: node {name}: concatenated maps differ in size ({:?} vs {:?})",
                    self.model,
                    s,
                    self.shape(&xs[0])
                );
                self.fail(msg);
            }
        }
        self.node(name, "Concat", xs.to_vec(), vec![int("axis", 1)], shape)
    }

    fn pool(&mut self, name: &str, op: &str, x: &str, p: Pool) -> String {
        let name = self.next_name(name);
        let sh = self.shape(x).to_vec();
        let mut pads = p.pads;
        // An input narrower than the window only happens at tiny --input-size values, where
        // torchvision itself would fail. Pad the end so that the pool yields one element
        // (pads stay below the kernel size, as ONNX Runtime requires).
        for d in 0..2 {
            let n = sh[2 + d];
            if n + pads[d] + pads[d + 2] < p.k {
                pads[d + 2] = p.k - n - pads[d];
            }
        }
        let h = self.window_out(&name, sh[2], (p.k, p.stride), (pads[0], pads[2]), p.ceil);
        let w = self.window_out(&name, sh[3], (p.k, p.stride), (pads[1], pads[3]), p.ceil);
        let mut attrs = vec![
            int("ceil_mode", p.ceil as i64),
            ints("kernel_shape", &[p.k, p.k]),
            ints("pads", &pads),
            ints("strides", &[p.stride, p.stride]),
        ];
        if op == "AveragePool" {
            attrs.push(int("count_include_pad", 0));
        }
        self.node(&name, op, vec![x.to_string()], attrs, vec![1, sh[1], h, w])
    }

    /// MaxPool. See the note in the code on inputs narrower than the window.
    pub fn maxpool(&mut self, name: &str, x: &str, p: Pool) -> String {
        self.pool(name, "MaxPool", x, p)
    }

    /// AveragePool (padding excluded from the average).
    pub fn avgpool(&mut self, name: &str, x: &str, p: Pool) -> String {
        self.pool(name, "AveragePool", x, p)
    }

    /// GlobalAveragePool.
    pub fn global_avgpool(&mut self, name: &str, x: &str) -> String {
        let c = self.channels(x);
        self.node(
            name,
            "GlobalAveragePool",
            vec![x.to_string()],
            vec![],
            vec![1, c, 1, 1],
        )
    }

    /// PyTorch `AdaptiveAvgPool2d(t)` over a square `s`x`s` map:
    /// - `s == t`: an AveragePool with a 1x1 window (an identity kept so that the node
    ///   `name` exists at every input size);
    /// - `s` a multiple of `t`: AveragePool with kernel = stride = `s / t` (exact);
    /// - `s < t`, `t` a multiple of `s`: Resize nearest by `t / s` (exact: each output bin
    ///   of adaptive pooling then covers exactly one input element);
    /// - `s > t` otherwise: AveragePool with stride `s / t` (floor) and kernel
    ///   `s - (t - 1) * stride`, which approximates adaptive pooling (same output size,
    ///   equal-sized instead of overlapping variable bins);
    /// - `s < t` otherwise: Resize nearest to `t`x`t` (approximate).
    pub fn adaptive_avgpool(&mut self, name: &str, x: &str, t: i64) -> String {
        let s = self.shape(x)[2];
        if s >= t {
            let stride = s / t;
            let k = s - (t - 1) * stride;
            self.avgpool(name, x, Pool::new(k).stride(stride))
        } else if t % s == 0 {
            self.resize_nearest(name, x, (t / s) as f32)
        } else {
            let name = self.next_name(name);
            let c = self.channels(x);
            let sizes = self.init_i64(&format!("{name}.sizes"), &[4], &[1, c, t, t]);
            let inputs = vec![x.to_string(), String::new(), String::new(), sizes];
            self.node(&name, "Resize", inputs, resize_attrs(), vec![1, c, t, t])
        }
    }

    /// Resize (nearest, asymmetric coordinates, floor) by an integer `scale` in H and W.
    pub fn resize_nearest(&mut self, name: &str, x: &str, scale: f32) -> String {
        let name = self.next_name(name);
        let scales = self.init_f32(&format!("{name}.scales"), &[4], &[1.0, 1.0, scale, scale]);
        let sh = self.shape(x).to_vec();
        let shape = vec![
            sh[0],
            sh[1],
            (sh[2] as f32 * scale).floor() as i64,
            (sh[3] as f32 * scale).floor() as i64,
        ];
        let inputs = vec![x.to_string(), String::new(), scales];
        self.node(&name, "Resize", inputs, resize_attrs(), shape)
    }

    /// Flatten to `[1, C*H*W]`.
    pub fn flatten(&mut self, name: &str, x: &str) -> String {
        let n: i64 = self.shape(x)[1..].iter().product();
        self.node(
            name,
            "Flatten",
            vec![x.to_string()],
            vec![int("axis", 1)],
            vec![1, n],
        )
    }

    /// Linear layer as Gemm (`transB = 1`, weight `[out, in]`, bias).
    pub fn gemm(&mut self, name: &str, x: &str, out: i64) -> String {
        let name = self.next_name(name);
        let sh = self.shape(x).to_vec();
        if sh.len() != 2 {
            self.fail(format!(
                "model {}: node {name}: Gemm input is not 2-D",
                self.model
            ));
        }
        let fan_in = sh[sh.len() - 1];
        let bound = (6.0 / fan_in as f64).sqrt();
        let bb = 1.0 / (fan_in as f64).sqrt();
        let inputs = vec![
            x.to_string(),
            self.init_uniform(&format!("{name}.weight"), &[out, fan_in], -bound, bound),
            self.init_uniform(&format!("{name}.bias"), &[out], -bb, bb),
        ];
        let attrs = vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 1)];
        self.node(&name, "Gemm", inputs, attrs, vec![1, out])
    }

    /// Finishes the model; `outputs` become the graph outputs, named `output` (one) or
    /// `output0`, `output1`, ... (several).
    pub fn finish(mut self, outputs: &[String]) -> Result<ModelProto, PlanError> {
        if let Some(e) = self.err.take() {
            return Err(PlanError::Model(e));
        }
        let mut renamed: HashMap<String, String> = HashMap::new();
        for (i, t) in outputs.iter().enumerate() {
            let name = if outputs.len() == 1 {
                "output".to_string()
            } else {
                format!("output{i}")
            };
            renamed.insert(t.clone(), name);
        }
        for n in &mut self.nodes {
            for io in n.input.iter_mut().chain(n.output.iter_mut()) {
                if let Some(r) = renamed.get(io) {
                    *io = r.clone();
                }
            }
        }
        let infos = self
            .tensors
            .iter()
            .filter(|t| !renamed.contains_key(*t))
            .map(|t| value_info(t, &self.shapes[t]))
            .collect();
        let graph_outputs = outputs
            .iter()
            .map(|t| value_info(&renamed[t], &self.shapes[t]))
            .collect();
        let graph = GraphProto {
            node: self.nodes,
            name: Some(self.model.clone()),
            initializer: self.inits,
            input: vec![value_info(INPUT, &self.shapes[INPUT])],
            output: graph_outputs,
            value_info: infos,
            ..Default::default()
        };
        Ok(ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("dicesim".to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            doc_string: Some(format!(
                "dicesim zoo model {} with random deterministic weights",
                self.model
            )),
            graph: Some(graph),
            ..Default::default()
        })
    }
}

fn resize_attrs() -> Vec<AttributeProto> {
    vec![
        string("coordinate_transformation_mode", "asymmetric"),
        string("mode", "nearest"),
        string("nearest_mode", "floor"),
    ]
}

fn value_info(name: &str, shape: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// 64-bit FNV-1a hash.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// SplitMix64 output for counter `i` of stream `seed`: counter-based, so any element can
/// be generated independently of the others.
#[inline]
fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` float32 values uniform in `[lo, hi)`, little-endian. Only IEEE-exact operations
/// (integer ops, f64 `*`, `+`, conversion), so every machine produces the same bytes.
pub(crate) fn uniform_f32_le(seed: u64, n: usize, lo: f64, hi: f64) -> Bytes {
    let mut buf = vec![0u8; n * 4];
    let width = hi - lo;
    const INV_2_53: f64 = 1.0 / 9_007_199_254_740_992.0;
    for (i, chunk) in buf.chunks_exact_mut(4).enumerate() {
        let u = (splitmix64(seed, i as u64) >> 11) as f64 * INV_2_53;
        let v = (lo + width * u) as f32;
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Bytes::from(buf)
}
