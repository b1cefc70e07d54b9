//! The report phase: what the stream and the workers measured, as a [`RunReport`] in
//! platform time (every duration divided by the run's time dilation).

use super::session::{Loaded, Placement, WorkerStats};
use super::stream::Streamed;
use super::{HilRun, Prepared, TOLERANCE};
use crate::proto::{EdgeStat, FROM_COORDINATOR};
use crate::report::{DeviceM, EdgeM, LinkM, PartitionM, RunReport, Stats, VerifyM};
use dicesim_sim::report::{r6, LatencyMs};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The report of a run.
pub(super) fn report(
    run: &HilRun,
    prep: &Prepared,
    place: &Placement,
    loaded: &[Loaded],
    s: Streamed,
    stats: &[Option<WorkerStats>],
) -> RunReport {
    let sc = &prep.scenario;
    let pf = &sc.prep.platform;
    let dil = run.dilation;
    let t = Timing::of(&s, dil);
    let compute: Vec<Vec<f64>> = (s.compute.iter())
        .map(|v| v.iter().map(|x| x / dil).collect())
        .collect();
    let mut all_edges: Vec<EdgeStat> = (stats.iter().flatten())
        .flat_map(|w| w.edges.iter().cloned())
        .collect();
    all_edges.extend(s.out_edges.into_values());
    let edges = edge_figures(&all_edges, dil);
    let devices = devices(prep, place, loaded, stats, &compute, t.makespan_ms);
    RunReport {
        scenario: sc.name.clone(),
        frames: s.frames as u32,
        latency_ms: t.latency,
        throughput_fps: r6(t.throughput),
        makespan_ms: r6(t.makespan_ms),
        energy_mj_per_frame: energy_per_frame(&devices, s.done),
        links: links(prep, &all_edges, dil, t.makespan_ms),
        mode: run.mode.clone(),
        backend: backend_name(loaded),
        model: prep.model.graph.name.clone(),
        platform: pf.name.clone(),
        strategy: sc.strategy.name().into(),
        window: s.window,
        frames_completed: s.done as u32,
        failed_frames: (0..s.frames)
            .filter(|&f| s.exit[f as usize].is_none())
            .collect(),
        error: s.error,
        verification: verification(&s.verified, &s.exit, s.max_err),
        partitions: partitions(prep, &compute, loaded),
        pipeline_efficiency: r6(t.throughput * slowest_stage(&compute, &edges, s.done) / 1e3),
        edges,
        devices,
        time_dilation: dil,
        host_gflops: run.host_gflops.map(r6),
        host_energy_mj: s.host_energy_mj.map(r6),
        replans: Vec::new(),
    }
}

/// Frame latencies, throughput and makespan [platform ms].
struct Timing {
    latency: LatencyMs,
    throughput: f64,
    makespan_ms: f64,
}

impl Timing {
    fn of(s: &Streamed, dil: f64) -> Timing {
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / dil;
        let lat: Vec<f64> = (0..s.frames as usize)
            .filter_map(|f| Some(ms(s.exit[f]? - s.entry[f]?)))
            .collect();
        let first = s.entry.iter().flatten().min().copied();
        let last = s.exit.iter().flatten().max().copied();
        let span_ms = match (first, last) {
            (Some(a), Some(b)) if b > a => ms(b - a),
            _ => 0.0,
        };
        let throughput = if span_ms > 0.0 {
            s.done as f64 / (span_ms / 1e3)
        } else {
            0.0
        };
        let ls = Stats::of(&lat);
        Timing {
            latency: LatencyMs {
                mean: ls.mean,
                p50: ls.p50,
                p95: ls.p95,
                max: ls.max,
            },
            throughput,
            makespan_ms: last.map(|l| ms(l - s.t_start)).unwrap_or(0.0),
        }
    }
}

/// A partition id from the wire (`None`: the coordinator).
fn endpoint(x: u32) -> Option<usize> {
    (x != FROM_COORDINATOR).then_some(x as usize)
}

/// Per-edge figures, graph inputs first, graph outputs last.
fn edge_figures(all: &[EdgeStat], dil: f64) -> Vec<EdgeM> {
    let mut edges: Vec<EdgeM> = (all.iter())
        .map(|e| EdgeM {
            from: endpoint(e.from),
            to: endpoint(e.to),
            tensor: e.tensor.clone(),
            count: e.count,
            bytes: e.bytes,
            transfer_ms_mean: r6(e.transfer_us as f64 / 1e3 / dil / e.count.max(1) as f64),
        })
        .collect();
    edges.sort_by_key(|e| (e.from.map_or(0, |x| x + 1), e.to.map_or(usize::MAX, |x| x)));
    edges
}

/// Each link's bytes and busy fraction: partition-to-partition transfers are attributed
/// to every link of their route.
fn links(prep: &Prepared, all: &[EdgeStat], dil: f64, makespan_ms: f64) -> Vec<LinkM> {
    let pf = &prep.scenario.prep.platform;
    let n_parts = prep.plan.partitions.len();
    let mut bytes = vec![0u64; pf.links.len()];
    let mut busy_ms = vec![0f64; pf.links.len()];
    for e in all {
        let (Some(a), Some(b)) = (endpoint(e.from), endpoint(e.to)) else {
            continue;
        };
        if a >= n_parts || b >= n_parts {
            continue;
        }
        let (da, db) = (prep.part_device[a], prep.part_device[b]);
        if let Some(route) = prep.scenario.prep.network.route(da, db) {
            for &l in &route.links {
                bytes[l] += e.bytes;
                busy_ms[l] += e.transfer_us as f64 / 1e3 / dil;
            }
        }
    }
    let frac = |x: f64| {
        if makespan_ms > 0.0 {
            r6((x / makespan_ms).min(1.0))
        } else {
            0.0
        }
    };
    (pf.links.iter().enumerate())
        .map(|(l, link)| LinkM {
            name: link.name.clone(),
            bytes: bytes[l],
            busy_frac: frac(busy_ms[l]),
        })
        .collect()
}

/// The mean time per frame of the slowest pipeline stage: a partition's compute, or all
/// transfers per frame between one ordered pair of partitions.
fn slowest_stage(compute: &[Vec<f64>], edges: &[EdgeM], done: u64) -> f64 {
    let mut pair_ms: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for e in edges {
        if let (Some(a), Some(b)) = (e.from, e.to) {
            let per_frame = e.count as f64 / done.max(1) as f64;
            *pair_ms.entry((a, b)).or_default() += e.transfer_ms_mean * per_frame;
        }
    }
    (compute.iter())
        .map(|v| Stats::of(v).mean)
        .chain(pair_ms.values().copied())
        .fold(0.0, f64::max)
}

/// The devices that ran partitions, in platform order.
fn devices(
    prep: &Prepared,
    place: &Placement,
    loaded: &[Loaded],
    stats: &[Option<WorkerStats>],
    compute: &[Vec<f64>],
    makespan_ms: f64,
) -> Vec<DeviceM> {
    let pf = &prep.scenario.prep.platform;
    let owners = sensor_users(stats);
    // `None` where the plan cannot be simulated
    let predicted =
        (prep.predicted_need_mb().ok()).map(|m| m.into_iter().map(r6).collect::<Vec<_>>());
    let mut used: Vec<usize> = prep.part_device.clone();
    used.sort();
    used.dedup();
    let mut devices = Vec::new();
    for d in used {
        let c = place.dev_conn[&d];
        let parts: Vec<usize> = (0..loaded.len())
            .filter(|&p| prep.part_device[p] == d)
            .collect();
        let busy: f64 = parts.iter().map(|&p| compute[p].iter().sum::<f64>()).sum();
        let st = stats[c].as_ref();
        // energy: a device's own sensor only; a sensor shared by several workers is not theirs
        let energy_mj = (st.and_then(|s| s.energy.as_ref()))
            .filter(|(id, _)| owners.get(id) == Some(&1))
            .map(|(_, uj)| r6(*uj as f64 / 1e3));
        // the worker sends 0 when it cannot read its peak RSS
        let memory_peak_mb = st
            .filter(|s| s.peak_rss_kb > 0)
            .map(|s| r6(s.peak_rss_kb as f64 / 1024.0));
        let memory_predicted_mb = predicted.as_ref().map(|m| m[d]);
        devices.push(DeviceM {
            name: pf.devices[d].name.clone(),
            busy_frac: if makespan_ms > 0.0 {
                r6(busy / makespan_ms)
            } else {
                0.0
            },
            energy_mj,
            memory_peak_mb,
            memory_predicted_mb,
            memory_error: memory_predicted_mb
                .zip(memory_peak_mb)
                .map(|(p, m)| r6((p - m) / m)),
            worker: place.addrs[c].clone(),
            backend: loaded[parts[0]].backend.clone(),
        });
    }
    devices
}

/// How many workers report each energy sensor.
fn sensor_users(stats: &[Option<WorkerStats>]) -> HashMap<String, usize> {
    let mut users: HashMap<String, usize> = HashMap::new();
    for (id, _) in stats.iter().flatten().filter_map(|s| s.energy.as_ref()) {
        *users.entry(id.clone()).or_default() += 1;
    }
    users
}

/// Energy per frame, when every device has a sensor of its own.
fn energy_per_frame(devices: &[DeviceM], done: u64) -> Option<f64> {
    if done == 0 || devices.iter().any(|d| d.energy_mj.is_none()) {
        return None;
    }
    Some(r6(
        devices.iter().filter_map(|d| d.energy_mj).sum::<f64>() / done as f64
    ))
}

/// The backend the workers used: its name, or the distinct names joined by `+` when
/// workers ran different backends.
fn backend_name(loaded: &[Loaded]) -> String {
    let mut names: Vec<&str> = loaded.iter().map(|l| l.backend.as_str()).collect();
    names.sort();
    names.dedup();
    names.join("+")
}

/// The output check, when every verified frame completed.
fn verification(
    verified: &[u64],
    exit: &[Option<std::time::Instant>],
    max_err: f64,
) -> Option<VerifyM> {
    let all_done = verified.iter().all(|&f| exit[f as usize].is_some());
    (!verified.is_empty() && all_done).then_some(VerifyM {
        frames: verified.len() as u32,
        max_rel_error: max_err,
        ok: max_err <= TOLERANCE,
    })
}

/// Per-partition figures.
fn partitions(prep: &Prepared, compute: &[Vec<f64>], loaded: &[Loaded]) -> Vec<PartitionM> {
    (prep.plan.partitions.iter().enumerate())
        .map(|(i, p)| PartitionM {
            id: i,
            unit: p.unit.clone(),
            layers: p.layers.len(),
            compute_ms: Stats::of(&compute[i]),
            load_ms: r6(loaded[i].load_ms),
        })
        .collect()
}
