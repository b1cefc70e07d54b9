use super::*;
use crate::onnx::{tensor_shape_proto::dimension::Value as Dim, type_proto, ValueInfoProto};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// Parameter count as torchvision counts it: `.weight` / `.bias` initializer elements.
fn param_count(m: &ModelProto) -> i64 {
    let g = m.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .filter(|t| {
            let n = t.name();
            n.ends_with(".weight") || n.ends_with(".bias")
        })
        .map(|t| t.dims.iter().product::<i64>())
        .sum()
}

fn shape(v: &ValueInfoProto) -> Vec<i64> {
    match v.r#type.as_ref().unwrap().value.as_ref().unwrap() {
        type_proto::Value::TensorType(t) => t
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Dim::DimValue(v)) => v,
                _ => panic!("symbolic dim"),
            })
            .collect(),
        _ => panic!("not a tensor"),
    }
}

/// Structural checks: unique node names, every input defined before use, every
/// initializer's raw data of the right length, every tensor with a shape, names as
/// documented.
fn check_structure(name: &str, m: &ModelProto) {
    let g = m.graph.as_ref().unwrap();
    assert_eq!(m.ir_version, Some(8));
    assert_eq!(m.opset_import[0].version, Some(13));
    let mut defined: HashSet<&str> = HashSet::new();
    defined.insert("input");
    let mut shapes: HashMap<&str, Vec<i64>> = HashMap::new();
    for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
        shapes.insert(v.name(), shape(v));
    }
    for t in &g.initializer {
        assert!(
            defined.insert(t.name()),
            "{name}: duplicate initializer {}",
            t.name()
        );
        let n: i64 = t.dims.iter().product();
        let size = if t.data_type() == crate::onnx::dtype::INT64 {
            8
        } else {
            4
        };
        assert_eq!(t.raw_data.as_ref().unwrap().len() as i64, n * size);
        let n = t.name();
        assert!(
            [
                ".weight",
                ".bias",
                ".running_mean",
                ".running_var",
                ".min",
                ".max",
                ".scales",
                ".sizes"
            ]
            .iter()
            .any(|s| n.ends_with(s)),
            "{name}: unexpected initializer {n}"
        );
    }
    let mut node_names = HashSet::new();
    for n in &g.node {
        assert!(
            node_names.insert(n.name()),
            "{name}: duplicate node {}",
            n.name()
        );
        for i in &n.input {
            assert!(
                i.is_empty() || defined.contains(i.as_str()),
                "{name}: {i} undefined"
            );
        }
        for o in &n.output {
            assert!(defined.insert(o), "{name}: {o} defined twice");
            assert!(shapes.contains_key(o.as_str()), "{name}: {o} has no shape");
            if !o.starts_with("output") {
                assert_eq!(*o, format!("{}_out", n.name()));
            }
        }
    }
    for o in &g.output {
        assert!(
            defined.contains(o.name()),
            "{name}: output {} not produced",
            o.name()
        );
    }
}

fn output_shapes(m: &ModelProto) -> Vec<Vec<i64>> {
    m.graph.as_ref().unwrap().output.iter().map(shape).collect()
}

#[test]
fn zoo_names_and_defaults() {
    assert_eq!(names().len(), 11);
    for n in names() {
        assert!(default_input_size(n).is_some());
    }
    assert_eq!(default_input_size("yolov3_tiny"), Some(416));
    assert_eq!(default_input_size("resnet18"), Some(224));
    assert_eq!(default_input_size("nope"), None);
    assert!(matches!(build("nope", 224), Err(PlanError::Model(_))));
    assert!(matches!(build("resnet18", 0), Err(PlanError::Model(_))));
    assert!(matches!(
        build("yolov3_tiny", 100),
        Err(PlanError::Model(_))
    ));
    assert!(matches!(build("alexnet", 6), Err(PlanError::Model(_))));
}

fn check_params(name: &str, expected: i64) {
    let m = build(name, default_input_size(name).unwrap()).unwrap();
    assert_eq!(param_count(&m), expected, "{name}");
}

#[test]
fn zoo_params_resnet() {
    check_params("resnet18", 11_689_512);
    check_params("resnet50", 25_557_032);
    check_params("resnet101", 44_549_160);
}

#[test]
fn zoo_params_vgg() {
    check_params("vgg16", 138_357_544);
    check_params("vgg19", 143_667_240);
}

#[test]
fn zoo_params_small() {
    check_params("alexnet", 61_100_840);
    check_params("mobilenet_v2", 3_504_872);
    check_params("squeezenet1_1", 1_235_496);
    check_params("efficientnet_b0", 5_288_548);
    check_params("googlenet", 6_624_904);
    // darknet yolov3-tiny.cfg: 8,858,734 including the 6,368 BN running statistics.
    check_params("yolov3_tiny", 8_852_366);
}

#[test]
fn zoo_yolo_bn_buffers() {
    let m = build("yolov3_tiny", 64).unwrap();
    let all: i64 = m
        .graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .filter(|t| !t.name().ends_with(".scales"))
        .map(|t| t.dims.iter().product::<i64>())
        .sum();
    assert_eq!(all, 8_858_734);
}

#[test]
fn zoo_all_sizes() {
    for &name in names() {
        let sizes: &[usize] = if name == "yolov3_tiny" {
            &[64, 416]
        } else if name == "alexnet" || name.starts_with("vgg") {
            // Also every AdaptiveAvgPool case: alexnet at 160, 128, 256 reaches 4, 3, 7
            // for a 6x6 target; vgg at 96 and 448 reaches 3 and 14 for 7x7.
            &[32, 64, 224, 96, 128, 160, 256, 448]
        } else {
            &[32, 64, 224]
        };
        for &s in sizes {
            let m = build(name, s).unwrap_or_else(|e| panic!("{name} at {s}: {e}"));
            check_structure(name, &m);
            let outs = output_shapes(&m);
            if name == "yolov3_tiny" {
                let a = (s / 32) as i64;
                assert_eq!(outs, vec![vec![1, 255, a, a], vec![1, 255, 2 * a, 2 * a]]);
            } else {
                assert_eq!(outs, vec![vec![1, 1000]], "{name} at {s}");
            }
        }
    }
}

#[test]
fn zoo_resnet18_names() {
    let m = build("resnet18", 64).unwrap();
    let names: Vec<&str> = m
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.name())
        .collect();
    assert_eq!(&names[..4], &["conv1", "bn1", "relu", "maxpool"]);
    for n in [
        "layer1.0.conv1",
        "layer1.0.relu",
        "layer1.0.add",
        "layer1.0.relu_1",
        "layer2.0.downsample.0",
        "layer2.0.downsample.1",
        "avgpool",
        "flatten",
        "fc",
    ] {
        assert!(names.contains(&n), "missing {n}");
    }
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.node.last().unwrap().output, vec!["output".to_string()]);
    assert!(g
        .initializer
        .iter()
        .any(|t| t.name() == "layer1.0.bn1.running_var"));
}

#[test]
fn zoo_deterministic() {
    for &name in names() {
        if name.starts_with("vgg") || name == "alexnet" {
            continue; // large; covered by the smaller models and the weight stream test
        }
        let s = if name == "yolov3_tiny" { 64 } else { 32 };
        let a = build(name, s).unwrap().encode_to_vec();
        let b = build(name, s).unwrap().encode_to_vec();
        assert!(a == b, "{name} differs between builds");
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn zoo_weight_stream_pinned() {
    // Pins the generator and a whole model's bytes, so that a change of the weights (on
    // another machine, or by a code change) is noticed.
    let raw = builder::uniform_f32_le(0x0123_4567_89ab_cdef, 4, -1.0, 1.0);
    let v: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
    // The graph only: the model's producer_version changes with the crate version.
    let model = build("squeezenet1_1", 32)
        .unwrap()
        .graph
        .unwrap()
        .encode_to_vec();
    println!("{v:?} {:#x} {:#x}", fnv1a(&raw), fnv1a(&model));
    assert_eq!(fnv1a(&raw), PINNED_STREAM);
    assert_eq!(fnv1a(&model), PINNED_MODEL);
}

const PINNED_STREAM: u64 = 0xc6a7_155a_7386_2125;
const PINNED_MODEL: u64 = 0xd048_cd2e_21c1_d2b4;

/// Writes every model at its default size and at 64 to `/tmp/zoo-models` for checking
/// with onnx / onnxruntime.
#[test]
#[ignore]
fn zoo_write_models() {
    let dir = std::path::Path::new("/tmp/zoo-models");
    std::fs::create_dir_all(dir).unwrap();
    for &name in names() {
        let mut sizes = vec![default_input_size(name).unwrap(), 64, 32];
        if name == "alexnet" || name.starts_with("vgg") {
            sizes.extend([96, 128, 160, 256, 448]);
        }
        for s in sizes {
            if name == "yolov3_tiny" && s == 32 {
                continue;
            }
            let t = std::time::Instant::now();
            let m = build(name, s).unwrap();
            let dt = t.elapsed();
            crate::onnx::save_model(&m, &dir.join(format!("{name}_{s}.onnx"))).unwrap();
            println!("{name} {s}: build {:.3} s", dt.as_secs_f64());
        }
    }
}

/// The analysis build (zero weights) gives the very graph of the seeded build.
#[test]
fn analysis_build_has_the_same_graph() {
    for &name in names() {
        let size = if name == "yolov3_tiny" { 64 } else { 48 };
        let seeded = crate::model::Model::zoo(name, size).unwrap().graph;
        let analysed = crate::model::zoo_graph(name, size).unwrap();
        assert_eq!(seeded.layers, analysed.layers, "{name}");
        assert_eq!(seeded.tensors, analysed.tensors, "{name}");
        assert_eq!(
            (seeded.inputs, seeded.outputs),
            (analysed.inputs, analysed.outputs),
            "{name}"
        );
    }
}
