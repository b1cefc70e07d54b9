//! Every platform file loads; every scenario in `scenarios/` is a snapshot test.

use std::path::{Path, PathBuf};

use dicesim_sim::platform::Platform;
use dicesim_sim::{run_scenario, RunOptions};

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("folder exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_platform_loads() {
    let ps = files("platforms");
    assert!(ps.len() >= 4);
    for p in ps {
        let pl = Platform::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(!pl.devices.is_empty(), "{}", p.display());
        // every pair of devices is connected
        let net = dicesim_sim::network::Network::new(&pl);
        for a in 0..pl.devices.len() {
            for b in 0..pl.devices.len() {
                assert!(a == b || net.route(a, b).is_some(), "{}", p.display());
            }
        }
    }
}

#[test]
fn every_scenario_matches_its_snapshot() {
    let scenarios: Vec<PathBuf> = files("scenarios")
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .any(|l| l.trim() == "[model]")
        })
        .collect();
    assert!(scenarios.len() >= 8);
    for s in scenarios {
        let name = s.file_stem().unwrap().to_string_lossy().into_owned();
        // a scenario that cannot run fails the test
        let run = run_scenario(&s, RunOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = run.report.to_json();
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, json);
        });
    }
}
