//! The report names the backend each worker really ran (as the worker says when it loads a
//! partition), per device and for the run.

mod support;
use dicesim_hil::coord;
use dicesim_hil::engine::{Engine, EngineSession, TractEngine};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::ThreadWorker;

const PLATFORM: &str = "[[device]]\nname = \"a\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n\
    [[device]]\nname = \"b\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n\
    [[link]]\nends = [\"a\", \"b\"]\nbandwidth_mbps = 100\n";

/// The built-in tract engine under another name, so that a report saying "tract" for its
/// device could only come from a hard-coded name.
struct Renamed(&'static str);

impl Engine for Renamed {
    fn name(&self) -> &str {
        self.0
    }
    fn load(&self, onnx: &[u8], threads: usize) -> anyhow::Result<Box<dyn EngineSession>> {
        TractEngine.load(onnx, threads)
    }
}

/// The scenario with `[hil]` body `hil`, written to `d`.
fn scenario(d: &Path, hil: &str) -> PathBuf {
    std::fs::write(d.join("plat.toml"), PLATFORM).unwrap();
    let s = d.join("s.toml");
    std::fs::write(
        &s,
        format!(
            "name = \"backend\"\n[model]\nzoo = \"squeezenet1_1\"\ninput_size = 32\n\
             [platform]\nfile = \"plat.toml\"\n[mapping]\nstrategy = \"even\"\n\
             [workload]\nframes = 3\n[hil]\n{hil}"
        ),
    )
    .unwrap();
    s
}

#[test]
fn the_report_names_the_backend_each_worker_ran() {
    let a = ThreadWorker::start(Arc::new(TractEngine), None);
    let b = ThreadWorker::start(Arc::new(Renamed("probe")), None);
    let d = support::tmp("hil-backend", "names");
    let s = scenario(&d, &format!("a = \"{}\"\nb = \"{}\"\n", a.addr, b.addr));
    let mut run = coord::from_scenario(&s).unwrap();
    run.progress = false;
    let r = coord::execute(&run).unwrap();
    assert_eq!(r.frames_completed, 3, "{:?}", r.error);
    assert!(r.verification.as_ref().is_some_and(|v| v.ok));
    let by_device: Vec<(&str, &str)> = (r.devices.iter())
        .map(|d| (d.name.as_str(), d.backend.as_str()))
        .collect();
    assert_eq!(by_device, [("a", "tract"), ("b", "probe")]);
    assert_eq!(r.backend, "probe+tract");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["devices"][1]["backend"], "probe");
}
