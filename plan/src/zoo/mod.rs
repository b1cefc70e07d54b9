//! The model zoo: well-known CNNs built as ONNX models with random but deterministic
//! weights (the same bytes on every machine).
//!
//! Architectures follow torchvision (layer structure, shapes, module-path node names) in
//! eval mode: Dropout is absent, GoogLeNet has no auxiliary heads, ReLU6 is `Clip(0, 6)`,
//! SiLU is `Sigmoid` + `Mul`. YOLOv3-tiny follows darknet's `yolov3-tiny.cfg`. Every
//! model is opset 13, IR version 8, producer `dicesim`, with input `input` of shape
//! `[1, 3, N, N]` (float32), output `output` (YOLOv3-tiny: `output0`, `output1`) and the
//! static shape of every tensor in `graph.value_info`. See [`builder`] for the naming of
//! nodes, tensors and initializers, and for how tiny input sizes are handled.
//!
//! Weights: a counter-based SplitMix64 stream per tensor, seeded with the 64-bit FNV-1a
//! hash of `"<model>/<tensor name>"`. Conv and Gemm weights are He-uniform
//! `U(-sqrt(6/fan_in), sqrt(6/fan_in))`, biases `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`;
//! BatchNorm gamma and running variance `U(0.8, 1.2)`, beta and running mean
//! `U(-0.1, 0.1)`, except that the BatchNorm closing a ResNet residual branch (`bn2` of a
//! basic block, `bn3` of a bottleneck) has gamma `U(0.2, 0.3)` so that activations stay in
//! range through 100 layers (see [`builder::Builder::batchnorm_residual`]). Values are
//! computed with IEEE-exact operations only.
//!
//! Parameters (the `.weight` / `.bias` initializers) do not depend on the input size and
//! match torchvision's counts; other initializers are BatchNorm buffers
//! (`.running_mean`, `.running_var`) and constant operands (`.min`, `.max`, `.scales`,
//! `.sizes`).

pub mod builder;
mod classic;
mod mobile;
mod resnet;
mod yolo;

use crate::error::PlanError;
use crate::onnx::ModelProto;
use builder::Builder;

const NAMES: &[&str] = &[
    "alexnet",
    "vgg16",
    "vgg19",
    "resnet18",
    "resnet50",
    "resnet101",
    "mobilenet_v2",
    "squeezenet1_1",
    "googlenet",
    "yolov3_tiny",
    "efficientnet_b0",
];

/// Largest accepted input size (a sanity bound; activations grow with its square).
const MAX_INPUT_SIZE: usize = 8192;

/// The zoo's model names, in a stable order.
pub fn names() -> &'static [&'static str] {
    NAMES
}

/// The published input size of model `name` (224; YOLOv3-tiny 416), `None` if unknown.
pub fn default_input_size(name: &str) -> Option<usize> {
    match name {
        "yolov3_tiny" => Some(416),
        n if NAMES.contains(&n) => Some(224),
        _ => None,
    }
}

/// Builds zoo model `name` for a square input of `input_size` pixels. Fails on an unknown
/// name or an input size the network cannot take (too small, or for YOLOv3-tiny not a
/// multiple of 32).
pub fn build(name: &str, input_size: usize) -> Result<ModelProto, PlanError> {
    build_with(name, input_size, false)
}

/// [`build`] with zero weights: the same graph, shapes and bytes, for analysis only (the
/// simulator and the search read the graph; `zoo build`, `split` and real runs use
/// [`build`]'s seeded weights).
pub fn build_for_analysis(name: &str, input_size: usize) -> Result<ModelProto, PlanError> {
    build_with(name, input_size, true)
}

fn build_with(name: &str, input_size: usize, zero_weights: bool) -> Result<ModelProto, PlanError> {
    if !NAMES.contains(&name) {
        return Err(PlanError::Model(format!(
            "unknown zoo model `{name}`; known models: {}",
            NAMES.join(", ")
        )));
    }
    if input_size == 0 || input_size > MAX_INPUT_SIZE {
        return Err(PlanError::Model(format!(
            "model {name}: input size {input_size} is out of range (1 to {MAX_INPUT_SIZE})"
        )));
    }
    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    let misaligned = input_size % 32 != 0;
    if name == "yolov3_tiny" && misaligned {
        return Err(PlanError::Model(format!(
            "model yolov3_tiny: input size {input_size} is not a multiple of 32"
        )));
    }
    let (b, x) = Builder::new(name, input_size);
    let mut b = if zero_weights {
        b.with_zero_weights()
    } else {
        b
    };
    let outputs = match name {
        "alexnet" => vec![classic::alexnet(&mut b, &x)],
        "vgg16" => vec![classic::vgg(&mut b, &x, classic::VGG16)],
        "vgg19" => vec![classic::vgg(&mut b, &x, classic::VGG19)],
        "resnet18" => vec![resnet::resnet(&mut b, &x, false, [2, 2, 2, 2])],
        "resnet50" => vec![resnet::resnet(&mut b, &x, true, [3, 4, 6, 3])],
        "resnet101" => vec![resnet::resnet(&mut b, &x, true, [3, 4, 23, 3])],
        "mobilenet_v2" => vec![mobile::mobilenet_v2(&mut b, &x)],
        "squeezenet1_1" => vec![classic::squeezenet1_1(&mut b, &x)],
        "googlenet" => vec![classic::googlenet(&mut b, &x)],
        "efficientnet_b0" => vec![mobile::efficientnet_b0(&mut b, &x)],
        "yolov3_tiny" => {
            let (a, c) = yolo::yolov3_tiny(&mut b, &x);
            vec![a, c]
        }
        _ => unreachable!("names were checked against NAMES above"),
    };
    b.finish(&outputs)
}

#[cfg(test)]
mod tests;
