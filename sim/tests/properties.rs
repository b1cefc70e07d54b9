//! Property tests of the invariants the simulator promises (docs/simulator.md), on random
//! small models (chains and DAGs) mapped onto random 1-4 device platforms, whole units and
//! core sets alike.
//!
//! Case counts (CI runs them in the release profile; `PROPTEST_CASES` does not override
//! them): 256 for the cheap per-run invariants, 128 for determinism (two full reports per
//! case) and 1,024 for bandwidth monotonicity (two runs of a chain per case); plus a
//! census over a fixed draw of 30,000 chains.

mod common;

use std::path::Path;

use common::graph;
use dicesim_plan::graph::Graph;
use dicesim_sim::engine::Outcome;
use dicesim_sim::platform::Platform;
use dicesim_sim::report::Report;
use dicesim_sim::{PreparedScenario, SimPlan, Window, Workload};
use proptest::prelude::*;

/// One device of a random platform.
#[derive(Debug, Clone)]
struct DevSpec {
    cores: u32,
    gflops: f64,
    mem_gbps: f64,
    idle_w: f64,
    busy_w: f64,
    serial_fraction: f64,
    gpu: bool,
}

/// How the devices are joined.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Net {
    /// A switch with one full-duplex link per device.
    Star,
    /// A full-duplex link between every pair of devices.
    Mesh,
    /// One half-duplex medium joining every device (Wi-Fi).
    Shared,
}

/// A unit a layer may be mapped to.
struct Candidate {
    name: String,
    device: usize,
}

/// A random model, platform, mapping and workload.
#[derive(Debug, Clone)]
struct Case {
    /// Per layer: FLOPs and the indices of its inputs (0 = graph input, i + 1 = layer i's
    /// output).
    layers: Vec<(u64, Vec<usize>)>,
    bytes: u64,
    devices: Vec<DevSpec>,
    net: Net,
    bandwidth_mbps: f64,
    latency_us: f64,
    /// Per layer, an index into the candidate units (taken modulo their number).
    assign: Vec<usize>,
    frames: u32,
    period_us: u64,
    window: Window,
}

fn dev_spec() -> impl Strategy<Value = DevSpec> {
    (
        1u32..=4,
        0.5f64..8.0,
        0.5f64..20.0,
        0.0f64..3.0,
        0.0f64..5.0,
        0.0f64..0.5,
        any::<bool>(),
    )
        .prop_map(
            |(cores, gflops, mem_gbps, idle_w, busy_w, serial_fraction, gpu)| DevSpec {
                cores,
                gflops,
                mem_gbps,
                idle_w,
                busy_w,
                serial_fraction,
                gpu,
            },
        )
}

/// `n` layers; layer `i` reads one or two of the graph input and the earlier outputs
/// (`chain`: exactly the previous layer's output).
fn layers(n: usize, chain: bool) -> impl Strategy<Value = Vec<(u64, Vec<usize>)>> {
    let one = (
        0u64..5_000_000,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    prop::collection::vec(one, n).prop_map(move |v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (flops, a, b, two))| {
                if chain {
                    return (flops, vec![i]);
                }
                let mut ins = vec![a.index(i + 1)];
                if two && b.index(i + 1) != ins[0] {
                    ins.push(b.index(i + 1));
                }
                (flops, ins)
            })
            .collect()
    })
}

fn window() -> impl Strategy<Value = Window> {
    prop_oneof![
        Just(Window::Unlimited),
        (1u32..4).prop_map(Window::Frames),
        Just(Window::PartitionsPlus(2)),
    ]
}

/// A random case; `chain`: the model is a chain; `shared`: whether a shared medium may
/// join the devices.
fn case(chain: bool, shared: bool) -> impl Strategy<Value = Case> {
    let nets = if shared {
        vec![Net::Star, Net::Mesh, Net::Shared]
    } else {
        vec![Net::Star, Net::Mesh]
    };
    (1usize..=7).prop_flat_map(move |n| {
        (
            layers(n, chain),
            1u64..2_000_000,
            prop::collection::vec(dev_spec(), 1..=4),
            prop::sample::select(nets.clone()),
            (1.0f64..1000.0, 0.0f64..500.0),
            prop::collection::vec(0usize..64, n),
            (1u32..=8, prop_oneof![Just(0u64), 1u64..20_000], window()),
        )
            .prop_map(
                |(layers, bytes, devices, net, (bw, lat), assign, (frames, period_us, window))| {
                    Case {
                        layers,
                        bytes,
                        devices,
                        net,
                        bandwidth_mbps: bw,
                        latency_us: lat,
                        assign,
                        frames,
                        period_us,
                        window,
                    }
                },
            )
    })
}

impl Case {
    fn graph(&self) -> Graph {
        let names: Vec<String> = (0..=self.layers.len())
            .map(|i| {
                if i == 0 {
                    "in".into()
                } else {
                    format!("t{}", i - 1)
                }
            })
            .collect();
        let labels: Vec<String> = (0..self.layers.len()).map(|i| format!("l{i}")).collect();
        let ins: Vec<Vec<&str>> = (self.layers.iter())
            .map(|(_, ins)| ins.iter().map(|&t| names[t].as_str()).collect())
            .collect();
        let outs: Vec<[&str; 1]> = (1..=self.layers.len())
            .map(|i| [names[i].as_str()])
            .collect();
        let spec: Vec<(&str, u64, &[&str], &[&str])> = (0..self.layers.len())
            .map(|i| {
                let l: (&str, u64, &[&str], &[&str]) =
                    (&labels[i], self.layers[i].0, &ins[i], &outs[i]);
                l
            })
            .collect();
        graph(&spec, &["in"], self.bytes)
    }

    /// The platform file, every link's bandwidth times `bw_factor`.
    fn platform_toml(&self, bw_factor: f64) -> String {
        let mut s = String::from("name = \"prop\"\n");
        for (i, d) in self.devices.iter().enumerate() {
            s += &format!(
                "[[device]]\nname = \"d{i}\"\nmemory_mb = 4096\nidle_w = {}\n\
                 [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = {}\ngflops = {}\n\
                 mem_gbps = {}\nbusy_w = {}\nserial_fraction = {}\n",
                d.idle_w, d.cores, d.gflops, d.mem_gbps, d.busy_w, d.serial_fraction
            );
            if d.gpu {
                s += &format!(
                    "[[device.unit]]\nname = \"gpu\"\nkind = \"gpu\"\ngflops = {}\n\
                     mem_gbps = {}\nbusy_w = {}\n",
                    d.gflops * 4.0,
                    d.mem_gbps,
                    d.busy_w * 2.0
                );
            }
        }
        s + &self.links_toml(bw_factor)
    }

    fn links_toml(&self, bw_factor: f64) -> String {
        let n = self.devices.len();
        let link = |name: String, ends: String, shared: bool| {
            format!(
                "[[link]]\nname = \"{name}\"\nends = [{ends}]\nbandwidth_mbps = {}\n\
                 latency_us = {}\nshared_medium = {shared}\n",
                self.bandwidth_mbps * bw_factor,
                self.latency_us
            )
        };
        if n < 2 {
            return String::new();
        }
        match self.net {
            Net::Star => {
                let mut s = String::from("[[switch]]\nname = \"sw\"\n");
                for i in 0..n {
                    s += &link(format!("l{i}"), format!("\"d{i}\", \"sw\""), false);
                }
                s
            }
            Net::Mesh => {
                let mut s = String::new();
                for i in 0..n {
                    for j in i + 1..n {
                        s += &link(format!("l{i}-{j}"), format!("\"d{i}\", \"d{j}\""), false);
                    }
                }
                s
            }
            Net::Shared => {
                let ends: Vec<String> = (0..n).map(|i| format!("\"d{i}\"")).collect();
                link("air".into(), ends.join(", "), true)
            }
        }
    }

    /// The units a layer may run on: whole units and core sets of the CPUs.
    fn candidates(&self) -> Vec<Candidate> {
        let mut c = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let mut add = |unit: &str| {
                c.push(Candidate {
                    name: format!("d{i}.{unit}"),
                    device: i,
                })
            };
            add("cpu");
            if d.gpu {
                add("gpu");
            }
            if d.cores >= 2 {
                add("cpu[0]");
                add("cpu[1]");
            }
            if d.cores >= 4 {
                add("cpu[2-3]");
            }
        }
        c
    }

    /// The case with its layers moved so that no device holds two partitions (of a chain):
    /// a layer whose device an earlier partition used joins the previous layer's partition.
    /// Then no unit, core, link direction or memory bandwidth serves two partitions.
    fn own_devices(mut self) -> Case {
        let cands = self.candidates();
        let mut used: Vec<usize> = Vec::new();
        for i in 0..self.assign.len() {
            let mut a = self.assign[i] % cands.len();
            if i > 0 && a != self.assign[i - 1] && used.contains(&cands[a].device) {
                a = self.assign[i - 1];
            }
            if !used.contains(&cands[a].device) {
                used.push(cands[a].device);
            }
            self.assign[i] = a;
        }
        self
    }

    /// The prepared scenario and the assignment (unit index per layer).
    fn prepare(&self, bw_factor: f64) -> (PreparedScenario, Vec<usize>) {
        let text = self.platform_toml(bw_factor);
        let mut p = Platform::from_str(Path::new("prop.toml"), &text).expect("valid platform");
        let cands = self.candidates();
        let assign = (self.assign.iter())
            .map(|&a| p.resolve_unit(&cands[a % cands.len()].name).expect("unit"))
            .collect();
        let w = Workload {
            frames: self.frames,
            period_ns: self.period_us * 1000,
            window: self.window,
        };
        (PreparedScenario::new(self.graph(), p, w), assign)
    }

    fn run(&self, bw_factor: f64) -> (PreparedScenario, SimPlan, Outcome) {
        let (ps, assign) = self.prepare(bw_factor);
        let plan = ps.sim_plan(&assign);
        let out = ps.simulate(&plan, true).expect("simulation runs");
        (ps, plan, out)
    }
}

/// Every connection carries its bytes once per frame, after its producer ran and before
/// its consumer does; each link carries the bytes of the transfers routed over it.
fn check_bytes(ps: &PreparedScenario, plan: &SimPlan, out: &Outcome) -> Result<(), TestCaseError> {
    let frames = out.entry_ns.len();
    for (ci, c) in plan.conns.iter().enumerate() {
        let ts: Vec<_> = out.transfers.iter().filter(|t| t.conn == ci).collect();
        prop_assert_eq!(ts.len(), frames, "conn {} transfers", ci);
        let sent: u64 = ts.iter().map(|t| t.bytes).sum();
        prop_assert_eq!(sent, c.bytes * frames as u64, "conn {} bytes", ci);
        for t in ts {
            let producer = job(out, c.from, t.frame)?;
            let consumer = job(out, c.to, t.frame)?;
            prop_assert!(producer.end <= t.start && t.start <= t.end);
            prop_assert!(t.end <= consumer.start, "consumer starts before delivery");
        }
    }
    for l in 0..ps.platform.links.len() {
        let routed: u64 = (out.transfers.iter())
            .filter(|t| t.links.contains(&l))
            .map(|t| t.bytes)
            .sum();
        prop_assert_eq!(out.link_bytes[l], routed, "link {} bytes", l);
    }
    Ok(())
}

fn job(
    out: &Outcome,
    part: usize,
    frame: u32,
) -> Result<&dicesim_sim::engine::JobRecord, TestCaseError> {
    let mut it = (out.jobs.iter()).filter(|j| j.part == part && j.frame == frame);
    let j = it
        .next()
        .ok_or_else(|| TestCaseError::fail("job missing"))?;
    prop_assert!(
        it.next().is_none(),
        "part {} ran frame {} twice",
        part,
        frame
    );
    Ok(j)
}

/// Every partition runs every frame once, in frame order; every frame enters, exits once,
/// after it entered, and frames exit in order.
fn check_frames(plan: &SimPlan, out: &Outcome, frames: u32) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.entry_ns.len(), frames as usize);
    prop_assert_eq!(out.jobs.len(), plan.parts.len() * frames as usize);
    for p in 0..plan.parts.len() {
        let mut last = 0;
        for f in 0..frames {
            let j = job(out, p, f)?;
            prop_assert!(j.start >= last, "part {} runs frame {} early", p, f);
            prop_assert!(j.start >= out.entry_ns[f as usize] && j.end >= j.start);
            last = j.end;
        }
    }
    for f in 0..frames as usize {
        prop_assert!(out.entry_ns[f] <= out.exit_ns[f]);
        if f > 0 {
            prop_assert!(
                out.exit_ns[f - 1] <= out.exit_ns[f],
                "frame {} overtakes",
                f
            );
        }
    }
    prop_assert_eq!(
        out.makespan_ns,
        out.exit_ns.iter().copied().max().unwrap_or(0)
    );
    Ok(())
}

/// Busy times fit in the makespan; a device is busy at least as long as any of its units.
fn check_busy(ps: &PreparedScenario, out: &Outcome) -> Result<(), TestCaseError> {
    let m = out.makespan_ns;
    for (u, unit) in ps.platform.units.iter().enumerate() {
        prop_assert!(out.unit_busy_ns[u] <= m, "unit {} busy past makespan", u);
        prop_assert!(out.unit_busy_ns[u] <= out.device_busy_ns[unit.device]);
    }
    for d in 0..ps.platform.devices.len() {
        prop_assert!(
            out.device_busy_ns[d] <= m,
            "device {} busy past makespan",
            d
        );
    }
    for l in 0..ps.platform.links.len() {
        prop_assert!(out.link_busy_ns[l] <= m, "link {} busy past makespan", l);
    }
    Ok(())
}

/// A device draws its idle power all the time and at most idle + every unit's busy power.
fn check_energy(ps: &PreparedScenario, out: &Outcome) -> Result<(), TestCaseError> {
    let secs = out.makespan_ns as f64 * 1e-9;
    for (d, dev) in ps.platform.devices.iter().enumerate() {
        let e = out.device_energy_j[d];
        let idle = dev.idle_w * secs;
        let busy: f64 = (ps.platform.units.iter())
            .filter(|u| u.device == d)
            .map(|u| u.busy_w)
            .sum();
        let tol = 1e-9 * (1.0 + e.abs());
        prop_assert!(e >= idle - tol, "device {} energy {} < idle {}", d, e, idle);
        prop_assert!(
            e <= idle + busy * secs + tol,
            "device {} energy {} too high",
            d,
            e
        );
    }
    Ok(())
}

fn report_json(c: &Case) -> String {
    let (ps, plan, out) = c.run(1.0);
    let objectives = ps.objectives_with(&plan, Some(&out)).expect("objectives");
    Report::new("prop", "explicit", &ps, &plan, &out, &objectives).to_json()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bytes_sent_equal_bytes_received(c in case(false, true)) {
        let (ps, plan, out) = c.run(1.0);
        check_bytes(&ps, &plan, &out)?;
    }

    #[test]
    fn every_frame_exits_once_and_in_order(c in case(false, true)) {
        let (_, plan, out) = c.run(1.0);
        check_frames(&plan, &out, c.frames)?;
    }

    #[test]
    fn busy_time_fits_in_makespan(c in case(false, true)) {
        let (ps, _, out) = c.run(1.0);
        check_busy(&ps, &out)?;
    }

    #[test]
    fn energy_at_least_idle_power_times_makespan(c in case(false, true)) {
        let (ps, _, out) = c.run(1.0);
        check_energy(&ps, &out)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn identical_inputs_give_identical_reports(c in case(false, true)) {
        prop_assert_eq!(report_json(&c), report_json(&c));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Only where every partition has a device of its own, so each stage of the pipeline
    /// (a unit, a link direction) serves one partition's frames in order and the run's
    /// times are max-plus expressions of the stage times, which more bandwidth only
    /// shortens. Where stages serve two partitions (units that take turns, a link or a
    /// memory bandwidth shared by two transfers or jobs), a faster network can change who
    /// comes first and make the run slower: `census_of_bandwidth_anomalies`,
    /// `sim/tests/cores.rs` (a case in closed form), docs/simulator.md.
    #[test]
    fn more_bandwidth_never_slower_on_chains_of_own_devices(
        c in case(true, false).prop_map(Case::own_devices),
        k in 1.0f64..16.0,
    ) {
        check_not_slower(&c, k)?;
    }
}

/// The outcomes of `c` at 1x and at `k` x the bandwidth.
fn slow_and_fast(c: &Case, k: f64) -> (Outcome, Outcome) {
    (c.run(1.0).2, c.run(k).2)
}

/// Runs `c` at 1x and at `k` x the bandwidth: the faster network must not raise the
/// makespan or the worst latency.
fn check_not_slower(c: &Case, k: f64) -> Result<(), TestCaseError> {
    let (slow, fast) = slow_and_fast(c, k);
    prop_assert!(
        fast.makespan_ns <= slow.makespan_ns,
        "makespan {} -> {} with {}x bandwidth",
        slow.makespan_ns,
        fast.makespan_ns,
        k
    );
    let worst = |o: &Outcome| o.latencies_ns().into_iter().max().unwrap_or(0);
    prop_assert!(worst(&fast) <= worst(&slow));
    Ok(())
}

/// The figures docs/simulator.md gives ("Sharing has anomalies"), from a fixed draw of
/// 30,000 chains: how many run slower with more bandwidth (printed: `--nocapture`), and
/// none of them once every partition has a device of its own.
#[test]
fn census_of_bandwidth_anomalies() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let draw = (case(true, false), 1.0f64..16.0);
    let (mut slower, mut worst) = (0, 0.0f64);
    for _ in 0..30_000 {
        let (c, k) = draw.new_tree(&mut runner).expect("a case").current();
        if let Err(e) = check_not_slower(&c.clone().own_devices(), k) {
            panic!("{e} on own devices: {c:?}, k = {k}");
        }
        let (slow, fast) = slow_and_fast(&c, k);
        if fast.makespan_ns > slow.makespan_ns {
            slower += 1;
            let by = (fast.makespan_ns - slow.makespan_ns) as f64 / slow.makespan_ns as f64;
            worst = worst.max(by);
        }
    }
    println!("30000 chains: {slower} slower with more bandwidth, by up to {worst:.3}");
}
