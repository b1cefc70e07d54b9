//! `dicesim explore`: outputs, exported mappings reproduce their rows through `dicesim run`,
//! byte-identical reruns, one-line errors.

mod common;
use common::{bin, root, tmp};

use std::path::{Path, PathBuf};
use std::process::Output;

/// A small scenario: squeezenet at 32 on three units of the mixed gigabit platform.
fn scenario(dir: &Path, platform: &Path, units: &str) -> PathBuf {
    let p = dir.join("s.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"small\"\nseed = 4\n[model]\nzoo = \"squeezenet1_1\"\ninput_size = 32\n\
             [platform]\nfile = \"{}\"\n[mapping]\nstrategy = \"even\"\n{units}\n\
             [workload]\nframes = 5\n",
            platform.display()
        ),
    )
    .unwrap();
    p
}

fn explore(s: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("explore")
        .arg(s)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("binary runs")
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn writes_front_baselines_and_runnable_mappings() {
    let d = tmp("outputs");
    let s = scenario(
        &d,
        &root().join("platforms/mixed-gige.toml"),
        "units = [\"nano.gpu\", \"rpi4.cpu\", \"minipc.cpu\"]",
    );
    let out = d.join("out");
    let o = explore(&s, &out, &["--budget", "600"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("front:"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("pareto.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "kind,id,latency_ms,throughput_fps,energy_mj_per_frame,max_memory_mb,feasible,overload,n_partitions,units"
    );
    let rows = csv_rows(&csv);
    let kinds: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    for k in ["front", "single", "even", "pipeedge", "2way"] {
        assert!(kinds.contains(&k), "no {k} row in\n{csv}");
    }
    // a short summary: extremes, knee, baselines and where the table is, not every row
    for label in [
        "best latency",
        "best energy",
        "knee",
        "baseline 2way",
        "pareto.csv",
    ] {
        assert!(stdout.contains(label), "no {label} in\n{stdout}");
    }
    assert!(stdout.lines().count() < 16, "{stdout}");
    let svg = std::fs::read_to_string(out.join("pareto.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert!(svg.contains("baseline pipeedge") && svg.contains("latency [ms]"));
    assert!(svg.contains("<title>f0001: ") && svg.contains("energy [mJ/frame]"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["scenario"]["name"], "small");
    assert_eq!(summary["scenario"]["path"], s.to_string_lossy().as_ref());
    assert_eq!(summary["seed"], 4);
    assert_eq!(summary["budget"], 600);
    assert_eq!(summary["dicesim_version"], env!("CARGO_PKG_VERSION"));
    // the first, a middle and the last front rows and two baselines, through `dicesim run`
    let front: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "front").collect();
    let mut pick: Vec<&Vec<String>> =
        vec![front[0], front[front.len() / 2], front[front.len() - 1]];
    pick.extend(rows.iter().filter(|r| r[0] == "pipeedge" || r[0] == "2way"));
    for r in pick {
        let id = &r[1];
        assert!(out.join("mappings").join(format!("{id}.toml")).is_file());
        let o = bin()
            .args(["run", "--json"])
            .arg(out.join("runs").join(format!("{id}.toml")))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let f = |s: &str| s.parse::<f64>().unwrap();
        let max_mem = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["memory_peak_mb"].as_f64().unwrap())
            .fold(0.0, f64::max);
        let o = &v["objectives"];
        assert_eq!(o["latency_ms"].as_f64().unwrap(), f(&r[2]), "{id}");
        assert_eq!(v["latency_unloaded_ms"].as_f64().unwrap(), f(&r[2]), "{id}");
        assert_eq!(o["throughput_fps"].as_f64().unwrap(), f(&r[3]), "{id}");
        assert_eq!(o["energy_mj_per_frame"].as_f64().unwrap(), f(&r[4]), "{id}");
        assert_eq!(max_mem, f(&r[5]), "{id}");
        assert_eq!(v["feasible"].as_bool().unwrap().to_string(), r[6], "{id}");
        assert_eq!(o["overload"].as_f64().unwrap(), f(&r[7]), "{id}");
        assert_eq!(
            v["partitions"].as_array().unwrap().len().to_string(),
            r[8],
            "{id}"
        );
    }
}

#[test]
fn same_seed_gives_byte_identical_outputs() {
    let d = tmp("determinism");
    let s = scenario(&d, &root().join("platforms/mixed-gige.toml"), "");
    let (a, b) = (d.join("a"), d.join("b"));
    for out in [&a, &b] {
        let o = explore(&s, out, &["--budget", "700", "--seed", "9"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in ["pareto.csv", "pareto.svg", "summary.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    let list = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p.join("mappings"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&a), list(&b));
}

#[test]
fn infeasible_space_is_one_line_error() {
    let d = tmp("infeasible");
    // every device has 1 MiB: squeezenet's 4.9 MB of weights fit nowhere, in no split
    let plat = std::fs::read_to_string(root().join("platforms/mixed-gige.toml")).unwrap();
    let dev = root().join("platforms/devices");
    let mut text = plat.replace("devices/", &format!("{}/", dev.display()));
    text = text.replace("template = ", "memory_mb = 1.0\ntemplate = ");
    let p = d.join("tiny.toml");
    std::fs::write(&p, text).unwrap();
    let s = scenario(&d, &p, "");
    let o = explore(&s, &d.join("out"), &["--budget", "300"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no feasible mapping"), "{err}");
}

#[test]
fn empty_space_and_bad_budget_are_one_line_errors() {
    let d = tmp("empty");
    let s = scenario(&d, &root().join("platforms/mixed-gige.toml"), "units = []");
    let o = explore(&s, &d.join("out"), &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let s = scenario(&d, &root().join("platforms/mixed-gige.toml"), "");
    let o = explore(&s, &d.join("out"), &["--budget", "0"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn non_empty_out_needs_force_which_removes_only_stale_results() {
    let d = tmp("force");
    let s = scenario(&d, &root().join("platforms/mixed-gige.toml"), "");
    let out = d.join("out");
    std::fs::create_dir_all(out.join("runs")).unwrap();
    std::fs::write(out.join("runs/f9999.toml"), "stale").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = explore(&s, &out, &["--budget", "300"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--force") && err.contains(&*out.to_string_lossy()),
        "{err}"
    );
    let o = explore(&s, &out, &["--budget", "300", "--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("runs/f9999.toml").exists(), "stale run kept");
    assert!(out.join("notes.txt").is_file(), "a user's file removed");
    assert!(out.join("runs/f0001.toml").is_file());
}

#[test]
fn output_folder_is_relocatable() {
    let d = tmp("relocate");
    // a platform in its own folder whose device templates live beside it, plus a calibration
    let plat_dir = d.join("plat");
    std::fs::create_dir_all(&plat_dir).unwrap();
    let text = std::fs::read_to_string(root().join("platforms/mixed-gige.toml")).unwrap();
    let dev = root().join("platforms/devices");
    let plat = plat_dir.join("p.toml");
    std::fs::write(
        &plat,
        text.replace("devices/", &format!("{}/", dev.display())),
    )
    .unwrap();
    std::fs::write(
        plat_dir.join("cal.toml"),
        "[[unit]]\nname = \"rpi4.cpu\"\nprofile = \"rpi.csv\"\n",
    )
    .unwrap();
    std::fs::write(plat_dir.join("rpi.csv"), "layer,time_us\n").unwrap();
    let s = scenario(&d, &plat, "");
    let text = std::fs::read_to_string(&s).unwrap() + "[calibration]\nfile = \"plat/cal.toml\"\n";
    std::fs::write(&s, text).unwrap();
    let out = d.join("out");
    let o = explore(&s, &out, &["--budget", "300"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_json = |p: &Path| {
        let o = bin().args(["run", "--json"]).arg(p).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["objectives"].clone()
    };
    let before = run_json(&out.join("runs/f0001.toml"));
    // move the folder and the sources away: the copy must not need them
    let moved = d.join("elsewhere");
    std::fs::rename(&out, &moved).unwrap();
    std::fs::rename(&plat_dir, d.join("gone")).unwrap();
    let run = std::fs::read_to_string(moved.join("runs/f0001.toml")).unwrap();
    assert!(
        !run.contains(&*d.to_string_lossy()),
        "absolute path in\n{run}"
    );
    let copy = std::fs::read_to_string(moved.join("platform/p.toml")).unwrap();
    assert!(copy.contains("\"devices/rpi4.toml\""), "{copy}");
    assert!(moved.join("platform/profiles/rpi.csv").is_file());
    assert_eq!(run_json(&moved.join("runs/f0001.toml")), before);
}

#[test]
fn budget_below_the_baselines_is_reported() {
    let d = tmp("small-budget");
    let s = scenario(&d, &root().join("platforms/mixed-gige.toml"), "");
    let o = explore(&s, &d.join("out"), &["--budget", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--budget 3 is below the"), "{err}");
}
