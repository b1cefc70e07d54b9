//! Calibrating the simulator on the emulation rig: link probe ([`crate::link`]), compute
//! profiles of every device at once, the rig correction of each device, and the
//! calibration file (`cal.toml` + one CSV per unit) that a scenario's
//! `[calibration] file` applies to its platform.

use crate::link::{probe_links, LinkProbe, RouteFit};
use crate::profile::{pin_to, profile_in_context, ContextProfile, Pace};
use anyhow::{anyhow, bail, Context, Result};
use dicesim_hil::emulate::{Rig, RigDevice};
use dicesim_hil::report::RunReport;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

/// Chunks the device profiles are fitted to ([`crate::profile::fit_to_chunks`]).
const CHUNKS: usize = 8;

/// Frames of each device's whole-model calibration run: 20, or fewer (at least 3) where
/// 20 would take over [`CORRECTION_BUDGET_MS`] of platform time.
const CORRECTION_FRAMES: i64 = 20;
/// Platform time a device's calibration run should stay within [ms].
const CORRECTION_BUDGET_MS: f64 = 4000.0;

/// Measures the rig (links; compute profiles on every device at once; each device's
/// whole-model run through the rig) and writes the calibration into `dir`.
pub fn calibrate(rig: &Rig, dir: &Path) -> Result<Calibration> {
    let links = probe_links(rig)?;
    let profiles = profile_devices(rig);
    let corrections = rig_corrections(rig, &profiles, dir)?;
    let mut toml = String::from("# written by dicesim validate: measured on the emulation rig\n");
    let mut devices = Vec::new();
    for ((d, prof), correction) in rig.devices.iter().zip(profiles).zip(corrections) {
        devices.push(write_device(rig, d, &prof?, correction, dir, &mut toml)?);
    }
    write_links(rig, &links, &mut toml);
    let file = dir.join("cal.toml");
    std::fs::write(&file, toml).with_context(|| format!("writing {}", file.display()))?;
    Ok(Calibration {
        file,
        routes: links.routes,
        devices,
    })
}

/// Every device profiles the model on its own CPU at the same time, pinned as its worker
/// and paced by its duty cycle.
fn profile_devices(rig: &Rig) -> Vec<Result<ContextProfile>> {
    let model = &rig.prep.model;
    std::thread::scope(|s| {
        let hs: Vec<_> = rig
            .devices
            .iter()
            .map(|d| {
                s.spawn(move || {
                    if let Some(cpu) = d.cpu {
                        pin_to(cpu)?;
                    }
                    // evicting the caches between runs (`cold`) was tried: it validated
                    // worse (median 12% / 16%)
                    let pace = Pace {
                        duty: d.pace,
                        cold: false,
                    };
                    profile_in_context(model, 2, 3000.0, pace, CHUNKS)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a profiling thread panicked")))
            })
            .collect()
    })
}

/// The unit of the first partition on `device` (empty if none).
fn first_unit_on(rig: &Rig, device: usize) -> String {
    let prep = &rig.prep;
    prep.plan
        .partitions
        .iter()
        .zip(&prep.part_device)
        .find(|(_, &pd)| pd == device)
        .and_then(|(p, _)| dicesim_hil::cores::whole_unit(&prep.scenario.prep.platform, &p.unit))
        .unwrap_or_default()
}

/// Each device runs the whole model through the rig (the real runtime, paced, with the
/// rig's other activity): its median measured compute over the profile's prediction
/// corrects that device's profile. One device at a time (all at once was tried: it
/// validated worse, 11-13% median).
fn rig_corrections(rig: &Rig, profiles: &[Result<ContextProfile>], dir: &Path) -> Result<Vec<f64>> {
    let g = &rig.prep.model.graph;
    let (Some(first), Some(last)) = (g.layers.first(), g.layers.last()) else {
        bail!("the model has no layers");
    };
    // with horizontal splits the profiles are of the model with the splits written in:
    // the whole-model runs run that model too (as an ONNX file), so both count its layers
    let split_model = match &rig.prep.whole {
        Some(_) => Some(write_split_model(&rig.prep.model, dir)?),
        None => None,
    };
    let mut streams = Vec::new();
    for (d, prof) in rig.devices.iter().zip(profiles) {
        let prof = prof.as_ref().map_err(|e| anyhow!("{e:#}"))?;
        let unit = first_unit_on(rig, d.device);
        let predicted = (prof.layers.iter().map(|l| l.time_us).sum::<f64>() + prof.run_overhead_us)
            * (d.pace / rig.dilation)
            / 1e3;
        let frames =
            ((CORRECTION_BUDGET_MS / predicted.max(1e-3)) as i64).clamp(3, CORRECTION_FRAMES);
        let tag = format!(
            "whole-{}",
            rig.prep.scenario.prep.platform.devices[d.device].name
        );
        let range = (first.name.as_str(), last.name.as_str());
        let src = (rig.prep.scenario.path.as_path(), split_model.as_deref());
        let sc = whole_model_scenario(src, &unit, range, dir, &tag, frames)?;
        streams.push((unit, sc, predicted));
    }
    let reports: Vec<Result<RunReport>> = streams.iter().map(|(_, sc, _)| rig.stream(sc)).collect();
    streams
        .iter()
        .zip(reports)
        .map(|((unit, _, predicted), rep)| correction(unit, *predicted, rep))
        .collect()
}

/// A device's correction from its whole-model run on `unit`: median measured compute over
/// `predicted` [ms]; 1 when that is not a positive number.
fn correction(unit: &str, predicted: f64, rep: Result<RunReport>) -> Result<f64> {
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
    Ok(if c.is_finite() && c > 0.0 { c } else { 1.0 })
}

/// The units of the plan's partitions that run on `device`, sorted, each once.
fn units_on<'r>(rig: &'r Rig, device: usize) -> Vec<&'r str> {
    let pf = &rig.prep.scenario.prep.platform;
    let mut units: Vec<&str> = rig
        .prep
        .plan
        .partitions
        .iter()
        .map(|p| p.unit.as_str())
        .filter(|u| {
            pf.unit_index(u)
                .is_some_and(|i| pf.units[i].device == device)
        })
        .collect();
    units.sort();
    units.dedup();
    units
}

/// A CSV file name from any unit name.
fn csv_name(unit: &str) -> String {
    unit.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .chain(".csv".chars())
        .collect()
}

/// Writes the profile CSV of each unit of device `d` (profile times x `pace / dilation x
/// correction`) and appends their `[[unit]]` tables to `toml`.
fn write_device(
    rig: &Rig,
    d: &RigDevice,
    prof: &ContextProfile,
    correction: f64,
    dir: &Path,
    toml: &mut String,
) -> Result<DeviceCal> {
    let factor = d.pace / rig.dilation * correction;
    let dname = &rig.prep.scenario.prep.platform.devices[d.device].name;
    for u in units_on(rig, d.device) {
        let csv = csv_name(u);
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
    Ok(DeviceCal {
        device: dname.clone(),
        cpu: d.cpu,
        rig_correction: correction,
        factor,
        host_run_us: prof.run_us,
        run_overhead_us: prof.run_overhead_us * factor,
    })
}

/// Appends a `[[link]]` table per probed link: `bandwidth = nominal x median ratio`,
/// `latency = nominal + median extra latency per hop`.
fn write_links(rig: &Rig, probe: &LinkProbe, toml: &mut String) {
    let median = |v: &[f64]| dicesim_stats::median(&dicesim_stats::sorted(v)).unwrap_or(f64::NAN);
    for (&l, ratios) in &probe.bandwidth_ratio {
        let link = &rig.prep.scenario.prep.platform.links[l];
        let bw = link.bandwidth_mbps * median(ratios);
        let lat = (link.latency_us + median(&probe.extra_latency_us[&l])).max(0.0);
        let _ = write!(
            toml,
            "[[link]]\nname = {}\nbandwidth_mbps = {bw:.4}\nlatency_us = {lat:.3}\n",
            toml_str(&link.name)
        );
    }
}

/// A TOML string literal (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Points the `[model] path` and `[platform] file` of scenario table `t` (read from a file
/// in `base`) at absolute paths.
fn absolute_paths(t: &mut toml::Table, base: &Path) {
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
}

/// Writes `dir/<tag>.mapping.toml`, which maps layers `range.0` to `range.1` onto `unit`.
fn write_whole_mapping(unit: &str, range: (&str, &str), dir: &Path, tag: &str) -> Result<PathBuf> {
    let mut r = toml::Table::new();
    r.insert("from".into(), range.0.into());
    r.insert("to".into(), range.1.into());
    let mut units = toml::Table::new();
    units.insert(unit.into(), r.into());
    let mut m = toml::Table::new();
    m.insert("units".into(), units.into());
    let mapping = dir.join(format!("{tag}.mapping.toml"));
    std::fs::write(&mapping, toml::to_string(&m)?)
        .with_context(|| format!("writing {}", mapping.display()))?;
    Ok(mapping)
}

/// Writes `model` (the scenario's, horizontal splits written in) as `dir/model-split.onnx`.
fn write_split_model(model: &dicesim_plan::Model, dir: &Path) -> Result<PathBuf> {
    let path = dir.join("model-split.onnx");
    dicesim_plan::onnx::save_model(&model.static_proto(), &path)?;
    Ok(path)
}

/// A scenario like `src` (same model, or the ONNX file `model` when given, and platform,
/// paths made absolute) that runs the whole model (layers `range.0` to `range.1`) on `unit`
/// for `frames` frames; written as `dir/<tag>.toml` with its mapping.
fn whole_model_scenario(
    (src, model): (&Path, Option<&Path>),
    unit: &str,
    range: (&str, &str),
    dir: &Path,
    tag: &str,
    frames: i64,
) -> Result<PathBuf> {
    let text =
        std::fs::read_to_string(src).with_context(|| format!("reading {}", src.display()))?;
    let mut t: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", src.display()))?;
    absolute_paths(&mut t, src.parent().unwrap_or(Path::new(".")));
    t.remove("calibration");
    t.remove("hil");
    if let Some(m) = model {
        let mut mt = toml::Table::new();
        mt.insert("path".into(), m.to_string_lossy().to_string().into());
        t.insert("model".into(), mt.into());
    }
    let mapping = write_whole_mapping(unit, range, dir, tag)?;
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
