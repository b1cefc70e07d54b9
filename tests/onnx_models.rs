//! Loads, splits and verifies look-alikes of the ONNX Model Zoo (Caffe2 exports at opset 9)
//! and of torchvision exports, written by `tests/models/make_models.py`, plus zoo models;
//! every split is checked by `split --verify` (tract) and by ONNX Runtime
//! (`tests/models/ort_check.py`). Also checks the one-line errors for invalid models.
//!
//! Needs Python with onnx, numpy and onnxruntime in `.deps/python`: the test runs
//! `scripts/setup-python.sh` (a no-op once installed) and fails, never skips, without them.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_dicesim");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The folder the models are generated into (fresh for each run of this test binary).
fn work() -> &'static Path {
    static WORK: OnceLock<PathBuf> = OnceLock::new();
    WORK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_models");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        setup_python();
        let out = python(&[
            "tests/models/make_models.py",
            dir.join("models").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "tests/models/make_models.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let zoo = dir.join("zoo");
        let zoo_s = zoo.to_str().unwrap();
        run_ok(&[
            "zoo",
            "build",
            "resnet18",
            "mobilenet_v2",
            "googlenet",
            "yolov3_tiny",
            "--out",
            zoo_s,
            "--input-size",
            "64",
        ]);
        dir
    })
}

fn deps() -> PathBuf {
    Path::new(ROOT).join(".deps/python")
}

fn setup_python() {
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/setup-python.sh"))
        .current_dir(ROOT)
        .output()
        .expect("running bash scripts/setup-python.sh");
    assert!(
        out.status.success() && deps().join("onnxruntime").is_dir(),
        "these tests need onnx, numpy and onnxruntime in .deps/python, and \
         scripts/setup-python.sh could not install them (is PyPI reachable? is python3 on PATH?):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python(args: &[&str]) -> Output {
    Command::new("python3")
        .args(args)
        .current_dir(ROOT)
        .env("PYTHONPATH", deps())
        .output()
        .expect("running python3")
}

fn dicesim(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running dicesim")
}

fn run_ok(args: &[&str]) -> String {
    let out = dicesim(args);
    assert!(
        out.status.success(),
        "dicesim {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A mapping file from one unit name per layer (layers in topological order).
fn mapping_toml(names: &[String], units: &[String]) -> String {
    let mut order: Vec<&String> = Vec::new();
    for u in units {
        if !order.contains(&u) {
            order.push(u);
        }
    }
    let mut t = String::from("[units]\n");
    for u in order {
        let mine: Vec<&String> = names
            .iter()
            .zip(units)
            .filter(|(_, x)| *x == u)
            .map(|(n, _)| n)
            .collect();
        // Contiguous runs as ranges (exercises both forms of the contract).
        let idx: Vec<usize> = (0..names.len()).filter(|&i| &units[i] == u).collect();
        let contiguous = idx.windows(2).all(|w| w[1] == w[0] + 1);
        if contiguous && idx.len() > 1 {
            let (f, l) = (idx[0], idx[idx.len() - 1]);
            writeln!(
                t,
                "{} = {{ from = {}, to = {} }}",
                toml_str(u),
                toml_str(&names[f]),
                toml_str(&names[l])
            )
            .unwrap();
        } else {
            let list: Vec<String> = mine.iter().map(|n| toml_str(n)).collect();
            writeln!(t, "{} = [{}]", toml_str(u), list.join(", ")).unwrap();
        }
    }
    t
}

fn inspect(model: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", model.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&run_ok(&args)).expect("inspect --json prints JSON");
    let layers = v["layers"].as_array().expect("layers");
    assert!(!layers.is_empty());
    let sum: u64 = layers.iter().map(|l| l["flops"].as_u64().unwrap()).sum();
    assert_eq!(
        v["total_flops"].as_u64(),
        Some(sum),
        "total_flops = sum over layers"
    );
    let params: u64 = layers
        .iter()
        .map(|l| l["params_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(v["total_params_bytes"].as_u64(), Some(params));
    let mut names = std::collections::HashSet::new();
    for l in layers {
        let name = l["name"].as_str().unwrap();
        assert!(
            !name.is_empty() && names.insert(name.to_string()),
            "layer name {name}"
        );
        let shape: Vec<u64> = l["output_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert!(
            shape.iter().all(|&d| d > 0),
            "{name}: output shape {shape:?}"
        );
        let elems: u64 = shape.iter().product();
        let ob = l["output_bytes"].as_u64().unwrap();
        assert!(ob >= elems, "{name}: output_bytes {ob} < {elems} elements");
        let op = l["op"].as_str().unwrap();
        if matches!(op, "Conv" | "Gemm") {
            assert!(
                l["flops"].as_u64().unwrap() > 0,
                "{name}: {op} without FLOPs"
            );
            assert!(
                l["params_bytes"].as_u64().unwrap() > 0,
                "{name}: {op} without weights"
            );
        }
        assert_ne!(op, "Constant", "Constant nodes are folded, not layers");
    }
    v
}

fn layer_names(v: &Value) -> Vec<String> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

/// Splits `model` under `units` (one per layer) with `--verify`; returns the split folder
/// and plan.json.
fn split(
    model: &Path,
    tag: &str,
    names: &[String],
    units: &[String],
    extra: &[&str],
) -> (PathBuf, Value) {
    let stem = model.file_stem().unwrap().to_str().unwrap();
    let dir = work().join("splits").join(format!("{stem}-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.with_extension("toml");
    std::fs::write(&map, mapping_toml(names, units)).unwrap();
    let mut args = vec![
        "split",
        model.to_str().unwrap(),
        "--mapping",
        map.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--verify",
    ];
    args.extend_from_slice(extra);
    let out = run_ok(&args);
    assert!(out.contains("verify: max relative error"), "{out}");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    // Every layer in exactly one partition.
    let mut seen: Vec<String> = plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["layers"].as_array().unwrap().iter())
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(seen, want, "{tag}: partitions cover every layer once");
    (dir, plan)
}

fn n_parts(plan: &Value) -> usize {
    plan["partitions"].as_array().unwrap().len()
}

fn ort_check(model: &Path, dirs: &[PathBuf]) {
    let mut args = vec!["tests/models/ort_check.py", model.to_str().unwrap()];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    let out = python(&args);
    assert!(
        out.status.success(),
        "ort_check {} failed:\n{}{}",
        model.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Contiguous 2- and 3-way splits, an alternating one (partitions split further to stay
/// acyclic), and an "island": one middle layer on its own unit, so that the rest, on one
/// unit, must become two partitions around it.
fn check_model(name: &str, n_layers: usize, out_shape: &[u64], extra: &[&str]) {
    let dirs = split_model(name, n_layers, out_shape, extra);
    let model = work().join("models").join(format!("{name}.onnx"));
    ort_check(&model, &dirs);
}

/// The splits of [`check_model`], checked by `--verify` only.
fn split_model(name: &str, n_layers: usize, out_shape: &[u64], extra: &[&str]) -> Vec<PathBuf> {
    let model = work().join("models").join(format!("{name}.onnx"));
    let v = inspect(&model, extra);
    let names = layer_names(&v);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(names.len(), n_layers, "{name}: layer count");
    let last: Vec<u64> = layers[n_layers - 1]["output_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect();
    assert_eq!(last, out_shape, "{name}: last layer's shape");
    let n = names.len();
    let unit = |i: usize| format!("dev{i}.cpu");
    let two: Vec<String> = (0..n).map(|i| unit(usize::from(i >= n / 2))).collect();
    let three: Vec<String> = (0..n).map(|i| unit(3 * i / n)).collect();
    let alt: Vec<String> = (0..n).map(|i| unit(i % 2)).collect();
    let island: Vec<String> = (0..n).map(|i| unit(usize::from(i == n / 2))).collect();
    let (d2, p2) = split(&model, "two", &names, &two, extra);
    assert_eq!(n_parts(&p2), 2, "{name}: contiguous 2-way split");
    let (d3, p3) = split(&model, "three", &names, &three, extra);
    assert_eq!(n_parts(&p3), 3, "{name}: contiguous 3-way split");
    let (da, pa) = split(&model, "alt", &names, &alt, extra);
    assert!(n_parts(&pa) > 2, "{name}: alternating split");
    let (di, pi) = split(&model, "island", &names, &island, extra);
    assert_eq!(
        n_parts(&pi),
        3,
        "{name}: island split (the rest cut in two around it)"
    );
    vec![d2, d3, da, di]
}

#[test]
fn alexnet_caffe2() {
    // 5 conv + 7 relu + 2 LRN + 3 pools + reshape + 3 gemm + 2 dropout + softmax.
    check_model("alexnet_c2", 24, &[1, 10], &[]);
}

#[test]
fn googlenet_caffe2_constant_weights() {
    // stem: conv relu pool lrn conv relu conv relu lrn (9); 2 x inception (6 conv + 6 relu
    // + pool + concat = 14); pool, dropout, reshape, gemm, softmax (5).
    check_model("googlenet_c2", 42, &[1, 10], &[]);
}

#[test]
fn densenet_caffe2_sum() {
    // stem 4; 3 x dense layer of 7; transition 4; sum: 3 conv + pool + sum + relu (6);
    // gap, flatten, gemm (3).
    check_model("densenet_c2", 38, &[1, 10], &[]);
}

#[test]
fn squeezenet_ceil_mode() {
    // conv relu pool; 2 x fire of 7; pool dropout conv relu gap reshape softmax.
    check_model("squeezenet", 24, &[1, 10], &[]);
    let v = inspect(&work().join("models/squeezenet.onnx"), &[]);
    let pool3 = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "pool3")
        .unwrap();
    assert_eq!(
        pool3["output_shape"],
        serde_json::json!([1, 32, 6, 6]),
        "ceil_mode"
    );
}

#[test]
fn resnet_torchvision_symbolic_batch() {
    // conv bn relu pool; block 1: 2 conv 2 bn relu add relu (7); block 2: + downsample (9);
    // gap, mul, reshape, gemm, identity. The Shape chain and Constant/Cast fold away.
    check_model("resnet_tv", 25, &[1, 10], &[]);
}

#[test]
fn nhwc_input_transpose() {
    // transpose, 2 x (conv relu), transpose, reduce-mean, gemm.
    check_model("nhwc", 8, &[1, 10], &[]);
}

#[test]
fn symbolic_spatial_dims_need_input_shape() {
    let model = work().join("models/symbolic_hw.onnx");
    fails(
        &["inspect", model.to_str().unwrap()],
        &["'x'", "'H'", "--input-shape x=1,3,<H>,<W>"],
    );
    check_model(
        "symbolic_hw",
        9,
        &[1, 16],
        &["--input-shape", "x=1,3,40,56"],
    );
}

#[test]
fn two_graph_outputs() {
    check_model("two_outputs", 10, &[1, 5], &[]);
}

#[test]
fn resnet_caffe2_sum_residuals() {
    // stem 3; 2 x block (conv bn relu conv bn sum relu = 7); pool reshape gemm softmax.
    check_model("resnet_c2", 21, &[1, 10], &[]);
}

#[test]
fn torch_opset11_ops() {
    // conv clip pad split mul concat resize conv reshape unsqueeze reduce-mean squeeze (the
    // Shape->Slice->Concat chain folds away).
    check_model("torch11", 12, &[1, 8], &[]);
}

#[test]
fn opset18_split_reduce() {
    check_model("opset18", 6, &[1, 4], &[]);
}

#[test]
fn light_model_zoo_constant_of_shape_weights() {
    // conv relu conv relu conv mul add relu pool reshape gemm relu gemm softmax: the
    // ConstantOfShape weights and their Unsqueezes fold away.
    check_model("light_c2", 14, &[1, 10], &[]);
    let model = work().join("models/light_c2.onnx");
    let v = inspect(&model, &[]);
    assert_eq!(
        v["inputs"],
        serde_json::json!([{"name": "data_0", "shape": [1, 3, 32, 32]}]),
        "the shape initializers listed as inputs are constants, not graph inputs"
    );
    let conv3 = &v["layers"][4];
    assert_eq!(conv3["op"], "Conv");
    assert_eq!(
        conv3["params_bytes"],
        128 * 64 * 9 * 4,
        "conv3's folded kernel"
    );
    fails(
        &[
            "inspect",
            model.to_str().unwrap(),
            "--input-shape",
            "conv3_w__SHAPE=4",
        ],
        &["'conv3_w__SHAPE'", "initializer", "data_0"],
    );
}

/// The real "light" models that the onnx Python package ships for its backend tests.
#[test]
fn light_models_of_the_onnx_package() {
    let dir = deps().join("onnx/backend/test/data/light");
    for (name, n_layers, input) in [
        ("light_squeezenet", 66, "data_0"),
        ("light_shufflenet", 203, "gpu_0/data_0"),
        ("light_inception_v2", 371, "data_0"),
    ] {
        let model = dir.join(format!("{name}.onnx"));
        let v = inspect(&model, &[]);
        let names = layer_names(&v);
        assert_eq!(names.len(), n_layers, "{name}: layer count");
        assert_eq!(v["inputs"][0]["name"], input, "{name}");
        assert_eq!(
            v["inputs"].as_array().unwrap().len(),
            1,
            "{name}: one input"
        );
        let n = names.len();
        let two: Vec<String> = (0..n)
            .map(|i| format!("dev{}.cpu", usize::from(i >= n / 2)))
            .collect();
        let (d2, p2) = split(&model, "two", &names, &two, &[]);
        assert_eq!(n_parts(&p2), 2, "{name}: contiguous 2-way split");
        ort_check(&model, &[d2]);
    }
}

#[test]
fn unsorted_graph_with_duplicate_node_names() {
    // Layers are renamed apart ("act", "act_1"); ONNX Runtime refuses such a file, tract
    // (--verify) runs it with the layer names.
    split_model("unordered", 6, &[1, 8, 1, 1], &[]);
}

#[test]
fn zoo_models_in_onnx_runtime() {
    for (name, ways) in [
        ("resnet18", 2),
        ("mobilenet_v2", 2),
        ("yolov3_tiny", 2),
        ("googlenet", 4),
    ] {
        let model = work().join("zoo").join(format!("{name}.onnx"));
        let v = inspect(&model, &[]);
        let names = layer_names(&v);
        // Alternating units cut every residual and inception branch.
        let units: Vec<String> = (0..names.len())
            .map(|i| format!("dev{}.cpu", i % ways))
            .collect();
        let (dir, plan) = split(&model, &format!("alt{ways}"), &names, &units, &[]);
        assert!(n_parts(&plan) > ways, "{name}: partitions split further");
        ort_check(&model, &[dir]);
    }
}

/// The command fails with exactly one line on stderr that contains every needle.
fn fails(args: &[&str], needles: &[&str]) {
    let out = dicesim(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "dicesim {} should fail",
        args.join(" ")
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn errors_for_invalid_files() {
    let dir = work().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(work().join("models/alexnet_c2.onnx")).unwrap();
    let trunc = dir.join("truncated.onnx");
    std::fs::write(&trunc, &good[..good.len() / 2]).unwrap();
    fails(
        &["inspect", trunc.to_str().unwrap()],
        &["truncated.onnx", "not an ONNX model"],
    );
    let text = dir.join("notes.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    fails(
        &["inspect", text.to_str().unwrap()],
        &["notes.onnx", "not an ONNX model"],
    );
    let missing = dir.join("missing.onnx");
    fails(
        &["inspect", missing.to_str().unwrap()],
        &["missing.onnx: No such file or directory (os error 2)\n"],
    );
    fails(
        &["inspect", dir.to_str().unwrap()],
        &["bad: is a directory"],
    );
}

#[test]
fn errors_for_invalid_models() {
    let m = |n: &str| work().join("models").join(format!("{n}.onnx"));
    for op in ["Foo", "LSTM"] {
        let p = m(&format!("bad_{}", op.to_lowercase()));
        fails(
            &["inspect", p.to_str().unwrap()],
            &["'weird'", op, "unsupported"],
        );
    }
    fails(
        &["inspect", m("bad_channels").to_str().unwrap()],
        &["'conv_bad'", "Conv", "channels"],
    );
    let sym = m("symbolic_hw");
    fails(
        &[
            "inspect",
            sym.to_str().unwrap(),
            "--input-shape",
            "x=1,3,40",
        ],
        &["'x'", "rank"],
    );
    fails(
        &[
            "inspect",
            sym.to_str().unwrap(),
            "--input-shape",
            "y=1,3,40,40",
        ],
        &["'y'", "x"],
    );
    let map = work().join("bad").join("sym.toml");
    std::fs::create_dir_all(map.parent().unwrap()).unwrap();
    std::fs::write(
        &map,
        "[units]\n\"a.cpu\" = { from = \"conv1\", to = \"flatten\" }\n",
    )
    .unwrap();
    fails(
        &[
            "split",
            sym.to_str().unwrap(),
            "--mapping",
            map.to_str().unwrap(),
            "--out",
            work().join("bad/out").to_str().unwrap(),
        ],
        &["'x'", "'H'"],
    );
}
