//! `dicesim profile` (any host) and `dicesim validate` (root, as the emulation rig): the
//! profile CSV is the simulator's profile format and the fit is reported; validation of
//! two small mappings reports finite relative errors for every compared figure. Accuracy
//! is asserted only loosely (resnet18's throughput within 100%: measured -10%..+37% across
//! runs on a shared 2-core host, so a tighter bound would fail by noise, not by a bug). Without root the validation test fails when `CI` is set and is skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dicesim"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dicesim-val-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn profile_writes_a_simulator_profile_and_a_fit() {
    let d = tmp("profile");
    let out = bin()
        .args(["zoo", "build", "squeezenet1_1", "--input-size", "64"])
        .args(["--out", d.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = d.join("p.csv");
    let out = bin()
        .args([
            "profile",
            d.join("squeezenet1_1.onnx").to_str().unwrap(),
            "--backend",
            "tract",
            "--out",
            csv.to_str().unwrap(),
            "--budget-ms",
            "5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("median relative error"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    for k in ["# cpu:", "# governor:", "# frequency:", "# affinity:"] {
        assert!(text.contains(k), "header lacks {k}: {text}");
    }
    assert!(text.contains("layer,time_us,p10_us,p90_us,flops,bytes"));
    let prof = dicesim_sim::platform::load_profile(&csv).unwrap();
    assert!(prof.len() > 20, "{} layers", prof.len());
    assert!(prof.values().all(|t| t.is_finite() && *t > 0.0));
    let _ = std::fs::remove_dir_all(&d);
}

fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = Command::new("tc")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if root && tools && Path::new("/sys/fs/cgroup/cpuset").exists() {
        return true;
    }
    let why = "needs root, iproute2 (ip, tc) and the cgroup v1 cpuset controller";
    if std::env::var_os("CI").is_some() {
        panic!("{test}: cannot run here: {why} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

fn scenario(dir: &Path, zoo: &str, n: usize, gflops: f64, mbps: f64) -> PathBuf {
    let mut s = String::from("name = \"rig\"\n");
    for i in 0..n {
        s += &format!(
            "[[device]]\nname = \"d{i}\"\nmemory_mb = 4096\nidle_w = 1.0\n  [[device.unit]]\n  name = \"cpu\"\n  kind = \"cpu\"\n  cores = 1\n  gflops = {gflops}\n  mem_gbps = 10.0\n  busy_w = 2.0\n  layer_overhead_us = 5.0\n"
        );
    }
    s += "[[switch]]\nname = \"sw\"\n";
    for i in 0..n {
        s += &format!("[[link]]\nname = \"d{i}-sw\"\nends = [\"d{i}\", \"sw\"]\nbandwidth_mbps = {mbps}\nlatency_us = 200.0\n");
    }
    std::fs::write(dir.join("platform.toml"), s).unwrap();
    let p = dir.join("scenario.toml");
    std::fs::write(
        &p,
        format!("name = \"{zoo} validated\"\nseed = 1\n[model]\nzoo = \"{zoo}\"\ninput_size = 64\n[platform]\nfile = \"platform.toml\"\n[mapping]\nstrategy = \"even\"\n[workload]\nframes = 12\nperiod_ms = 0.0\n"),
    )
    .unwrap();
    p
}

#[test]
fn validate_reports_finite_errors_for_small_mappings() {
    if !can_run("validate_reports_finite_errors_for_small_mappings") {
        return;
    }
    for (zoo, n) in [("resnet18", 2), ("squeezenet1_1", 3)] {
        let d = tmp(zoo);
        let s = scenario(&d, zoo, n, 2.0, 100.0);
        let out = bin()
            .args(["validate", s.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{zoo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["simulated"]["throughput_fps"].as_f64().unwrap() > 0.0);
        assert!(v["measured"]["throughput_fps"].as_f64().unwrap() > 0.0);
        let rows = v["errors"].as_array().unwrap();
        assert!(rows.len() >= 3 + n, "{zoo}: {rows:?}");
        for r in rows {
            let e = r["rel_error"].as_f64();
            assert!(e.is_some_and(f64::is_finite), "{zoo}: {r}");
        }
        let thr = rows[2]["rel_error"].as_f64().unwrap();
        // measured (rig's window, host per-layer profile x the rig's slow-down):
        // resnet18 about -7..-10%; squeezenet1_1 about -40..-45% (not asserted: summed
        // single-layer times put too much in its first partition, too little in its last)
        if zoo == "resnet18" {
            assert!(thr.abs() < 1.0, "{zoo}: throughput error {thr}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
