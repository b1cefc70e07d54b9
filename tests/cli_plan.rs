//! The plan commands from the outside: zoo, inspect, split; bad input gives one clear line
//! and a non-zero exit, never a panic.

mod common;
use common::{bin, TmpDir};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// resnet18 at 32x32 in a temporary folder shared by the tests of this file that run at the
/// same time: built by the first, removed (with what the tests wrote beside it) when the
/// last one ends. A static folder would never be removed, 157 MB a run.
struct Resnet18(Arc<TmpDir>);

impl Resnet18 {
    /// The model, built or shared.
    fn get() -> Resnet18 {
        static SHARED: Mutex<Weak<TmpDir>> = Mutex::new(Weak::new());
        // a fresh name for each build: the last holder of the previous one may still be
        // removing it
        static BUILDS: AtomicUsize = AtomicUsize::new(0);
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = shared.upgrade() {
            return Resnet18(dir);
        }
        let n = BUILDS.fetch_add(1, Ordering::Relaxed);
        let dir = Arc::new(common::tmp(&format!("cli-plan-{n}")));
        let out = bin()
            .args(["zoo", "build", "resnet18", "--input-size", "32", "--out"])
            .arg(dir.as_os_str())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        *shared = Arc::downgrade(&dir);
        Resnet18(dir)
    }

    /// The ONNX file.
    fn onnx(&self) -> PathBuf {
        self.0.join("resnet18.onnx")
    }

    /// The folder holding it (removed with it).
    fn dir(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` beside the model; its path.
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// Runs and expects failure with one stderr line containing every needle.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{args:?}: one line expected: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in: {err}");
    }
}

#[test]
fn inspect_json_matches_the_contract() {
    let model = Resnet18::get();
    let out = bin()
        .args(["inspect", "--json"])
        .arg(model.onnx())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "resnet18");
    let layers = v["layers"].as_array().unwrap();
    let sum: u64 = layers.iter().map(|l| l["flops"].as_u64().unwrap()).sum();
    assert_eq!(v["total_flops"].as_u64().unwrap(), sum);
    let conv1 = &layers[0];
    assert_eq!(conv1["name"], "conv1");
    assert_eq!(conv1["op"], "Conv");
    assert_eq!(conv1["inputs"][0], "input");
    assert_eq!(conv1["output_shape"], serde_json::json!([1, 64, 16, 16]));
    // 2 * 64 * 16 * 16 * 3 * 7 * 7, no bias
    assert_eq!(conv1["flops"].as_u64().unwrap(), 2 * 64 * 16 * 16 * 3 * 49);
    assert_eq!(conv1["params_bytes"].as_u64().unwrap(), 64 * 3 * 49 * 4);
    assert_eq!(conv1["output_bytes"].as_u64().unwrap(), 64 * 16 * 16 * 4);
}

#[test]
fn resnet18_flops_at_224_match_the_published_figure() {
    let g = dicesim_plan::model::zoo_graph("resnet18", 224).unwrap();
    let f = g.total_flops() as f64;
    assert!((f / 3.64e9 - 1.0).abs() < 0.02, "{f}");
    let g = dicesim_plan::model::zoo_graph("vgg16", 224).unwrap();
    let f = g.total_flops() as f64;
    assert!((f / 30.9e9 - 1.0).abs() < 0.02, "{f}");
    let g = dicesim_plan::model::zoo_graph("mobilenet_v2", 224).unwrap();
    let f = g.total_flops() as f64;
    assert!((f / 0.60e9 - 1.0).abs() < 0.02, "{f}");
}

#[test]
fn split_writes_plan_json_and_verifies() {
    let model = Resnet18::get();
    let m = model.write(
        "ok.toml",
        "[units]\n\"a.cpu\" = { from = \"conv1\", to = \"layer2.0.bn1\" }\n\"b.gpu\" = [{ from = \"layer2.0.relu\", to = \"fc\" }]\n",
    );
    let dir = model.dir().join("split-ok");
    let out = bin()
        .arg("split")
        .arg(model.onnx())
        .args(["--mapping", &m, "--out"])
        .arg(&dir)
        .arg("--verify")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("max relative error"), "{stdout}");
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    let parts = plan["partitions"].as_array().unwrap();
    // The cut inside layer2.0 crosses the residual branch: a sends two tensors to b.
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1]["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(plan["edges"].as_array().unwrap().len(), 2);
    for p in parts {
        assert!(dir.join(p["file"].as_str().unwrap()).exists());
    }
}

#[test]
fn autodice_json_mapping_is_accepted() {
    let model = Resnet18::get();
    let g = dicesim_plan::model::load_graph(&model.onnx(), &Default::default()).unwrap();
    let names: Vec<&str> = g.layers.iter().map(|l| l.name.as_str()).collect();
    let (a, b) = names.split_at(10);
    let m = model.write(
        "autodice.json",
        &serde_json::json!({"nano_gpu": a, "rpi4_cpu": b}).to_string(),
    );
    let dir = model.dir().join("split-json");
    let out = bin()
        .arg("split")
        .arg(model.onnx())
        .args(["--mapping", &m, "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["partitions"][0]["unit"], "nano.gpu");
    assert_eq!(plan["partitions"][1]["unit"], "rpi4.cpu");
}

#[test]
fn bad_mappings_are_one_clear_line() {
    let model = Resnet18::get();
    let r = model.onnx().to_string_lossy().into_owned();
    let out = model.dir().join("bad-out");
    let out = out.to_str().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown-layer.toml",
            "[units]\n\"a.cpu\" = { from = \"conv1\", to = \"nope\" }\n",
            &["unknown-layer.toml", "a.cpu", "unknown layer 'nope'"],
        ),
        (
            "misspelt-layer.toml",
            "[units]\n\"a.cpu\" = { from = \"conv1\", to = \"layer1.0.ad\" }\n\"b.cpu\" = { from = \"layer1.0.relu_1\", to = \"fc\" }\n",
            &["misspelt-layer.toml", "unknown layer 'layer1.0.ad'", "did you mean 'layer1.0.add'?"],
        ),
        (
            "twice.toml",
            "[units]\n\"a.cpu\" = { from = \"conv1\", to = \"fc\" }\n\"b.cpu\" = [\"fc\"]\n",
            &["twice.toml", "'fc' is mapped twice"],
        ),
        (
            "unmapped.toml",
            "[units]\n\"a.cpu\" = { from = \"conv1\", to = \"avgpool\" }\n",
            &["unmapped.toml", "not mapped", "fc"],
        ),
        (
            "syntax.toml",
            "[units]\n\"a.cpu\" = { from = \"conv1\", to = \n",
            &["syntax.toml", "TOML syntax error", "line 2"],
        ),
        (
            "badunit.toml",
            "[units]\n\"gpu\" = { from = \"conv1\", to = \"fc\" }\n",
            &["badunit.toml", "<device>.<unit>"],
        ),
        (
            "backwards.toml",
            "[units]\n\"a.cpu\" = { from = \"fc\", to = \"conv1\" }\n",
            &["backwards.toml", "backwards"],
        ),
    ];
    for (file, text, needles) in cases {
        let m = model.write(file, text);
        fails_with(&["split", &r, "--mapping", &m, "--out", out], needles);
    }
    fails_with(
        &[
            "split",
            &r,
            "--mapping",
            "/nonexistent/m.toml",
            "--out",
            out,
        ],
        &["/nonexistent/m.toml"],
    );
}

#[test]
fn bad_models_are_one_clear_line() {
    let model = Resnet18::get();
    let dir = model.dir();
    fails_with(
        &["inspect", "/nonexistent/x.onnx"],
        &["/nonexistent/x.onnx"],
    );
    let txt = dir.join("notonnx.onnx");
    std::fs::write(&txt, "this is not a model\n").unwrap();
    fails_with(
        &["inspect", txt.to_str().unwrap()],
        &["notonnx.onnx", "not an ONNX model"],
    );
    let full = std::fs::read(model.onnx()).unwrap();
    let cut = dir.join("truncated.onnx");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    fails_with(
        &["inspect", cut.to_str().unwrap()],
        &["truncated.onnx", "not an ONNX model"],
    );
    fails_with(
        &["zoo", "build", "resnet17", "--out", dir.to_str().unwrap()],
        &["resnet17"],
    );
    fails_with(
        &[
            "inspect",
            model.onnx().to_str().unwrap(),
            "--input-shape",
            "input=1,3,x",
        ],
        &["--input-shape"],
    );
}
