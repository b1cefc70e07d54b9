//! `dicesim run`: the report, the trace and Gantt outputs, and one-line errors on bad input.

mod common;
use common::{bin, root, tmp};

use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().arg("run").args(args).output().expect("binary runs")
}

const PLATFORM: &str = r#"name = "two boards"
[[device]]
name = "a"
memory_mb = 1024
idle_w = 1.0
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 10.0
  mem_gbps = 5.0
  busy_w = 2.0
[[device]]
name = "b"
memory_mb = 1024
idle_w = 1.0
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 10.0
  mem_gbps = 5.0
  busy_w = 2.0
[[link]]
name = "ab"
ends = ["a", "b"]
bandwidth_mbps = 100.0
latency_us = 10.0
"#;

fn scenario(zoo: &str, platform: &str, mapping: &str) -> String {
    format!(
        "name = \"t\"\n[model]\nzoo = \"{zoo}\"\ninput_size = 32\n[platform]\nfile = \"{platform}\"\n\
         [mapping]\n{mapping}\n[workload]\nframes = 3\n"
    )
}

#[test]
fn run_prints_the_table_or_the_contract_json() {
    let s = root().join("scenarios/resnet18-nx2-explicit.toml");
    let out = run(&[s.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for w in ["throughput", "latency ms", "nx1", "nx2-sw", "nx1.gpu"] {
        assert!(text.contains(w), "{w} missing from\n{text}");
    }

    let out = run(&[s.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["frames"], 100);
    for k in ["mean", "p50", "p95", "max"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0, "{k}");
    }
    for k in ["throughput_fps", "makespan_ms", "energy_mj_per_frame"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(v["scenario"].is_string());
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    for d in devices {
        for k in ["busy_frac", "energy_mj", "memory_peak_mb"] {
            assert!(d[k].is_number(), "{k}");
        }
    }
    let links = v["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert!(links[0]["bytes"].as_u64().unwrap() > 0);
    assert!(links[0]["busy_frac"].is_number());
}

#[test]
fn trace_is_chrome_json_with_a_track_per_unit_and_link_and_gantt_is_well_formed_svg() {
    let d = tmp("trace");
    let (trace, gantt) = (d.join("t.json"), d.join("g.svg"));
    let s = root().join("scenarios/resnet18-nx2-explicit.toml");
    let out = run(&[
        s.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--gantt",
        gantt.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for (what, p) in [("trace", &trace), ("Gantt chart", &gantt)] {
        let line = format!("wrote {what} {}", p.display());
        assert!(err.contains(&line), "`{line}` missing from stderr: {err}");
    }

    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap())
        .expect("the trace is valid JSON");
    let ev = v["traceEvents"].as_array().expect("traceEvents");
    let tracks: Vec<&str> = ev
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    for t in [
        "nx1.cpu",
        "nx1.gpu",
        "nx2.cpu",
        "nx2.gpu",
        "link nx1-sw",
        "link nx2-sw",
    ] {
        assert!(tracks.contains(&t), "track {t} missing from {tracks:?}");
    }
    let count = |cat: &str| {
        ev.iter()
            .filter(|e| e["ph"] == "X" && e["cat"] == cat)
            .count()
    };
    // 100 frames through 2 partitions; each frame's tensor crosses 2 links
    assert_eq!(count("compute"), 200);
    assert_eq!(count("transfer"), 200);
    for e in ev.iter().filter(|e| e["ph"] == "X") {
        assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0);
    }

    let svg = std::fs::read_to_string(&gantt).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the Gantt chart is well-formed XML");
    let top = doc.root_element();
    assert_eq!(top.tag_name().name(), "svg");
    let width: f64 = top.attribute("width").unwrap().parse().unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for t in ["nx1.gpu", "nx2.gpu", "link nx1-sw"] {
        assert!(texts.contains(&t), "row {t} missing");
    }
    let bars: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill") != Some("#FFFFFF"))
        .collect();
    // first 10 frames: 2 jobs and 2 link crossings each
    assert_eq!(bars.len(), 40);
    for b in bars {
        let x: f64 = b.attribute("x").unwrap().parse().unwrap();
        let w: f64 = b.attribute("width").unwrap().parse().unwrap();
        assert!(
            x >= 0.0 && w > 0.0 && x + w <= width,
            "bar outside the chart"
        );
    }
}

/// Runs `dicesim run` on `scenario` and checks it fails with one line naming every `needle`.
fn fails_with(scenario: &Path, needles: &[&str]) {
    let out = run(&[scenario.to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "expected a failure, got success");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line:\n{err}");
    assert!(err.starts_with("dicesim: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_fails_with_one_line_naming_file_and_key() {
    let d = tmp("errors");
    let w = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    w("plat.toml", PLATFORM);
    w(
        "undeclared.toml",
        &PLATFORM.replace(r#"ends = ["a", "b"]"#, r#"ends = ["a", "c"]"#),
    );
    w(
        "zero.toml",
        &PLATFORM.replace("bandwidth_mbps = 100.0", "bandwidth_mbps = 0.0"),
    );
    w(
        "negative.toml",
        &PLATFORM.replace("bandwidth_mbps = 100.0", "bandwidth_mbps = -5.0"),
    );
    let even = "strategy = \"even\"";

    fails_with(&d.join("missing.toml"), &["missing.toml", "No such file"]);

    let s = w(
        "unknown-zoo.toml",
        &scenario("nosuchnet", "plat.toml", even),
    );
    fails_with(&s, &["unknown-zoo.toml", "model.zoo", "nosuchnet"]);

    let s = w(
        "s-undeclared.toml",
        &scenario("squeezenet1_1", "undeclared.toml", even),
    );
    fails_with(&s, &["undeclared.toml", "link[0].ends", "`c`"]);

    let s = w("s-zero.toml", &scenario("squeezenet1_1", "zero.toml", even));
    fails_with(&s, &["zero.toml", "link[0].bandwidth_mbps", "positive"]);

    let s = w(
        "s-negative.toml",
        &scenario("squeezenet1_1", "negative.toml", even),
    );
    fails_with(&s, &["negative.toml", "link[0].bandwidth_mbps", "positive"]);

    let explicit = |m: &str| format!("strategy = \"explicit\"\nfile = \"{m}\"");
    w(
        "map-device.toml",
        "[units]\n\"a.cpu\" = { from = \"features.0\", to = \"features.5\" }\n\
         \"zz.cpu\" = { from = \"features.6.squeeze\", to = \"flatten\" }\n",
    );
    let s = w(
        "s-device.toml",
        &scenario("squeezenet1_1", "plat.toml", &explicit("map-device.toml")),
    );
    fails_with(&s, &["map-device.toml", "units", "zz.cpu", "a.cpu, b.cpu"]);

    w(
        "map-unit.toml",
        "[units]\n\"a.cpu\" = { from = \"features.0\", to = \"features.5\" }\n\
         \"a.npu\" = { from = \"features.6.squeeze\", to = \"flatten\" }\n",
    );
    let s = w(
        "s-unit.toml",
        &scenario("squeezenet1_1", "plat.toml", &explicit("map-unit.toml")),
    );
    fails_with(&s, &["map-unit.toml", "a.npu"]);

    w("map-syntax.toml", "[units\n\"a.cpu\" = 3\n");
    let s = w(
        "s-map-syntax.toml",
        &scenario("squeezenet1_1", "plat.toml", &explicit("map-syntax.toml")),
    );
    fails_with(&s, &["map-syntax.toml", "line 1"]);

    let s = w(
        "syntax.toml",
        "name = \"t\"\n[model]\nzoo = \"squeezenet1_1\"\n[platform\nfile = \"plat.toml\"\n",
    );
    fails_with(&s, &["syntax.toml", "line 4, column 10"]);

    let s = w(
        "s-plat-syntax.toml",
        &scenario("squeezenet1_1", "bad-plat.toml", even),
    );
    w(
        "bad-plat.toml",
        &PLATFORM.replace("idle_w = 1.0", "idle_w = = 1.0"),
    );
    fails_with(&s, &["bad-plat.toml", "line 5"]);
}

#[test]
fn a_calibration_file_overrides_units_and_links_and_bad_ones_are_one_line_errors() {
    let d = tmp("calibration");
    let w = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    w("plat.toml", PLATFORM);
    let mapping = "strategy = \"even\"";
    let base = w("base.toml", &scenario("resnet18", "plat.toml", mapping));
    let json = |p: &Path| -> serde_json::Value {
        let out = run(&[p.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let lat = |v: &serde_json::Value| v["latency_ms"]["p50"].as_f64().unwrap();
    let b = json(&base);
    // every layer of unit a.cpu takes 100 us, each partition run 1 ms more; link ab is
    // 10x slower with 1 ms latency
    let mut prof = String::from("# test\nlayer,time_us\n");
    let out = bin()
        .args(["zoo", "build", "resnet18", "--input-size", "32", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = bin()
        .arg("inspect")
        .arg(d.join("resnet18.onnx"))
        .arg("--json")
        .output()
        .unwrap();
    let layers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for l in layers["layers"].as_array().unwrap() {
        prof += &format!("{},100\n", l["name"].as_str().unwrap());
    }
    w("a.csv", &prof);
    w(
        "cal.toml",
        "[[unit]]\nname = \"a.cpu\"\nprofile = \"a.csv\"\nrun_overhead_us = 1000.0\n\
         [[link]]\nname = \"ab\"\nbandwidth_mbps = 10.0\nlatency_us = 1000.0\n",
    );
    let cal = w(
        "cal-scenario.toml",
        &(scenario("resnet18", "plat.toml", mapping) + "[calibration]\nfile = \"cal.toml\"\n"),
    );
    let c = json(&cal);
    assert!(
        lat(&c) > lat(&b) + 1.0,
        "calibrated {} vs base {}",
        lat(&c),
        lat(&b)
    );
    // the run overhead alone: b.cpu's partition pays 1 ms more
    w(
        "cal2.toml",
        "[[unit]]\nname = \"b.cpu\"\nrun_overhead_us = 1000.0\n",
    );
    // (one frame: no queueing behind earlier frames)
    let one = |s: String| s.replace("frames = 3", "frames = 1");
    let b1 = json(&w(
        "one.toml",
        &one(scenario("resnet18", "plat.toml", mapping)),
    ));
    let cal2 = w(
        "cal2-scenario.toml",
        &one(scenario("resnet18", "plat.toml", mapping) + "[calibration]\nfile = \"cal2.toml\"\n"),
    );
    let c2 = json(&cal2);
    let dl = lat(&c2) - lat(&b1);
    assert!(
        (dl - 1.0).abs() < 1e-3,
        "latency grew by {dl} ms, expected 1"
    );

    for (text, needles) in [
        (
            "[[unit]]\nname = \"zz.cpu\"\n",
            &["cal-bad.toml", "unit[0].name", "zz.cpu"][..],
        ),
        (
            "[[link]]\nname = \"ab\"\nbandwidth_mbps = -1.0\n",
            &["cal-bad.toml", "link[0].bandwidth_mbps"][..],
        ),
        (
            "[[link]]\nname = \"ab\"\nbandwith_mbps = 5.0\n",
            &["cal-bad.toml", "bandwith_mbps"][..],
        ),
    ] {
        w("cal-bad.toml", text);
        let s = w(
            "bad.toml",
            &(scenario("resnet18", "plat.toml", mapping)
                + "[calibration]\nfile = \"cal-bad.toml\"\n"),
        );
        fails_with(&s, needles);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The JSON report of `dicesim run --json ARGS`, without the fields that name the scenario
/// and its strategy.
fn figures(args: &[&str]) -> serde_json::Value {
    let out = run(&[&["--json"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("scenario");
    o.remove("strategy");
    v
}

#[test]
fn an_exported_mapping_run_as_explicit_gives_the_same_figures() {
    let d = tmp("export");
    std::fs::write(d.join("plat.toml"), PLATFORM).unwrap();
    for strategy in ["single", "even", "pipeedge"] {
        let s = d.join(format!("{strategy}.toml"));
        let m = d.join(format!("{strategy}-mapping.toml"));
        let mapping = format!("strategy = \"{strategy}\"");
        std::fs::write(&s, scenario("resnet18", "plat.toml", &mapping)).unwrap();
        let (s, m) = (s.to_str().unwrap(), m.to_str().unwrap());
        let chosen = figures(&[s, "--export-mapping", m]);
        let text = std::fs::read_to_string(m).unwrap();
        assert!(text.contains("[units]"), "{text}");
        let explicit = d.join(format!("{strategy}-explicit.toml"));
        let mapping = format!("strategy = \"explicit\"\nfile = \"{strategy}-mapping.toml\"");
        std::fs::write(&explicit, scenario("resnet18", "plat.toml", &mapping)).unwrap();
        assert_eq!(figures(&[explicit.to_str().unwrap()]), chosen, "{strategy}");
    }
    let out = run(&[
        &format!("{}/even.toml", d.display()),
        "--export-mapping",
        &format!("{}/m.toml", d.display()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("wrote mapping {}/m.toml", d.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_infeasible_run_prints_its_report_and_fails_unless_allowed() {
    let d = tmp("infeasible");
    let tiny = PLATFORM.replace("memory_mb = 1024", "memory_mb = 1");
    std::fs::write(d.join("plat.toml"), tiny).unwrap();
    let s = d.join("s.toml");
    std::fs::write(&s, scenario("resnet18", "plat.toml", "strategy = \"even\"")).unwrap();
    let s = s.to_str().unwrap();
    let out = run(&[s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("INFEASIBLE"));
    let last = err.trim_end().lines().last().unwrap();
    for w in [
        "dicesim: error: ",
        "s.toml",
        "infeasible",
        "a, b",
        "--allow-infeasible",
    ] {
        assert!(last.contains(w), "`{w}` missing from: {last}");
    }
    let out = run(&[s, "--allow-infeasible", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["feasible"], false);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_mapping_file_given_as_scenario_says_so() {
    let m = root().join("mappings/resnet18-2way.toml");
    fails_with(
        &m,
        &[
            "resnet18-2way.toml looks like a mapping file ([units] table)",
            "`dicesim run` takes a scenario, see docs/scenario.md",
        ],
    );
}
