//! The report names the backend each worker really ran (as the worker says when it loads a
//! partition), per device and for the run.

use dicesim_hil::engine::{Engine, EngineSession, TractEngine};
use dicesim_hil::{coord, worker};
use std::path::PathBuf;
use std::sync::Arc;

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

/// A loopback worker without a token, serving until the test process ends; its address.
fn start_worker(engine: Arc<dyn Engine>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().to_string()).unwrap();
            let _ = worker::serve(l, engine, Vec::new()).await;
        });
    });
    rx.recv().unwrap()
}

fn scenario(hil: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dicesim-hil-backend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
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
    let a = start_worker(Arc::new(TractEngine));
    let b = start_worker(Arc::new(Renamed("probe")));
    let s = scenario(&format!("a = \"{a}\"\nb = \"{b}\"\n"));
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
