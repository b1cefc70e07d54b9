//! The examples of `docs/` stay valid: every scenario in `docs/examples/` runs, the worked
//! example's report printed in `docs/simulator.md` is what `dicesim run --json` prints, and
//! both mapping formats of `docs/mapping.md` give the same partitions.

mod common;
use common::{assert_ok, bin, root};

use std::path::PathBuf;

/// Every `*.toml` directly in `docs/examples/` (the scenarios; platforms, mappings and
/// calibrations live in sub-folders).
fn example_scenarios() -> Vec<PathBuf> {
    let dir = root().join("docs/examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docs/examples exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

fn run_json(scenario: &std::path::Path) -> String {
    let out = bin()
        .args(["run", "--json"])
        .arg(scenario)
        .output()
        .expect("binary runs");
    assert_ok(&out);
    String::from_utf8(out.stdout).expect("UTF-8 report")
}

#[test]
fn every_example_scenario_runs() {
    let scenarios = example_scenarios();
    assert!(scenarios.len() >= 2, "{scenarios:?}");
    for s in scenarios {
        let report: serde_json::Value =
            serde_json::from_str(&run_json(&s)).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
        assert!(report["feasible"].as_bool().unwrap(), "{}", s.display());
    }
}

/// The JSON block that follows the marker line `<!-- run --json FILE -->` in `doc`.
fn documented_report(doc: &str, file: &str) -> String {
    let marker = format!("<!-- run --json {file} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no `{marker}` in the doc"));
    let rest = &doc[at + marker.len()..];
    let start = rest
        .find("```json\n")
        .expect("a ```json block after the marker")
        + 8;
    let end = rest[start..].find("```").expect("the block ends") + start;
    rest[start..end].to_string()
}

#[test]
fn worked_example_report_is_what_run_prints() {
    let doc = std::fs::read_to_string(root().join("docs/simulator.md")).unwrap();
    let file = "docs/examples/two-boards.toml";
    let documented = documented_report(&doc, file);
    let actual = run_json(&root().join(file));
    assert_eq!(
        documented.trim_end(),
        actual.trim_end(),
        "docs/simulator.md shows a report that `dicesim run --json {file}` no longer prints"
    );
}

#[test]
fn toml_and_autodice_mappings_give_the_same_partitions() {
    let dir = common::tmp("docs-mappings");
    let model = dir.join("alexnet.onnx");
    assert_ok(
        &bin()
            .args(["zoo", "build", "alexnet", "--input-size", "64", "--out"])
            .arg(&dir)
            .output()
            .unwrap(),
    );
    let split = |mapping: &str, out: &str| {
        let o = bin()
            .arg("split")
            .arg(&model)
            .arg("--mapping")
            .arg(root().join("docs/examples/mappings").join(mapping))
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap();
        assert_ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let toml = split("alexnet-2way.toml", "toml");
    assert_eq!(toml, split("alexnet-2way.json", "json"));
    assert_eq!(toml.lines().count(), 2, "{toml}");
}
