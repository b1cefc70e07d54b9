//! Horizontal splits in the simulator and the search: scenarios whose mapping has
//! `[[split]]` tables, and explore's horizontal stage.

use std::path::{Path, PathBuf};

use dicesim_sim::explore::{explore, ExploreOptions};
use dicesim_sim::{run_scenario, RunOptions, Scenario};

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh temporary folder of this test, removed when it ends: the scenarios written there
/// are read again while the test runs (each run, and the horizontal stage's model).
fn tmp(name: &str) -> common::TmpDir {
    common::tmp("horizontal", name)
}

/// vgg16 at 64 px on four Raspberry Pi 4 (gigabit), with `mapping` (a TOML table body), in
/// `dir`.
fn scenario(dir: &Path, name: &str, mapping: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\nseed = 1\n[model]\nzoo = \"vgg16\"\ninput_size = 64\n\
         [platform]\nfile = \"{}\"\n[mapping]\n{mapping}\n[workload]\nframes = 4\n",
        root().join("platforms/rpi4x4-gige.toml").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A scenario in `dir` with an explicit mapping file holding `toml`.
fn explicit(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let m = dir.join(format!("{name}-mapping.toml"));
    std::fs::write(&m, toml).unwrap();
    scenario(
        dir,
        name,
        &format!("strategy = \"explicit\"\nfile = \"{}\"", m.display()),
    )
}

const UNITS: &str = r#"["rpi4-0.cpu", "rpi4-1.cpu", "rpi4-2.cpu", "rpi4-3.cpu"]"#;

#[test]
fn an_output_channel_split_holds_a_quarter_of_the_weights_on_each_device() {
    let d = tmp("fc");
    let whole = explicit(
        &d,
        "fc-whole",
        "[units]\n\"rpi4-0.cpu\" = { from = \"features.0\", to = \"classifier.6\" }\n",
    );
    let split = explicit(
        &d,
        "fc-split",
        &format!(
            "[units]\n\"rpi4-0.cpu\" = [{{ from = \"features.0\", to = \"flatten\" }}, \
             {{ from = \"classifier.1\", to = \"classifier.6\" }}]\n\
             [[split]]\nlayers = \"classifier.0\"\nkind = \"out_channels\"\nunits = {UNITS}\n"
        ),
    );
    let w = run_scenario(&whole, RunOptions::default()).unwrap().report;
    let s = run_scenario(&split, RunOptions::default()).unwrap().report;
    // classifier.0 holds 25088 x 4096 x 4 B = 392 MiB (vgg16's adaptive pooling gives 7 x 7
    // whatever the input); each other device holds a quarter of it, with its engine's
    // factors, and nothing else
    let fc_mib = 25088.0 * 4096.0 * 4.0 / (1024.0 * 1024.0);
    let need = |r: &dicesim_sim::Report, d: usize| r.devices[d].memory_peak_mb;
    assert!(
        need(&w, 0) - need(&s, 0) > 0.5 * fc_mib,
        "{} vs {}",
        need(&w, 0),
        need(&s, 0)
    );
    for d in 1..4 {
        let part = need(&s, d);
        assert!(
            part > 0.2 * fc_mib && part < 0.35 * need(&w, 0),
            "device {d}: {part} MiB"
        );
    }
    assert_eq!(s.devices.iter().filter(|d| d.busy_frac > 0.0).count(), 4);
}

#[test]
fn fused_tiles_on_four_boards_beat_one_board_and_report_the_same_twice() {
    let d = tmp("tiles");
    let single = scenario(
        &d,
        "single",
        "strategy = \"single\"\nunits = [\"rpi4-0.cpu\"]",
    );
    let tiles = explicit(
        &d,
        "tiles",
        &format!(
            "[units]\n\"rpi4-0.cpu\" = {{ from = \"features.17\", to = \"classifier.6\" }}\n\
             [[split]]\nlayers = {{ from = \"features.0\", to = \"features.9\" }}\n\
             kind = \"spatial\"\nunits = {UNITS}\n\
             [[split]]\nlayers = {{ from = \"features.10\", to = \"features.16\" }}\n\
             kind = \"spatial\"\nunits = {UNITS}\ngrid = [2, 2]\n"
        ),
    );
    let one = run_scenario(&single, RunOptions::default()).unwrap().report;
    let four = run_scenario(&tiles, RunOptions::default()).unwrap().report;
    // at 64 px the classifier (392 MiB of weights, on rpi4-0) takes most of the time
    assert!(
        four.latency_unloaded_ms < 0.95 * one.latency_unloaded_ms,
        "{} vs {}",
        four.latency_unloaded_ms,
        one.latency_unloaded_ms
    );
    assert_eq!(four.devices.iter().filter(|d| d.busy_frac > 0.0).count(), 4);
    let again = run_scenario(&tiles, RunOptions::default()).unwrap().report;
    assert_eq!(four.to_json(), again.to_json());
}

#[test]
fn the_horizontal_stage_beats_the_vertical_front_and_its_mapping_runs_as_scored() {
    let d = tmp("explore");
    let path = scenario(&d, "explore", "strategy = \"pipeedge\"");
    let sc = Scenario::load(&path).unwrap();
    let opts = ExploreOptions {
        budget: 1000,
        horizontal: true,
        exhaustive_limit: 0,
        ..ExploreOptions::default()
    };
    let res = explore(&sc, opts, None).unwrap();
    let h = res.horizontal.as_ref().expect("the stage ran");
    assert!(
        h.evaluations > 0 && h.evaluations <= 200,
        "{}",
        h.evaluations
    );
    assert!(res.evaluations + h.evaluations <= 1000);
    let vertical = res
        .front
        .iter()
        .map(|p| p.obj[0])
        .fold(f64::INFINITY, f64::min);
    let best = h.best.as_ref().expect("a feasible best");
    let dt = h.deepthings.as_ref().expect("the DeepThings baseline");
    assert!(
        best.obj[0] <= dt.obj[0] && best.obj[0] < 0.7 * vertical,
        "{} vs {vertical}",
        best.obj[0]
    );
    // the mapping file it writes, run as `dicesim run` runs it, gives the stage's latency
    let run = explicit(&d, "explore-best", &best.hybrid.to_toml(&sc.prep.graph));
    let r = run_scenario(&run, RunOptions::default()).unwrap().report;
    let rel = (r.latency_unloaded_ms - best.obj[0]).abs() / best.obj[0];
    assert!(
        rel < 1e-5,
        "run {} vs stage {}",
        r.latency_unloaded_ms,
        best.obj[0]
    );
    let again = explore(&sc, opts, None).unwrap();
    let a = again.horizontal.unwrap();
    assert_eq!(a.best.unwrap().obj, best.obj);
    assert_eq!(a.front.len(), h.front.len());
}
