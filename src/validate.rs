//! `dicesim validate`: calibrate the simulator on the emulation rig, then simulate and
//! emulate the same scenario and compare.
//!
//! Steps (all inside one rig, see `dicesim_hil::emulate`):
//! 1. **Links.** For every pair of devices that a partition edge connects, messages of
//!    several sizes (1 KiB up to twice the largest tensor on that pair) cross the shaped
//!    links one at a time, held for the route's latency first as workers do; `t = o + bytes /
//!    bw` is fitted by least squares on relative errors. Each link then gets
//!    `bandwidth = nominal x (fitted bw / route bottleneck)` and `latency = nominal + (o -
//!    route latency) / hops` (medians over the routes that cross it).
//! 2. **Compute profile.** On every device's CPU at once, pinned as its worker and paced by
//!    its duty cycle (`dicesim profile --duty`), the whole model runs in tract with every
//!    operator timed in place (thread CPU time, as the rig paces its workers), fitted to 8
//!    contiguous sub-model runs ([`crate::profile::fit_to_chunks`]: per-run cost and
//!    chunk-level attribution).
//! 3. **Rig correction.** Each device then runs the whole model through the rig itself
//!    (worker, wire protocol, pacing, and whatever else the rig does meanwhile) for 20
//!    frames (fewer, at least 3, past 4 s of platform time), one device after the other;
//!    its median measured compute over the profile's prediction for that run is the
//!    device's correction (0.9-1.35 on this 2-core VM:
//!    the worker's other threads and the coordinator share the device's CPU). The workload
//!    is fixed by the model, not by the mapping under test.
//! 4. Profile times x `pace / dilation x correction` become each used unit's profile and
//!    the per-run cost its `run_overhead_us`; with the link figures they are written as a
//!    calibration file (`cal.toml` + one CSV per unit) in the calibration folder
//!    (`--calibration-out DIR`, else a temporary folder that is removed), which a
//!    scenario's `[calibration] file` applies to its platform.
//! 5. Frames stream through the rig (the measured report); the simulator runs the scenario
//!    with the calibration and the rig's admission window (`window`).
//!
//! Compared figures: latency p50 and p95, throughput, each partition's mean compute time,
//! and each pair of partitions' transfer time (rig: the sum of its tensors' service times
//! on their connection, each from its hand-off or the previous message's arrival to its
//! last byte; simulator: calibrated route latency + their bytes / calibrated bottleneck).
//! Relative error = (simulated - measured) / measured.

use anyhow::{bail, Context, Result};
use dicesim_hil::emulate::Rig;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One compared figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// What is compared.
    pub metric: String,
    /// Simulator's value.
    pub simulated: f64,
    /// Rig's value.
    pub measured: f64,
    /// (simulated - measured) / measured (infinite when measured is 0 and simulated is not).
    pub rel_error: f64,
}

/// (simulated - measured) / measured.
pub fn rel(sim: f64, meas: f64) -> f64 {
    if meas == 0.0 {
        if sim == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (sim - meas) / meas
    }
}

fn row(metric: impl Into<String>, simulated: f64, measured: f64) -> Row {
    Row {
        metric: metric.into(),
        simulated,
        measured,
        rel_error: rel(simulated, measured),
    }
}

/// A route's fitted transfer model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteFit {
    /// Sending device.
    pub from: String,
    /// Receiving device.
    pub to: String,
    /// Messages timed.
    pub samples: usize,
    /// Fitted fixed cost per message, configured latency included [us].
    pub overhead_us: f64,
    /// Configured route latency [us].
    pub nominal_latency_us: f64,
    /// Fitted rate [Mbit/s].
    pub bandwidth_mbps: f64,
    /// Configured bottleneck [Mbit/s].
    pub nominal_mbps: f64,
    /// Median |fit - measured| / measured over the messages.
    pub fit_error: f64,
}

/// A device's compute calibration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceCal {
    /// Device.
    pub device: String,
    /// Its CPU on the host.
    pub cpu: Option<usize>,
    /// Measured whole-model compute on the rig over the profile's prediction for it.
    pub rig_correction: f64,
    /// Factor applied to host CPU times: the rig's slow-down (pace / dilation) x
    /// `rig_correction`.
    pub factor: f64,
    /// Whole-model run on the host, CPU time [us].
    pub host_run_us: f64,
    /// Per-run cost outside the operators, platform time [us].
    pub run_overhead_us: f64,
}

/// What the calibration measured and where it wrote it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    /// The calibration file.
    pub file: PathBuf,
    /// Route fits (empty without the rig's namespaces).
    pub routes: Vec<RouteFit>,
    /// Device compute calibrations.
    pub devices: Vec<DeviceCal>,
}

/// A scenario's comparison.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The simulator's report (its `run --json` form).
    pub simulated: serde_json::Value,
    /// The rig's report (its `emulate --json` form).
    pub measured: serde_json::Value,
    /// The compared figures; the first three are latency p50, latency p95, throughput.
    pub rows: Vec<Row>,
    /// The calibration used.
    pub calibration: Calibration,
}

impl Validation {
    /// Relative error of latency p50.
    pub fn latency_error(&self) -> f64 {
        self.rows[0].rel_error
    }
    /// Relative error of throughput.
    pub fn throughput_error(&self) -> f64 {
        self.rows[2].rel_error
    }
    /// JSON: the measured report's fields (the `run --json` shape), then `simulated` (the
    /// simulator's report), `measured` (the rig's, again), `rel_error` (latency p50/p95 and
    /// throughput), `errors` (every compared figure) and `calibration`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match &self.measured {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        v.insert("simulated".into(), self.simulated.clone());
        v.insert("measured".into(), self.measured.clone());
        v.insert(
            "rel_error".into(),
            json!({
                "latency_ms": {"p50": self.rows[0].rel_error, "p95": self.rows[1].rel_error},
                "throughput_fps": self.rows[2].rel_error,
            }),
        );
        v.insert(
            "errors".into(),
            serde_json::to_value(&self.rows).unwrap_or_default(),
        );
        v.insert(
            "calibration".into(),
            serde_json::to_value(&self.calibration).unwrap_or_default(),
        );
        serde_json::Value::Object(v)
    }
    /// A table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{:44} {:>12} {:>12} {:>9}\n",
            "metric", "simulated", "measured", "rel.err"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:44} {:>12.4} {:>12.4} {:>8.1}%",
                r.metric,
                r.simulated,
                r.measured,
                r.rel_error * 100.0
            );
        }
        s
    }
}

/// Validation settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep the calibration (cal.toml and the unit profiles) in this folder.
    pub calibration_out: Option<PathBuf>,
}

/// Calibrates, emulates and simulates the scenario at `path`.
pub fn validate(path: &Path, opts: &Options) -> Result<Validation> {
    let (dir, temporary) = match &opts.calibration_out {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (d.clone(), false)
        }
        None => {
            let d = std::env::temp_dir().join(format!("dicesim-cal-{}", std::process::id()));
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            (d, true)
        }
    };
    let res = validate_in(path, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    res
}

fn validate_in(path: &Path, dir: &Path) -> Result<Validation> {
    let (meas, calibration) = dicesim_hil::emulate::emulate_with(path, |rig| calibrate(rig, dir))?;
    if let Some(e) = &meas.error {
        bail!("the emulation failed: {e}");
    }
    let mut scenario = dicesim_sim::Scenario::load(path)?;
    // the rig's coordinator keeps at most `window` frames in flight: simulate the same
    // admission
    let mut workload = scenario.prep.workload;
    workload.window = Some(meas.window.max(1) as u32);
    let mut platform = scenario.prep.platform.clone();
    platform.apply_calibration(&calibration.file)?;
    scenario.prep =
        dicesim_sim::PreparedScenario::new(scenario.prep.graph.clone(), platform, workload);
    if std::env::var_os("DICESIM_VALIDATE_DEBUG").is_some() {
        // each partition run whole and hot on this host vs its summed profiled layers
        let prep = dicesim_hil::coord::prepare(path)?;
        let prof = crate::profile::profile_in_context(
            &prep.model,
            3,
            1000.0,
            crate::profile::Pace::HOT,
            0,
        )?;
        let times = crate::profile::time_partitions(
            &prep.model,
            &prep.plan,
            3,
            300.0,
            crate::profile::Pace::HOT,
        )?;
        for (p, (part, t)) in prep.plan.partitions.iter().zip(times).enumerate() {
            let sum: f64 = part.layers.iter().map(|&l| prof.layers[l].time_us).sum();
            eprintln!(
                "validate: part{p}: whole run {:.1} us, in-context layers {:.1} us + run overhead {:.1} us",
                t[t.len() / 2],
                sum,
                prof.run_overhead_us
            );
        }
    }
    let run = dicesim_sim::run_loaded(scenario, dicesim_sim::RunOptions::default())?;
    let sim = &run.report;
    let mut rows = vec![
        row("latency p50 [ms]", sim.latency_ms.p50, meas.latency_ms.p50),
        row("latency p95 [ms]", sim.latency_ms.p95, meas.latency_ms.p95),
        row("throughput [fps]", sim.throughput_fps, meas.throughput_fps),
    ];
    for (sp, mp) in sim.partitions.iter().zip(&meas.partitions) {
        rows.push(row(
            format!("part{} compute [ms] {}", mp.id, mp.unit),
            sp.compute_ms,
            mp.compute_ms.mean,
        ));
    }
    let pf = &run.scenario.prep.platform;
    let net = &run.scenario.prep.network;
    let dev = |p: usize| {
        pf.unit_index(&meas.partitions[p].unit)
            .map(|u| pf.units[u].device)
    };
    // a partition pair's tensors travel one after another on one connection, all handed
    // over together, and the rig times each by its service time on the connection (from
    // its hand-off, or the previous message's arrival if later, to its last byte): the
    // pair's transfer is the sum of its tensors' means; the simulator sends them as one
    // transfer of their summed bytes
    let mut pairs: BTreeMap<(usize, usize), (usize, f64, f64)> = BTreeMap::new();
    for e in &meas.edges {
        let (Some(a), Some(b)) = (e.from, e.to) else {
            continue;
        };
        let x = pairs.entry((a, b)).or_insert((0, 0.0, 0.0));
        x.0 += 1;
        x.1 += e.bytes as f64 / e.count.max(1) as f64;
        x.2 += e.transfer_ms_mean;
    }
    for ((a, b), (n, bytes, measured)) in pairs {
        let (Some(da), Some(db)) = (dev(a), dev(b)) else {
            continue;
        };
        let pred = match net.route(da, db) {
            Some(r) if r.bottleneck > 0.0 => r.latency_ns as f64 / 1e6 + bytes / r.bottleneck / 1e6,
            Some(r) => r.latency_ns as f64 / 1e6,
            None => 0.0,
        };
        rows.push(row(
            format!(
                "edge part{a}->part{b} [ms] ({n} tensor(s), {:.0} kB)",
                bytes / 1e3
            ),
            pred,
            measured,
        ));
    }
    Ok(Validation {
        simulated: serde_json::from_str(&sim.to_json())?,
        measured: serde_json::to_value(&meas)?,
        rows,
        calibration,
    })
}

/// Chunks the device profiles are fitted to ([`crate::profile::fit_to_chunks`]).
const CHUNKS: usize = 8;

/// Least-squares fit of `t = o + bytes * k` minimising relative errors; returns (o, k,
/// median relative error).
fn fit_line(samples: &[(usize, f64)]) -> Option<(f64, f64, f64)> {
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, t) in samples {
        if t <= 0.0 {
            continue;
        }
        let (x, w) = (n as f64, 1.0 / (t * t));
        sw += w;
        sx += w * x;
        sy += w * t;
        sxx += w * x * x;
        sxy += w * x * t;
    }
    let det = sw * sxx - sx * sx;
    if sw == 0.0 || det.abs() < 1e-300 {
        return None;
    }
    let k = ((sw * sxy - sx * sy) / det).max(1e-15);
    let o = (sy - k * sx) / sw;
    let mut errs: Vec<f64> = samples
        .iter()
        .map(|&(n, t)| ((o + k * n as f64 - t) / t).abs())
        .collect();
    Some((o, k, pct(&mut errs, 0.5)))
}

/// Measures the rig (links; compute profiles on every device at once; each device's
/// whole-model run through the rig) and writes the calibration into `dir`.
pub fn calibrate(rig: &Rig, dir: &Path) -> Result<Calibration> {
    let prep = &rig.prep;
    let pf = &prep.scenario.prep.platform;
    let net = &prep.scenario.prep.network;
    // 1. links: device pairs that partition edges connect, with their largest tensor
    let mut pairs: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for e in &prep.plan.edges {
        let (da, db) = (prep.part_device[e.from], prep.part_device[e.to]);
        if da != db {
            let bytes = e.bytes as usize;
            let m = pairs.entry((da, db)).or_default();
            *m = (*m).max(bytes);
        }
    }
    let mut routes = Vec::new();
    let namespaces = rig.host_gflops.is_some();
    let mut link_bw: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut link_lat: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (&(a, b), &largest) in &pairs {
        if !namespaces {
            eprintln!("validate: links not calibrated (no rig namespaces without root)");
            break;
        }
        let Some(r) = net.route(a, b) else { continue };
        let hi = (2 * largest).clamp(4096, 8 << 20);
        let mut sizes: Vec<usize> = (0..6)
            .map(|i| (1024.0 * (hi as f64 / 1024.0).powf(i as f64 / 5.0)) as usize)
            .collect();
        sizes.push(largest.max(1));
        let samples = rig.probe(a, b, &sizes, 3)?;
        let Some((o, k, err)) = fit_line(&samples) else {
            continue;
        };
        let bw = 1.0 / k; // bytes/s
        let nominal_bw = r.bottleneck * 1e9;
        let lat = r.latency_ns as f64 / 1e3;
        routes.push(RouteFit {
            from: pf.devices[a].name.clone(),
            to: pf.devices[b].name.clone(),
            samples: samples.len(),
            overhead_us: o * 1e6,
            nominal_latency_us: lat,
            bandwidth_mbps: bw * 8.0 / 1e6,
            nominal_mbps: nominal_bw * 8.0 / 1e6,
            fit_error: err,
        });
        let hops = r.links.len().max(1) as f64;
        for &l in &r.links {
            link_bw.entry(l).or_default().push(bw / nominal_bw);
            link_lat.entry(l).or_default().push((o * 1e6 - lat) / hops);
        }
    }
    // 2. compute: every device profiles the model on its own CPU at the same time, pinned
    // as its worker and paced by its duty cycle
    let model = &prep.model;
    let profiles: Vec<Result<crate::profile::ContextProfile>> = std::thread::scope(|s| {
        let hs: Vec<_> = rig
            .devices
            .iter()
            .map(|d| {
                s.spawn(move || {
                    if let Some(cpu) = d.cpu {
                        crate::profile::pin_to(cpu)?;
                    }
                    crate::profile::profile_in_context(
                        model,
                        2,
                        3000.0,
                        // evicting the caches between runs (`cold`) was tried: it
                        // validated worse (median 12% / 16%)
                        crate::profile::Pace {
                            duty: d.pace,
                            cold: false,
                        },
                        CHUNKS,
                    )
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a profiling thread panicked")))
            })
            .collect()
    });
    // 3. each device runs the whole model through the rig (the real runtime, paced, with
    // the rig's other activity): its measured compute over the profile's prediction
    // corrects that device's profile
    let g = &prep.model.graph;
    let (Some(first), Some(last)) = (g.layers.first(), g.layers.last()) else {
        bail!("the model has no layers");
    };
    let mut streams = Vec::new();
    for (d, prof) in rig.devices.iter().zip(&profiles) {
        let prof = prof.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let unit = prep
            .plan
            .partitions
            .iter()
            .zip(&prep.part_device)
            .find(|(_, &pd)| pd == d.device)
            .map(|(p, _)| p.unit.clone())
            .unwrap_or_default();
        let factor = d.pace / rig.dilation;
        let predicted = (prof.layers.iter().map(|l| l.time_us).sum::<f64>() + prof.run_overhead_us)
            * factor
            / 1e3;
        let frames =
            ((CORRECTION_BUDGET_MS / predicted.max(1e-3)) as i64).clamp(3, CORRECTION_FRAMES);
        let sc = whole_model_scenario(
            &prep.scenario.path,
            &unit,
            &first.name,
            &last.name,
            dir,
            &format!("whole-{}", pf.devices[d.device].name),
            frames,
        )?;
        streams.push((unit, sc, predicted));
    }
    // one device at a time (all at once was tried: it validated worse, 11-13% median)
    let reports: Vec<Result<dicesim_hil::report::RunReport>> =
        streams.iter().map(|(_, sc, _)| rig.stream(sc)).collect();
    let mut corrections = Vec::new();
    for ((unit, _, predicted), rep) in streams.iter().zip(reports) {
        let rep = rep.with_context(|| format!("calibration run of the whole model on {unit}"))?;
        if let Some(e) = &rep.error {
            bail!("calibration run of the whole model on {unit}: {e}");
        }
        let measured = rep
            .partitions
            .first()
            .map(|p| p.compute_ms.p50)
            .unwrap_or(0.0);
        let c = measured / predicted;
        corrections.push(if c.is_finite() && c > 0.0 { c } else { 1.0 });
    }
    // 4. the calibration file
    let mut toml = String::from("# written by dicesim validate: measured on the emulation rig\n");
    let mut devices = Vec::new();
    for ((d, prof), correction) in rig.devices.iter().zip(profiles).zip(corrections) {
        let prof = prof?;
        let factor = d.pace / rig.dilation * correction;
        let dname = &pf.devices[d.device].name;
        devices.push(DeviceCal {
            device: dname.clone(),
            cpu: d.cpu,
            rig_correction: correction,
            factor,
            host_run_us: prof.run_us,
            run_overhead_us: prof.run_overhead_us * factor,
        });
        let mut units: Vec<&str> = prep
            .plan
            .partitions
            .iter()
            .map(|p| p.unit.as_str())
            .filter(|u| {
                pf.unit_index(u)
                    .is_some_and(|i| pf.units[i].device == d.device)
            })
            .collect();
        units.sort();
        units.dedup();
        for u in units {
            // a file name from any unit name
            let csv: String = u
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .chain(".csv".chars())
                .collect();
            let mut text = format!(
                "# {u}: tract in context on host CPU {:?}, paced 1/{:.3}, times x {factor:.4} (the rig's slow-down of {dname})\nlayer,time_us\n",
                d.cpu, d.pace
            );
            for l in &prof.layers {
                let _ = writeln!(text, "{},{:.3}", l.layer, l.time_us * factor);
            }
            std::fs::write(dir.join(&csv), text)
                .with_context(|| format!("writing {}", dir.join(&csv).display()))?;
            let _ = write!(
                toml,
                "[[unit]]\nname = {}\nprofile = {}\nrun_overhead_us = {:.3}\n",
                toml_str(u),
                toml_str(&csv),
                prof.run_overhead_us * factor
            );
        }
    }
    for (l, f) in link_bw {
        let link = &pf.links[l];
        let bw = link.bandwidth_mbps * pct(&mut f.clone(), 0.5);
        let lat = (link.latency_us + pct(&mut link_lat[&l].clone(), 0.5)).max(0.0);
        let _ = write!(
            toml,
            "[[link]]\nname = {}\nbandwidth_mbps = {bw:.4}\nlatency_us = {lat:.3}\n",
            toml_str(&link.name)
        );
    }
    let file = dir.join("cal.toml");
    std::fs::write(&file, toml).with_context(|| format!("writing {}", file.display()))?;
    Ok(Calibration {
        file,
        routes,
        devices,
    })
}

/// A TOML string literal (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Frames of each device's whole-model calibration run: 20, or fewer (at least 3) where
/// 20 would take over [`CORRECTION_BUDGET_MS`] of platform time.
const CORRECTION_FRAMES: i64 = 20;
/// Platform time a device's calibration run should stay within [ms].
const CORRECTION_BUDGET_MS: f64 = 4000.0;

/// A scenario like `src` (same model and platform, paths made absolute) that runs the
/// whole model (layers `first` to `last`) on `unit` for `frames` frames;
/// written as `dir/<tag>.toml` with its mapping.
fn whole_model_scenario(
    src: &Path,
    unit: &str,
    first: &str,
    last: &str,
    dir: &Path,
    tag: &str,
    frames: i64,
) -> Result<PathBuf> {
    let text =
        std::fs::read_to_string(src).with_context(|| format!("reading {}", src.display()))?;
    let mut t: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", src.display()))?;
    let base = src.parent().unwrap_or(Path::new("."));
    let abs = |f: &str| -> String {
        let p = base.join(f);
        std::fs::canonicalize(&p)
            .unwrap_or(p)
            .to_string_lossy()
            .to_string()
    };
    for (table, key) in [("model", "path"), ("platform", "file")] {
        if let Some(m) = t.get_mut(table).and_then(|v| v.as_table_mut()) {
            if let Some(p) = m.get(key).and_then(|v| v.as_str()).map(abs) {
                m.insert(key.into(), p.into());
            }
        }
    }
    t.remove("calibration");
    t.remove("hil");
    let mut range = toml::Table::new();
    range.insert("from".into(), first.into());
    range.insert("to".into(), last.into());
    let mut units = toml::Table::new();
    units.insert(unit.into(), range.into());
    let mut m = toml::Table::new();
    m.insert("units".into(), units.into());
    let mapping = dir.join(format!("{tag}.mapping.toml"));
    std::fs::write(&mapping, toml::to_string(&m)?)
        .with_context(|| format!("writing {}", mapping.display()))?;
    let mut mt = toml::Table::new();
    mt.insert("strategy".into(), "explicit".into());
    mt.insert("file".into(), mapping.to_string_lossy().to_string().into());
    t.insert("mapping".into(), mt.into());
    let mut w = toml::Table::new();
    w.insert("frames".into(), frames.into());
    w.insert("period_ms".into(), 0.0.into());
    t.insert("workload".into(), w.into());
    let out = dir.join(format!("{tag}.toml"));
    std::fs::write(&out, toml::to_string(&t)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// One scenario's result in a suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteEntry {
    /// Scenario file name.
    pub scenario: String,
    /// Every compared figure (latency p50, p95, throughput first), or empty on failure.
    pub errors: Vec<Row>,
    /// The compared figure other than latency and throughput with the largest |error|.
    pub worst_term: Option<Row>,
    /// Why validation failed.
    pub failure: Option<String>,
}

/// A suite's summary: median and 90th percentile of |relative error|.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SuiteSummary {
    /// Scenarios validated.
    pub validated: usize,
    /// Scenarios that failed.
    pub failed: usize,
    /// Latency p50: median |error|.
    pub latency_median: f64,
    /// Latency p50: 90th percentile |error|.
    pub latency_p90: f64,
    /// Throughput: median |error|.
    pub throughput_median: f64,
    /// Throughput: 90th percentile |error|.
    pub throughput_p90: f64,
}

/// Validates every `*.toml` scenario in `dir` (file-name order); prints one line per
/// scenario and the median and p90 of |relative error| of latency p50 and throughput; with
/// `out`, writes `suite.json` (every figure of every scenario) and `suite.svg` (simulated vs
/// measured) there.
pub fn suite(dir: &Path, out: Option<&Path>) -> Result<SuiteSummary> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.toml scenarios", dir.display());
    }
    let mut entries = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        match validate(f, &Options::default()) {
            Ok(v) => {
                let worst = v.rows[3..]
                    .iter()
                    .filter(|r| r.rel_error.is_finite())
                    .max_by(|a, b| a.rel_error.abs().total_cmp(&b.rel_error.abs()))
                    .cloned();
                println!(
                    "{name:44} latency p50 {:>7.1}%  throughput {:>7.1}%  worst term: {}",
                    v.latency_error() * 100.0,
                    v.throughput_error() * 100.0,
                    worst
                        .as_ref()
                        .map(|r| format!("{} {:+.1}%", r.metric, r.rel_error * 100.0))
                        .unwrap_or_default()
                );
                entries.push(SuiteEntry {
                    scenario: name,
                    errors: v.rows,
                    worst_term: worst,
                    failure: None,
                });
            }
            Err(e) => {
                println!("{name:44} FAILED: {e:#}");
                entries.push(SuiteEntry {
                    scenario: name,
                    errors: Vec::new(),
                    worst_term: None,
                    failure: Some(format!("{e:#}")),
                });
            }
        }
    }
    let ok: Vec<&SuiteEntry> = entries.iter().filter(|e| e.failure.is_none()).collect();
    let mut lat: Vec<f64> = ok.iter().map(|e| e.errors[0].rel_error.abs()).collect();
    let mut thr: Vec<f64> = ok.iter().map(|e| e.errors[2].rel_error.abs()).collect();
    let summary = SuiteSummary {
        validated: ok.len(),
        failed: entries.len() - ok.len(),
        latency_median: pct(&mut lat, 0.5),
        latency_p90: pct(&mut lat, 0.9),
        throughput_median: pct(&mut thr, 0.5),
        throughput_p90: pct(&mut thr, 0.9),
    };
    println!(
        "{} scenarios validated ({} failed): |error| latency p50: median {:.1}%, p90 {:.1}%; throughput: median {:.1}%, p90 {:.1}%",
        summary.validated,
        summary.failed,
        summary.latency_median * 100.0,
        summary.latency_p90 * 100.0,
        summary.throughput_median * 100.0,
        summary.throughput_p90 * 100.0
    );
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let j = out.join("suite.json");
        std::fs::write(
            &j,
            serde_json::to_string_pretty(&json!({"summary": summary, "scenarios": entries}))?,
        )
        .with_context(|| format!("writing {}", j.display()))?;
        let svg = out.join("suite.svg");
        std::fs::write(&svg, suite_svg(&ok, &summary))
            .with_context(|| format!("writing {}", svg.display()))?;
        println!("wrote {} and {}", j.display(), svg.display());
    }
    Ok(summary)
}

/// Two log-log scatter plots, simulated vs measured latency p50 and throughput, with the
/// diagonal and the +-10% band.
fn suite_svg(entries: &[&SuiteEntry], s: &SuiteSummary) -> String {
    use plotters::prelude::*;
    let mut svg = String::new();
    let drawn: Result<(), Box<dyn std::error::Error>> = (|| {
        let root = SVGBackend::with_string(&mut svg, (1000, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        for (k, (idx, title, median, p90)) in [
            (0, "latency p50 [ms]", s.latency_median, s.latency_p90),
            (2, "throughput [fps]", s.throughput_median, s.throughput_p90),
        ]
        .into_iter()
        .enumerate()
        {
            let pts: Vec<(f64, f64)> = entries
                .iter()
                .map(|e| (e.errors[idx].measured, e.errors[idx].simulated))
                .filter(|(m, v)| *m > 0.0 && *v > 0.0)
                .collect();
            let coords = pts.iter().flat_map(|(a, b)| [*a, *b]);
            let (lo, hi) = match coords.clone().reduce(f64::min) {
                Some(min) => (min / 1.3, coords.fold(min, f64::max) * 1.3),
                None => (0.5, 2.0),
            };
            let mut chart = ChartBuilder::on(&panels[k])
                .caption(
                    format!(
                        "{title}: {} scenarios, |err| median {:.1}%, p90 {:.1}%",
                        pts.len(),
                        median * 100.0,
                        p90 * 100.0
                    ),
                    ("sans-serif", 14),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(50)
                .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("measured (rig)")
                .y_desc("simulated")
                .draw()?;
            for (f, style) in [
                (1.0, BLACK.stroke_width(1)),
                (1.1, RGBColor(170, 170, 170).stroke_width(1)),
                (1.0 / 1.1, RGBColor(170, 170, 170).stroke_width(1)),
            ] {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(lo, lo * f), (hi, hi * f)],
                    style,
                )))?;
            }
            chart.draw_series(
                pts.iter()
                    .map(|&(m, v)| Circle::new((m, v), 4, RGBColor(31, 119, 180).filled())),
            )?;
        }
        root.present()?;
        Ok(())
    })();
    // The SVG backend draws into a String: nothing here can fail at run time.
    drawn.expect("drawing an SVG into a string does not fail");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_fit_recovers_overhead_and_rate() {
        // 300 us + bytes / 12.5 MB/s (100 Mbit/s)
        let t = |n: usize| 300e-6 + n as f64 / 12.5e6;
        let s: Vec<(usize, f64)> = [1024, 8192, 65536, 524288].map(|n| (n, t(n))).into();
        let (o, k, err) = fit_line(&s).unwrap();
        assert!((o - 300e-6).abs() < 1e-9, "{o}");
        assert!((1.0 / k - 12.5e6).abs() < 1.0, "{k}");
        assert!(err < 1e-9);
        assert!(fit_line(&[]).is_none());
    }

    #[test]
    fn relative_error_is_signed_and_infinite_only_against_zero() {
        assert_eq!(rel(11.0, 10.0), 0.1);
        assert_eq!(rel(9.0, 10.0), -0.1);
        assert_eq!(rel(0.0, 0.0), 0.0);
        assert!(rel(1.0, 0.0).is_infinite());
    }
}
