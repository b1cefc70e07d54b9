//! `dicesim backends` and `dicesim infer` through the built binary and plugins.

mod common;
use common::bin as dicesim;

#[test]
fn backends_lists_tract_with_its_check() {
    let out = dicesim().arg("backends").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tract") && l.contains(" ok ")),
        "{text}"
    );
}

#[test]
fn backends_lists_the_built_in_tract_engine_without_any_plugin() {
    // A copy of the binary in a folder without plugins, and no plugin path.
    let d = common::tmp("no-plugins");
    let exe = d.join("dicesim");
    std::fs::copy(env!("CARGO_BIN_EXE_dicesim"), &exe).unwrap();
    let out = std::process::Command::new(&exe)
        .arg("backends")
        .env_remove("DICESIM_PLUGIN_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("tract") && text.contains(" ok ") && text.contains("built-in"));
    assert!(err.contains("no backend plugins found"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ort_check_names_the_fix_when_the_library_is_missing() {
    let out = dicesim()
        .arg("backends")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(l) = text.lines().find(|l| l.starts_with("ort")) {
        assert!(l.contains("unavailable"), "{l}");
        assert!(
            l.contains("libonnxruntime not found: ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so is not a file; run scripts/setup.sh or set ORT_DYLIB_PATH"),
            "{l}"
        );
    } else {
        assert!(
            std::env::var("CI").is_err(),
            "the ort plugin is not built: {text}"
        );
    }
}

#[test]
fn infer_writes_npz_and_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let st = dicesim()
        .args([
            "zoo",
            "build",
            "squeezenet1_1",
            "--input-size",
            "32",
            "--out",
        ])
        .arg(d)
        .status()
        .unwrap();
    assert!(st.success());
    let model = d.join("squeezenet1_1.onnx");
    let x = dicesim_backend_loader::Tensor::f32(vec![1, 3, 32, 32], vec![0.25; 3 * 32 * 32]);
    std::fs::write(d.join("x.npy"), dicesim::npy::encode_npy(&x)).unwrap();
    let out = dicesim()
        .arg("infer")
        .arg(&model)
        .args(["--backend", "tract", "--input"])
        .arg(d.join("x.npy"))
        .arg("--output")
        .arg(d.join("y.npz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = dicesim::npy::read_tensors(&d.join("y.npz"), None).unwrap();
    assert_eq!(y.len(), 1);
    assert_eq!(y[0].1.shape.iter().product::<usize>(), 1000);

    // Wrong shape, unknown backend, missing file: one clear line, non-zero exit.
    let bad = dicesim_backend_loader::Tensor::f32(vec![1, 3, 8, 8], vec![0.0; 192]);
    std::fs::write(d.join("bad.npy"), dicesim::npy::encode_npy(&bad)).unwrap();
    for (backend, input, want) in [
        ("tract", "bad.npy", "expects"),
        ("nosuch", "x.npy", "no backend plugin 'nosuch'"),
        ("tract", "missing.npy", "missing.npy"),
    ] {
        let out = dicesim()
            .arg("infer")
            .arg(&model)
            .args(["--backend", backend, "--input"])
            .arg(d.join(input))
            .arg("--output")
            .arg(d.join("z.npz"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
