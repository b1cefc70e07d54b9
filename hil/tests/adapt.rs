//! Issue 16: the platform changes mid-stream and the coordinator goes on. Three loopback
//! workers run resnet18 (32 px) mapped evenly. In one test the middle device's worker stops
//! after its 8th frame, as a killed process does (every socket closed); in the other the
//! first device sends at a fiftieth of its link's rate. With `[adapt] ... = "replan"` every
//! frame comes out exactly once and in order, the outputs after the switch are checked
//! against the whole model, and the re-plan is reported.

mod support;
use dicesim_hil::conn::Shaping;
use dicesim_hil::coord;
use dicesim_hil::engine::{Engine, EngineSession, Tensor, TractEngine};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::ThreadWorker;

const FRAMES: u64 = 30;

/// The platform: three 1-core devices on a switch.
fn platform() -> String {
    let mut s = String::from("name = \"three\"\n");
    for d in ["a", "b", "c"] {
        s += &format!(
            "[[device]]\nname = \"{d}\"\nmemory_mb = 4096\n[[device.unit]]\nname = \"cpu\"\n\
             kind = \"cpu\"\ncores = 1\ngflops = 5\nmem_gbps = 10\n"
        );
    }
    s += "[[switch]]\nname = \"sw\"\n";
    for d in ["a", "b", "c"] {
        s += &format!(
            "[[link]]\nname = \"{d}-sw\"\nends = [\"{d}\", \"sw\"]\nbandwidth_mbps = 1000\n"
        );
    }
    s
}

/// Stops its worker (through `kill`) when a partition starts its `after`-th run.
struct Doomed {
    runs: Arc<AtomicU64>,
    after: u64,
    kill: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

struct DoomedSession {
    inner: Box<dyn EngineSession>,
    runs: Arc<AtomicU64>,
    after: u64,
    kill: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

impl Engine for Doomed {
    fn name(&self) -> &str {
        "tract"
    }
    fn load(&self, onnx: &[u8], threads: usize) -> anyhow::Result<Box<dyn EngineSession>> {
        Ok(Box::new(DoomedSession {
            inner: TractEngine.load(onnx, threads)?,
            runs: self.runs.clone(),
            after: self.after,
            kill: self.kill.clone(),
        }))
    }
}

impl EngineSession for DoomedSession {
    fn run(&mut self, inputs: &HashMap<String, Tensor>) -> anyhow::Result<Vec<(String, Tensor)>> {
        if self.runs.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            if let Some(k) = self.kill.lock().unwrap().take() {
                let _ = k.send(());
            }
            // the process is gone: nothing comes out of this run
            std::thread::sleep(Duration::from_millis(200));
        }
        self.inner.run(inputs)
    }
}

/// The `[hil]` keys of devices a, b, c served by `workers`.
fn hil_table(workers: &[&ThreadWorker; 3]) -> String {
    let [a, b, c] = workers.map(|w| &w.addr);
    format!("a = \"{a}\"\nb = \"{b}\"\nc = \"{c}\"\n")
}

fn scenario(dir: &Path, adapt: &str, hil: &str) -> PathBuf {
    std::fs::write(dir.join("platform.toml"), platform()).unwrap();
    let s = dir.join("s.toml");
    std::fs::write(
        &s,
        format!(
            "name = \"adapt\"\nseed = 5\n[model]\nzoo = \"resnet18\"\ninput_size = 32\n\
             [platform]\nfile = \"platform.toml\"\n[mapping]\nstrategy = \"even\"\n\
             [workload]\nframes = {FRAMES}\n[adapt]\n{adapt}\n\
             [hil]\nstall_timeout_s = 20\n{hil}"
        ),
    )
    .unwrap();
    s
}

/// `f`'s result, the frame times of the run it makes written to `path`
/// (`DICESIM_FRAME_TIMES` is the process's: one such run at a time).
fn with_frame_times<T>(path: &Path, f: impl FnOnce() -> T) -> T {
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("DICESIM_FRAME_TIMES", path);
    let t = f();
    std::env::remove_var("DICESIM_FRAME_TIMES");
    t
}

/// Every frame exited, once (the report's per-frame exit), in frame order.
fn every_frame_once_in_order(times: &Path) {
    let ex = exits(times);
    assert_eq!(ex.len() as u64, FRAMES);
    let ex: Vec<u64> = (ex.into_iter())
        .map(|e| e.expect("every frame exits"))
        .collect();
    assert!(ex.windows(2).all(|w| w[0] <= w[1]), "{ex:?}");
}

/// Each frame's exit time [us], from `DICESIM_FRAME_TIMES`' CSV.
fn exits(path: &Path) -> Vec<Option<u64>> {
    let text = std::fs::read_to_string(path).unwrap();
    (text.lines().skip(1))
        .map(|l| l.split(',').nth(2).and_then(|x| x.parse().ok()))
        .collect()
}

#[test]
fn a_worker_killed_mid_stream_loses_no_frame() {
    let dir = support::tmp("adapt", "kill");
    let times = dir.join("frames.csv");
    let (kill, die) = tokio::sync::oneshot::channel();
    let doomed = Doomed {
        runs: Arc::new(AtomicU64::new(0)),
        after: 8,
        kill: Arc::new(Mutex::new(Some(kill))),
    };
    let a = ThreadWorker::start(Arc::new(TractEngine), None);
    let b = ThreadWorker::start(Arc::new(doomed), Some(die));
    let c = ThreadWorker::start(Arc::new(TractEngine), None);
    let hil = hil_table(&[&a, &b, &c]);
    let s = scenario(&dir, "on_device_loss = \"replan\"", &hil);
    let mut run = coord::from_scenario(&s).unwrap();
    run.progress = false;
    let t = Instant::now();
    let r = with_frame_times(&times, || coord::execute(&run).unwrap());
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    eprintln!("{}", r.text());

    assert_eq!(r.error, None, "{}", r.text());
    assert_eq!(r.frames_completed as u64, FRAMES, "{}", r.text());
    assert!(r.failed_frames.is_empty());
    // the first frames, and the first ones out of the new plan, against the whole model
    let v = r.verification.as_ref().expect("verified");
    assert!(v.ok && v.frames > 2, "{v:?}");
    assert_eq!(r.replans.len(), 1, "{}", r.text());
    let rp = &r.replans[0].replan;
    assert!(rp.reason.contains("device b"), "{rp:?}");
    let on_b = |m: &[String]| m.iter().any(|p| p.starts_with("b.cpu"));
    assert!(on_b(&rp.mapping_before), "{rp:?}");
    assert!(!on_b(&rp.mapping_after), "{rp:?}");
    assert!(rp.detect_ms < 1000.0, "{rp:?}");
    let recovery = r.replans[0].recovery_ms;
    assert!(recovery.is_some_and(|m| m < 10_000.0), "{recovery:?}");
    // the report describes the plan in force at the end: devices a and c
    let devices: Vec<&str> = r.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(devices, ["a", "c"]);
    every_frame_once_in_order(&times);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["replans"][0]["frames_rerun"], rp.frames_rerun);
    assert_eq!(json["failed_frames"].as_array().unwrap().len(), 0);
}

#[test]
fn a_link_far_slower_than_planned_is_re_planned_for() {
    let dir = support::tmp("adapt-slow", "link");
    let times = dir.join("frames.csv");
    let a = ThreadWorker::start(Arc::new(TractEngine), None);
    let b = ThreadWorker::start(Arc::new(TractEngine), None);
    let c = ThreadWorker::start(Arc::new(TractEngine), None);
    let hil = hil_table(&[&a, &b, &c]);
    let s = scenario(&dir, "on_slowdown = \"replan\"", &hil);
    let mut run = coord::from_scenario(&s).unwrap();
    run.progress = false;
    // a's tensors to b leave at 20 Mbit/s where the platform says 1000
    let slow = Shaping {
        delay_us: 0,
        rate_bps: 20_000_000,
    };
    run.shaping.insert((0, 1), slow);
    let t = Instant::now();
    let r = with_frame_times(&times, || coord::execute(&run).unwrap());
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    eprintln!("{}", r.text());
    assert_eq!(r.error, None, "{}", r.text());
    assert_eq!(r.frames_completed as u64, FRAMES, "{}", r.text());
    assert!(r
        .verification
        .as_ref()
        .is_some_and(|v| v.ok && v.frames > 2));
    assert!(!r.replans.is_empty(), "{}", r.text());
    let rp = &r.replans[0].replan;
    // b's link also carries b -> c at its rate: only a's is called slow
    assert!(rp.reason.starts_with("link a-sw at "), "{rp:?}");
    assert!(!rp.reason.contains("b-sw"), "{rp:?}");
    every_frame_once_in_order(&times);
}
