//! `dicesim device fit` and `device check`: a fitted device file is a template `dicesim run`
//! reads, whose simulated single-board latency is the fit's prediction (the outside check's
//! contract); the committed library matches the published table it was fitted to.

mod common;

use std::path::Path;

use common::{assert_ok, bin, root, tmp};

/// The rpi3bplus rows of the committed table (squeezenet and googlenet at 1 and 4 threads),
/// written as a CSV with quoted fields that hold commas.
fn small_table(dir: &Path) -> std::path::PathBuf {
    let table =
        std::fs::read_to_string(root().join("platforms/devices/measured/ncnn-published.csv"))
            .unwrap();
    let mut lines = table.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for l in lines.filter(|l| {
        l.starts_with("rpi3bplus,") && (l.contains("squeezenet") || l.contains("googlenet"))
    }) {
        out += l;
        out += "\n";
    }
    assert!(
        out.contains("\"ncnn ("),
        "the engine column is quoted and holds commas"
    );
    let p = dir.join("rows.csv");
    std::fs::write(&p, out).unwrap();
    p
}

/// `dicesim run` latency p50 [ms] of `model` at `input` on unit `unit` of the device file.
fn run_latency(dir: &Path, device: &Path, unit: &str, model: &str, input: usize) -> f64 {
    let platform = dir.join("p.toml");
    std::fs::write(
        &platform,
        format!(
            "[[device]]\ntemplate = {:?}\n",
            device.display().to_string()
        ),
    )
    .unwrap();
    let scenario = dir.join("s.toml");
    let text = format!(
        "[model]\nzoo = \"{model}\"\ninput_size = {input}\n[platform]\nfile = \"p.toml\"\n\
         [mapping]\nstrategy = \"single\"\nunits = [\"{unit}\"]\n[workload]\nframes = 1\n"
    );
    std::fs::write(&scenario, text).unwrap();
    let out = bin()
        .args(["run", "--json"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["latency_ms"]["p50"].as_f64().unwrap()
}

#[test]
fn a_fitted_device_predicts_through_run() {
    let dir = tmp("device-fit");
    let rows = small_table(&dir);
    let out_file = dir.join("rpi3bplus.toml");
    let base = root().join("platforms/devices/rpi3bplus.toml");
    let out = bin()
        .args(["device", "fit"])
        .arg(&rows)
        .args(["--board", "rpi3bplus", "--out"])
        .arg(&out_file)
        .arg("--base")
        .arg(&base)
        .output()
        .unwrap();
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("left-one-model-out"), "{stdout}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        text.starts_with("# Raspberry Pi 3"),
        "the base's datasheet comments stay"
    );
    assert!(text.contains("# Fitted by `dicesim device fit rows.csv --board rpi3bplus"));
    // the fit's prediction for googlenet on one thread is what `run` simulates on cpu[0]
    let line = stdout
        .lines()
        .find(|l| l.contains("googlenet@224 1 thr"))
        .unwrap();
    let fitted: f64 = line
        .split("fitted")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let simulated = run_latency(&dir, &out_file, "rpi3.cpu[0]", "googlenet", 224);
    assert!(
        (simulated - fitted).abs() < 0.01,
        "run {simulated} ms vs fit {fitted} ms"
    );
}

#[test]
fn the_library_matches_the_table_it_was_fitted_to() {
    let out = bin()
        .args(["device", "check"])
        .arg(root().join("platforms/devices/measured/ncnn-published.csv"))
        .arg("--library")
        .arg(root().join("platforms/devices"))
        .output()
        .unwrap();
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().find(|l| l.starts_with("all rows:")).unwrap();
    // "all rows: 48 rows, |error| median M%, p90 P%"
    let median: f64 = summary
        .split("median ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(summary.contains("48 rows"), "{summary}");
    assert!(median <= 10.0, "{summary}");
}

#[test]
fn bad_tables_name_the_line() {
    let dir = tmp("device-fit-bad");
    let p = dir.join("bad.csv");
    std::fs::write(
        &p,
        "board_id,unit,threads,precision,model,input,latency_ms\nb,cpu,4,fp32,resnet18,224,80\nb,cpu,4,fp32,lenet,224,5\n",
    )
    .unwrap();
    let out = bin()
        .args(["device", "fit"])
        .arg(&p)
        .args(["--board", "b", "--out"])
        .arg(dir.join("o.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv: line 3: model `lenet` is not a zoo model"),
        "{err}"
    );
    std::fs::write(&p, "board_id,unit,threads\nb,cpu,x\n").unwrap();
    let out = bin()
        .args(["device", "check"])
        .arg(&p)
        .arg("--library")
        .arg(root().join("platforms/devices"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv: line 2"), "{err}");
}
