//! Core sets, thread scaling and shared memory bandwidth, against closed forms (the
//! semantics of SimGrid's multicore hosts: a job holds its cores, disjoint core sets run at
//! once, memory bandwidth is max-min shared like a link).

mod common;

use std::path::Path;

use common::graph;
use dicesim_plan::graph::Graph;
use dicesim_sim::platform::Platform;
use dicesim_sim::{PreparedScenario, Window, Workload};

const MS: u64 = 1_000_000;

/// One device `d` with a 2-core CPU of `gflops` (all cores), serial fraction `s`, memory
/// bandwidth `mem_gbps`; `extra` is appended to the device (more keys or units).
fn platform(gflops: f64, s: f64, mem_gbps: f64, extra: &str) -> Platform {
    let text = format!(
        "name = \"t\"\n[[device]]\nname = \"d\"\nmemory_mb = 1024\n{extra}\n\
         [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 2\ngflops = {gflops}\n\
         serial_fraction = {s}\nmem_gbps = {mem_gbps}\n"
    );
    Platform::from_str(Path::new("t.toml"), &text).expect("valid platform")
}

/// Two independent layers `a` and `b` of `flops` each, reading the input, tensors `bytes`.
fn two_branches(flops: u64, bytes: u64) -> Graph {
    graph(
        &[("a", flops, &["in"], &["x"]), ("b", flops, &["in"], &["y"])],
        &["in"],
        bytes,
    )
}

/// `a` then `b`, `flops` each.
fn chain(flops: u64) -> Graph {
    graph(
        &[("a", flops, &["in"], &["x"]), ("b", flops, &["x"], &["y"])],
        &["in"],
        1000,
    )
}

/// The prepared scenario with the units `names` resolved (core sets added); their indices.
fn prep(g: Graph, mut p: Platform, names: &[&str], frames: u32) -> (PreparedScenario, Vec<usize>) {
    let ids = names.iter().map(|n| p.resolve_unit(n).unwrap()).collect();
    let w = Workload {
        frames,
        period_ns: 0,
        window: Window::Unlimited,
    };
    (PreparedScenario::new(g, p, w), ids)
}

#[test]
fn two_one_core_jobs_vs_one_two_core_job() {
    // 2 cores, all-core rate 2 GFLOP/s, serial fraction 0.5: S(2) = 2 / 1.5 = 4/3, so one
    // core runs at 2 / (4/3) = 1.5 GFLOP/s. Two 3-MFLOP layers:
    // - on cores 0 and 1 at once: 3e6 / 1.5 = 2 ms each, both done at 2 ms;
    // - both on the whole CPU (one 2-core job at 2 GFLOP/s): 1.5 ms + 1.5 ms = 3 ms.
    let p = platform(2.0, 0.5, 1e9, "");
    let (ps, u) = prep(
        two_branches(3 * MS, 1000),
        p,
        &["d.cpu[0]", "d.cpu[1]", "d.cpu"],
        1,
    );
    let split = ps.evaluate_assignment(&[u[0], u[1]]).unwrap();
    assert_eq!(split.partitions, 2);
    assert_eq!(split.latency_max_ns, 2 * MS);
    let whole = ps.evaluate_assignment(&[u[2], u[2]]).unwrap();
    assert_eq!(whole.latency_max_ns, 3 * MS);
    // perfect scaling (s = 0): the same 3 ms either way, 1 GFLOP/s per core
    let p = platform(2.0, 0.0, 1e9, "");
    let (ps, u) = prep(
        two_branches(3 * MS, 1000),
        p,
        &["d.cpu[0]", "d.cpu[1]", "d.cpu"],
        1,
    );
    assert_eq!(
        ps.evaluate_assignment(&[u[0], u[1]])
            .unwrap()
            .latency_max_ns,
        3 * MS
    );
    assert_eq!(
        ps.evaluate_assignment(&[u[2], u[2]])
            .unwrap()
            .latency_max_ns,
        3 * MS
    );
}

#[test]
fn pipeline_on_two_cores_vs_both_stages_on_one_core() {
    // 1 GFLOP/s per core (2 cores, s = 0), stages of 4 ms; n frames saturated:
    // cores 0 and 1: makespan (n + 1) * 4 ms (throughput 1 / max stage);
    // both on core 0: n * 8 ms (1 / sum); the hand-over between core sets is in memory
    let n = 20;
    let p = platform(2.0, 0.0, 1e9, "");
    let (ps, u) = prep(chain(4 * MS), p, &["d.cpu[0]", "d.cpu[1]"], n);
    let piped = ps.evaluate_assignment(&[u[0], u[1]]).unwrap();
    assert_eq!(piped.makespan_ns, (u64::from(n) + 1) * 4 * MS);
    let serial = ps.evaluate_assignment(&[u[0], u[0]]).unwrap();
    assert_eq!(serial.makespan_ns, u64::from(n) * 8 * MS);
}

#[test]
fn overlapping_core_sets_take_turns() {
    // cores 0-1 and core 1 share core 1: the two 1-core-equivalent jobs run one after the
    // other (2 GFLOP/s on both cores, 1 on one: 2 ms + 4 ms)
    let p = platform(2.0, 0.0, 1e9, "");
    let (ps, u) = prep(
        two_branches(4 * MS, 1000),
        p,
        &["d.cpu[0-1]", "d.cpu[1]"],
        1,
    );
    let m = ps.evaluate_assignment(&[u[0], u[1]]).unwrap();
    assert_eq!(m.makespan_ns, 6 * MS);
}

#[test]
fn two_memory_bound_jobs_share_the_bandwidth() {
    // 1 GB/s = 1 byte/ns; each layer moves 1 MB in + 1 MB out = 2 MB: 2 ms alone.
    // On cores 0 and 1 at once they share the CPU's 1 GB/s: both end at 4 ms.
    let bytes = 1_000_000;
    let p = platform(1e6, 0.0, 1.0, "");
    let (ps, u) = prep(two_branches(1000, bytes), p, &["d.cpu[0]", "d.cpu[1]"], 1);
    let alone = ps.evaluate_assignment(&[u[0], u[0]]).unwrap();
    assert_eq!(alone.makespan_ns, 4 * MS, "one core, one after the other");
    let both = ps.evaluate_assignment(&[u[0], u[1]]).unwrap();
    assert_eq!(
        both.makespan_ns,
        4 * MS,
        "at once, at half the bandwidth each"
    );
    assert_eq!(both.latency_max_ns, 4 * MS);
    // compute-bound jobs (2 ms of compute, 0.2 ms of memory each) do not slow each other
    let p = platform(2.0, 0.0, 10.0, "");
    let (ps, u) = prep(two_branches(2 * MS, bytes), p, &["d.cpu[0]", "d.cpu[1]"], 1);
    assert_eq!(
        ps.evaluate_assignment(&[u[0], u[1]]).unwrap().makespan_ns,
        2 * MS
    );
}

#[test]
fn a_device_bandwidth_is_shared_by_its_units() {
    // a GPU beside the CPU, each 1 GB/s; a 2 MB layer on each at once. With the device's
    // default bandwidth (their sum) they do not interfere; with `mem_gbps = 1` on the device
    // they share it and both end at 4 ms.
    let gpu = "[[device.unit]]\nname = \"gpu\"\nkind = \"gpu\"\ngflops = 1e6\nmem_gbps = 1.0\n";
    for (device_key, expected) in [("", 2 * MS), ("mem_gbps = 1.0", 4 * MS)] {
        let p = Platform::from_str(Path::new("t.toml"), &platform_text(device_key, gpu)).unwrap();
        let (ps, u) = prep(two_branches(1000, 1_000_000), p, &["d.cpu", "d.gpu"], 1);
        let m = ps.evaluate_assignment(&[u[0], u[1]]).unwrap();
        assert_eq!(m.makespan_ns, expected, "device key `{device_key}`");
    }
}

fn platform_text(device_key: &str, more_units: &str) -> String {
    format!(
        "name = \"t\"\n[[device]]\nname = \"d\"\nmemory_mb = 1024\n{device_key}\n\
         [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 2\ngflops = 1e6\n\
         mem_gbps = 1.0\n{more_units}"
    )
}

#[test]
fn core_set_names_resolve_or_say_what_is_wrong() {
    let gpu = "[[device.unit]]\nname = \"gpu\"\nkind = \"gpu\"\ngflops = 1.0\nmem_gbps = 1.0\n";
    let mut p = Platform::from_str(Path::new("t.toml"), &platform_text("", gpu)).unwrap();
    let n = p.units.len();
    assert_eq!(p.resolve_unit("d.cpu").unwrap(), 0);
    assert_eq!(
        p.resolve_unit("d.cpu[0-1]").unwrap(),
        0,
        "every core is the unit"
    );
    let c0 = p.resolve_unit("d.cpu[0]").unwrap();
    assert_eq!(c0, n);
    assert_eq!(
        p.resolve_unit("d.cpu0").unwrap(),
        c0,
        "AutoDiCE's per-core name"
    );
    assert_eq!(p.units[c0].full_name, "d.cpu[0]");
    assert_eq!(p.units[c0].parent, 0);
    assert_eq!(p.units[c0].threads(), 1);
    let e = p.resolve_unit("d.gpu[0]").unwrap_err();
    assert!(e.contains("GPU"), "{e}");
    let e = p.resolve_unit("d.cpu[2]").unwrap_err();
    assert!(e.contains("has 2 cores"), "{e}");
    let e = p.resolve_unit("d.npu").unwrap_err();
    assert!(e.contains("d.cpu, d.gpu"), "{e}");
    let e = p.resolve_unit("d.cpu[1-").unwrap_err();
    assert!(e.contains("d.cpu[1-"), "{e}");
}

#[test]
fn autodice_per_core_mapping_runs_on_cores() {
    // AutoDiCE's mapping.json: one rank per core, `d_cpu0` and `d_cpu1`
    let g = two_branches(3 * MS, 1000);
    let json = r#"{"d_cpu0": ["a"], "d_cpu1": ["b"]}"#;
    let m = dicesim_plan::mapping::Mapping::from_json_str(json, &g, "m.json").unwrap();
    let p = platform(2.0, 0.0, 1e9, "");
    let (ps, _) = prep(g, p, &["d.cpu0", "d.cpu1"], 1);
    let metrics = ps.evaluate(&m).unwrap();
    assert_eq!(metrics.partitions, 2);
    assert_eq!(
        metrics.latency_max_ns,
        3 * MS,
        "1 GFLOP/s per core, both at once"
    );
}

#[test]
fn overlapping_core_sets_take_turns_first_come_so_more_bandwidth_can_be_slower() {
    // a -> b -> c; a on d's whole 2-core CPU (2 ms), b on e (2 ms), c on d's core 0
    // (10 ms); 2,000-byte tensors over an 8 Mbit/s link (2 ms each way); frames enter at 0
    // and 6 ms.
    // Slow: c's frame 0 is ready at 8 ms, after a's frame 1 took the CPU at 6 ms: a 6-8,
    // b 10-12, c 8-18 then 18-28. With 4x the bandwidth, c's frame 0 is ready at 5 ms and
    // holds core 0 until 15: a's frame 1 waits for it (15-17), b 17.5-19.5, c 20-30, and
    // frame 1's latency is 24 ms instead of 22. A non-preemptive first-come schedule has
    // such anomalies (Graham's), and so do the rig and real workers, which serve
    // overlapping core sets the same way.
    let run = |mbps: f64| {
        let text = format!(
            "name = \"t\"\n\
             [[device]]\nname = \"d\"\nmemory_mb = 1024\n\
             [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 2\ngflops = 2.0\n\
             serial_fraction = 0.0\nmem_gbps = 1e9\n\
             [[device]]\nname = \"e\"\nmemory_mb = 1024\n\
             [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 1\ngflops = 1.0\n\
             mem_gbps = 1e9\n\
             [[link]]\nname = \"l\"\nends = [\"d\", \"e\"]\nbandwidth_mbps = {mbps}\n\
             latency_us = 0\n"
        );
        let mut p = Platform::from_str(Path::new("t.toml"), &text).expect("valid platform");
        let units: Vec<usize> = ["d.cpu", "e.cpu", "d.cpu[0]"]
            .iter()
            .map(|n| p.resolve_unit(n).unwrap())
            .collect();
        let g = graph(
            &[
                ("a", 4 * MS, &["in"], &["x"]),
                ("b", 2 * MS, &["x"], &["y"]),
                ("c", 10 * MS, &["y"], &["z"]),
            ],
            &["in"],
            2000,
        );
        let w = Workload {
            frames: 2,
            period_ns: 6 * MS,
            window: Window::Frames(2),
        };
        let ps = PreparedScenario::new(g, p, w);
        ps.evaluate_assignment(&units).unwrap()
    };
    let slow = run(8.0);
    let fast = run(32.0);
    assert_eq!(slow.makespan_ns, 28 * MS);
    assert_eq!(fast.makespan_ns, 30 * MS);
    assert_eq!(slow.latency_max_ns, 22 * MS);
    assert_eq!(fast.latency_max_ns, 24 * MS);
}
