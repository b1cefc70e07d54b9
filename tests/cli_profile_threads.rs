//! `dicesim profile --threads 1,2 [--cores LIST]`: thread scaling per layer and the fitted
//! per-class serial fractions, through the built binary (built-in tract and the ort plugin).
//! Host speed is not asserted: only the shape of the output and that fractions lie in [0, 1].

mod common;
use common::{assert_ok, bin as dicesim, tmp};
use std::path::{Path, PathBuf};

/// resnet18 at 64x64 in `d` (small: the test times each layer twice).
fn resnet18(d: &Path) -> PathBuf {
    let out = dicesim()
        .args(["zoo", "build", "resnet18", "--input-size", "64", "--out"])
        .arg(d)
        .output()
        .unwrap();
    assert_ok(&out);
    d.join("resnet18.onnx")
}

/// Runs `profile` with `backend` at threads 1,2 and returns stdout and the CSV text.
fn profile(d: &Path, backend: &str) -> (String, String) {
    let model = resnet18(d);
    let csv = d.join(format!("{backend}.csv"));
    let out = dicesim()
        .arg("profile")
        .arg(&model)
        .args([
            "--backend",
            backend,
            "--threads",
            "1,2",
            "--budget-ms",
            "20",
        ])
        .arg("--out")
        .arg(&csv)
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (text, std::fs::read_to_string(&csv).unwrap())
}

/// The table's rows: class name -> fitted fraction (None: `-`, not fitted).
fn table(text: &str) -> Vec<(String, Option<f64>)> {
    let start = text
        .lines()
        .position(|l| l.starts_with("class "))
        .unwrap_or_else(|| panic!("no table header: {text}"));
    text.lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("paste under") && !l.starts_with("no class"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f.last().unwrap().parse::<f64>().ok())
        })
        .collect()
}

/// The table lists the model's main classes, every fitted fraction lies in [0, 1], the
/// paste lines repeat them, and the CSV keeps `layer,time_us` first with one column per
/// thread count.
fn check(text: &str, csv: &str) {
    let rows = table(text);
    for class in ["conv3x3s1", "conv", "fc"] {
        assert!(rows.iter().any(|(c, _)| c == class), "{class}: {text}");
    }
    let fitted: Vec<f64> = rows.iter().filter_map(|(_, s)| *s).collect();
    assert!(!fitted.is_empty(), "{text}");
    assert!(fitted.iter().all(|s| (0.0..=1.0).contains(s)), "{text}");
    assert_eq!(
        text.matches("serial_fraction = ").count(),
        fitted.len(),
        "{text}"
    );
    let header = csv.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(
        header.starts_with("layer,time_us,") && header.ends_with(",time_us_t1,time_us_t2"),
        "{header}"
    );
    assert!(csv.contains("# serial_fraction conv3x3s1: "), "{csv}");
}

#[test]
fn tract_profiles_thread_scaling_and_fits_serial_fractions() {
    let d = tmp("profile-threads-tract");
    let (text, csv) = profile(&d, "tract");
    assert!(
        text.contains("backend tract: tract: matrix products"),
        "{text}"
    );
    check(&text, &csv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ort_profiles_thread_scaling_and_fits_serial_fractions() {
    let found = std::env::var_os("DICESIM_PLUGIN_PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("libdicesim_backend_ort.so").exists())
    });
    if !found {
        let why = "the ort plugin is not on DICESIM_PLUGIN_PATH (scripts/test-all.sh sets it)";
        if std::env::var_os("CI").is_some() {
            panic!("ort_profiles_thread_scaling_and_fits_serial_fractions: {why}; CI is set, so this fails");
        }
        eprintln!("SKIPPED ort_profiles_thread_scaling_and_fits_serial_fractions: {why}");
        return;
    }
    let d = tmp("profile-threads-ort");
    let (text, csv) = profile(&d, "ort");
    assert!(text.contains("backend ort: ONNX Runtime"), "{text}");
    check(&text, &csv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn more_threads_than_cores_and_unknown_engines_are_refused() {
    let d = tmp("profile-threads-errors");
    let model = resnet18(&d);
    let run = |args: &[&str]| {
        let out = dicesim()
            .arg("profile")
            .arg(&model)
            .args(args)
            .arg("--out")
            .arg(d.join("x.csv"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["--backend", "tract", "--threads", "1,2", "--cores", "0"]);
    assert!(e.contains("--threads 2 needs 2 CPUs, 1 given"), "{e}");
    let e = run(&["--backend", "ncnn", "--threads", "2"]);
    assert!(e.contains("not known to honour intra-op threads"), "{e}");
    let e = run(&["--backend", "tract", "--threads", "1,2", "--cold"]);
    assert!(e.contains("--duty and --cold"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
