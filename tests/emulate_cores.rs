//! `dicesim emulate` (root) with core sets: a 2-core board running two 1-core partitions
//! at once, and two partitions taking turns on one core; outputs verified, the report keeps
//! the core-set unit names, the rig gives the board a host CPU per core where the host has
//! them. Without root: skipped (failed with `CI` set), as `tests/emulate.rs`.

mod common;
use common::{can_run, tmp};
use std::path::{Path, PathBuf};
use std::process::Command;

const PLATFORM: &str = "name = \"one 2-core board\"\n[[device]]\nname = \"d0\"\nmemory_mb = 2048\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 2\ngflops = 4.0\nmem_gbps = 4.0\n";

/// resnet18 at 32 px in two halves on units `a` and `b`.
fn scenario(dir: &Path, a: &str, b: &str) -> PathBuf {
    std::fs::write(dir.join("platform.toml"), PLATFORM).unwrap();
    std::fs::write(
        dir.join("mapping.toml"),
        format!(
            "[units]\n\"{a}\" = {{ from = \"conv1\", to = \"layer2.1.relu\" }}\n\
             \"{b}\" = {{ from = \"layer2.1.conv2\", to = \"fc\" }}\n"
        ),
    )
    .unwrap();
    let p = dir.join("scenario.toml");
    std::fs::write(
        &p,
        "name = \"core sets\"\nseed = 1\n[model]\nzoo = \"resnet18\"\ninput_size = 32\n\
         [platform]\nfile = \"platform.toml\"\n[mapping]\nstrategy = \"explicit\"\n\
         file = \"mapping.toml\"\n[workload]\nframes = 12\nperiod_ms = 0.0\n",
    )
    .unwrap();
    p
}

/// Runs `emulate --json`: (report, stderr); fails the test when the run fails.
fn emulate(s: &Path) -> (serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dicesim"))
        .args(["emulate", s.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

fn units(v: &serde_json::Value) -> Vec<String> {
    (v["partitions"].as_array().unwrap().iter())
        .map(|p| p["unit"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_one_core_partitions_run_on_a_two_core_board() {
    if !can_run("two_one_core_partitions_run_on_a_two_core_board") {
        return;
    }
    let d = tmp("emulate-cores-split");
    let (v, err) = emulate(&scenario(&d, "d0.cpu[0]", "d0.cpu[1]"));
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(units(&v), ["d0.cpu[0]", "d0.cpu[1]"]);
    assert!(v["time_dilation"].as_f64().unwrap() >= 1.0);
    let host_cpus = dicesim_hil::sys::allowed_cpus().len();
    if host_cpus >= 2 {
        assert!(err.contains("dedicated host CPUs {0: [0, 1]}"), "{err}");
    }
}

#[test]
fn partitions_on_one_core_take_turns() {
    if !can_run("partitions_on_one_core_take_turns") {
        return;
    }
    let d = tmp("emulate-cores-turns");
    let (v, err) = emulate(&scenario(&d, "d0.cpu[1]", "d0.cpu"));
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(units(&v), ["d0.cpu[1]", "d0.cpu"]);
    // the board uses both its cores: two host CPUs where the host has them
    if dicesim_hil::sys::allowed_cpus().len() >= 2 {
        assert!(err.contains("{0: [0, 1]}"), "{err}");
    }
}
